"""`MemoryRunStore`: runs and event logs in process memory (`store = "memory://"`).

For tests, `armillary run` and throwaway servers: everything is lost when the process
ends. Every method completes without awaiting, so each is atomic on the event loop.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from armillary._conversations import Conversation, ConversationItem, ConversationPolicy
from armillary._errors import NotFound
from armillary._models import Event, Run, RunStatus, new_id
from armillary._store import RunStore, principal_name, stamp_owner


class MemoryRunStore(RunStore):
    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._runs: dict[str, Run] = {}
        self._events: dict[str, list[Event]] = {}
        #: by kind, least recently used first (expiry and eviction pop from the front)
        self._conversations: dict[str, OrderedDict[str, tuple[Conversation, float]]] = {}
        self._clock = clock

    async def create_run(self, run: Run) -> Run:
        run = stamp_owner(run)
        self._runs[run.id] = run.model_copy(deep=True)
        self._events.setdefault(run.id, [])
        return run

    async def get_run(self, run_id: str) -> Run | None:
        run = self._runs.get(run_id)
        return run.model_copy(deep=True) if run is not None else None

    async def update_run(self, run_id: str, **changes: Any) -> Run:
        run = self._runs.get(run_id)
        if run is None:
            raise NotFound(f"no run {run_id!r}", code="run_not_found")
        changes.setdefault("updated_at", time.time())
        updated = run.model_copy(update=changes)
        self._runs[run_id] = updated
        return updated.model_copy(deep=True)

    def _matching(self, status: list[RunStatus] | None, owner: str | None) -> list[Run]:
        runs: list[Run] = list(self._runs.values())
        if status is not None:
            wanted = set(status)
            runs = [r for r in runs if r.status in wanted]
        if owner is not None:
            runs = [r for r in runs if r.owner == owner]
        return sorted(runs, key=lambda r: r.created_at, reverse=True)

    async def list_runs(self, *, status: list[RunStatus] | None = None, limit: int = 50,
                        offset: int = 0, owner: str | None = None) -> list[Run]:
        selected = self._matching(status, owner)[offset:offset + limit]
        return [r.model_copy(deep=True) for r in selected]

    async def count_runs(self, *, status: list[RunStatus] | None = None,
                         owner: str | None = None) -> int:
        if status is None and owner is None:
            return len(self._runs)
        return len(self._matching(status, owner))

    async def append_event(self, run_id: str, type: str, payload: dict[str, Any]) -> Event:
        log = self._events.get(run_id)
        if log is None:
            raise NotFound(f"no run {run_id!r}", code="run_not_found")
        event = Event(id=new_id("evt_"), run_id=run_id, seq=len(log) + 1, type=type,
                      payload=payload)
        log.append(event)
        return event

    async def events(self, run_id: str, *, after_seq: int = 0, types: list[str] | None = None,
                     limit: int | None = None, offset: int = 0) -> list[Event]:
        log = self._events.get(run_id, [])
        selected = log[after_seq:]  # seq n lives at index n - 1
        if types is not None:
            wanted = set(types)
            selected = [e for e in selected if e.type in wanted]
        end = None if limit is None else offset + limit
        return selected[offset:end]

    async def count_events(self, run_id: str, *, types: list[str] | None = None) -> int:
        log = self._events.get(run_id, [])
        if types is None:
            return len(log)
        wanted = set(types)
        return sum(1 for e in log if e.type in wanted)

    async def prune(self, *, older_than: float | None = None, keep: int | None = None) -> int:
        finished = sorted((r for r in self._runs.values() if r.status.finished),
                          key=lambda r: r.finished_at or r.updated_at, reverse=True)
        doomed: set[str] = set()
        if keep is not None:
            doomed.update(r.id for r in finished[keep:])
        if older_than is not None:
            doomed.update(r.id for r in finished if (r.finished_at or r.updated_at) < older_than)
        for run_id in doomed:
            self._runs.pop(run_id, None)
            self._events.pop(run_id, None)
        return len(doomed)

    # --- conversations -------------------------------------------------------------

    def _kind(self, kind: str, policy: ConversationPolicy, now: float
              ) -> OrderedDict[str, tuple[Conversation, float]]:
        table = self._conversations.setdefault(kind, OrderedDict())
        if policy.ttl_seconds is not None:
            cutoff = now - policy.ttl_seconds
            while table:
                key, (_, used) = next(iter(table.items()))
                if used > cutoff:
                    break
                del table[key]
        return table

    def _use(self, table: OrderedDict[str, tuple[Conversation, float]],
             conversation: Conversation, now: float, policy: ConversationPolicy) -> None:
        table[conversation.id] = (conversation, now)
        table.move_to_end(conversation.id)
        if policy.max_conversations is not None:
            while len(table) > policy.max_conversations:  # the one just used is last
                table.popitem(last=False)

    async def get_conversation(self, kind: str, conversation_id: str, *,
                               policy: ConversationPolicy) -> Conversation | None:
        now = self._clock()
        table = self._kind(kind, policy, now)
        entry = table.get(conversation_id)
        if entry is None:
            return None
        self._use(table, entry[0], now, policy)
        return entry[0].model_copy(deep=True)

    async def open_conversation(self, kind: str, conversation_id: str, *,
                                policy: ConversationPolicy, owner: str | None = None,
                                metadata: dict[str, Any] | None = None) -> Conversation:
        now = self._clock()
        table = self._kind(kind, policy, now)
        entry = table.get(conversation_id)
        conversation = entry[0] if entry is not None else Conversation(
            id=conversation_id, kind=kind, owner=owner or principal_name(),
            metadata=dict(metadata or {}),
            created_at=now, updated_at=now)
        self._use(table, conversation, now, policy)
        return conversation.model_copy(deep=True)

    async def append_items(self, kind: str, conversation_id: str,
                           items: list[ConversationItem], *,
                           policy: ConversationPolicy) -> Conversation:
        now = self._clock()
        table = self._kind(kind, policy, now)
        entry = table.get(conversation_id)
        conversation = entry[0] if entry is not None else Conversation(
            id=conversation_id, kind=kind, owner=principal_name(), created_at=now,
            updated_at=now)
        kept = [*conversation.items, *(i.model_copy(deep=True) for i in items)]
        if policy.max_items is not None:
            kept = kept[-policy.max_items:]
        conversation = conversation.model_copy(update={"items": kept, "updated_at": now})
        self._use(table, conversation, now, policy)
        return conversation.model_copy(deep=True)

    async def delete_conversation(self, kind: str, conversation_id: str) -> bool:
        return self._conversations.get(kind, OrderedDict()).pop(conversation_id, None) \
            is not None
