"""The run store interface: runs, their append-only event log, and conversations.

Implementations: `armillary._memory_store` (in-memory), `armillary._sqlite_store` (the
default for `armillary serve`); plugins add more through the `make_store` hook.
"""

from __future__ import annotations

import abc
from typing import Any

from armillary._conversations import Conversation, ConversationItem, ConversationPolicy
from armillary._models import Event, Run, RunStatus, current_principal


def principal_name() -> str | None:
    """The owner of something created now: the current principal's name (None without
    one). Read on the event loop: a store's worker thread does not see the request's
    context."""
    principal = current_principal()
    return principal.name if principal is not None else None


def stamp_owner(run: Run) -> Run:
    """The run with the current principal as its `owner` when it names none."""
    principal = current_principal()
    if run.owner is not None or principal is None:
        return run
    return run.model_copy(update={"owner": principal.name})


class RunStore(abc.ABC):
    """Runs, and per run an event log whose `seq` starts at 1 and never repeats; and
    conversations by kind and id (see `armillary._conversations` for the policy)."""

    async def open(self) -> None:  # noqa: B027 - optional
        """Prepare connections and schema. Called once before first use."""

    async def close(self) -> None:  # noqa: B027 - optional
        """Release connections. Called once at shutdown."""

    @abc.abstractmethod
    async def create_run(self, run: Run) -> Run:
        """Store a new run and return it as stored: a run without an `owner` gets the
        current principal's name (`stamp_owner`), so whichever route submits it, an
        authenticated caller owns what it started."""

    @abc.abstractmethod
    async def get_run(self, run_id: str) -> Run | None: ...

    @abc.abstractmethod
    async def update_run(self, run_id: str, **changes: Any) -> Run:
        """Apply `changes` to the run's fields (and bump `updated_at`); return the new run."""

    @abc.abstractmethod
    async def list_runs(self, *, status: list[RunStatus] | None = None, limit: int = 50,
                        offset: int = 0, owner: str | None = None) -> list[Run]:
        """Runs, newest first; only those in `status` and owned by `owner` when given
        (`armillary.owner_filter()` is the owner the current principal may list)."""

    @abc.abstractmethod
    async def count_runs(self, *, status: list[RunStatus] | None = None,
                         owner: str | None = None) -> int: ...

    @abc.abstractmethod
    async def append_event(self, run_id: str, type: str, payload: dict[str, Any]) -> Event:
        """Append an event with the next `seq` for the run and return it."""

    @abc.abstractmethod
    async def events(self, run_id: str, *, after_seq: int = 0, types: list[str] | None = None,
                     limit: int | None = None, offset: int = 0) -> list[Event]:
        """Events with `seq > after_seq`, oldest first, optionally filtered by type."""

    @abc.abstractmethod
    async def count_events(self, run_id: str, *, types: list[str] | None = None) -> int: ...

    @abc.abstractmethod
    async def prune(self, *, older_than: float | None = None, keep: int | None = None) -> int:
        """Delete finished runs (and their events) finished before `older_than` (epoch
        seconds), or beyond the newest `keep` finished runs. Returns how many were removed."""

    # --- conversations -------------------------------------------------------------
    # Every call of a kind carries that kind's policy: the store applies it as it goes
    # (expiring what is older than the TTL, trimming items, evicting the least recently
    # used), so nothing grows without bound whatever the traffic.

    @abc.abstractmethod
    async def get_conversation(self, kind: str, conversation_id: str, *,
                               policy: ConversationPolicy) -> Conversation | None:
        """The conversation with its items, or None when unknown or expired. Counts as
        use (refreshes its TTL and LRU position)."""

    @abc.abstractmethod
    async def open_conversation(self, kind: str, conversation_id: str, *,
                                policy: ConversationPolicy, owner: str | None = None,
                                metadata: dict[str, Any] | None = None) -> Conversation:
        """The conversation, created empty with `owner` and `metadata` when missing."""

    @abc.abstractmethod
    async def append_items(self, kind: str, conversation_id: str,
                           items: list[ConversationItem], *,
                           policy: ConversationPolicy) -> Conversation:
        """Append items (creating the conversation when missing); keep the newest
        `max_items`; return the conversation as kept."""

    @abc.abstractmethod
    async def delete_conversation(self, kind: str, conversation_id: str) -> bool:
        """Forget a conversation. True when it existed."""
