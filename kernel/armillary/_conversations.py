"""Conversations: transcripts the store keeps between requests (chat memory, sessions).

A conversation belongs to a `kind` (a namespace: "chat", "dvadasa", "sdk", …) and holds
items, oldest first. What the store keeps is bounded by a `ConversationPolicy` that the
owner of the kind passes with every call: a conversation unused for `ttl_seconds` is
forgotten, only its newest `max_items` are kept, and beyond `max_conversations` of the
kind the least recently used goes first. Reading counts as use.

Plugins use `kernel.conversations(kind, policy)`, a `Conversations` view bound to the
run store (memory or SQLite built in; Redis or Postgres from plugins), so a restart with
SQLite keeps them.

Ownership: a conversation created while a principal is current (`armillary.
current_principal()`, set by an auth plugin) belongs to it. Through the view, another
non-admin principal does not see it: `get` answers None, `delete` False, and `append` /
`open` raise `NotFound` (`conversation_not_found`), so a route answers as if it did not
exist. The store itself does not filter.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from armillary._errors import NotFound
from armillary._models import current_principal, visible

if TYPE_CHECKING:
    from armillary._store import RunStore


class ConversationItem(BaseModel):
    """One entry of a transcript: a message (`role` user, assistant, system, tool) or a
    plugin's own kind of entry (a head's contribution, say), with `data` for the rest.
    `partial` marks a reply cut short (a client that left, a provider that failed)."""

    role: str
    content: str = ""
    agent: str | None = None
    partial: bool = False
    at: float = Field(default_factory=time.time)
    data: dict[str, Any] = Field(default_factory=dict)


class Conversation(BaseModel):
    id: str
    kind: str
    #: who may see it (an API key's name, once auth is on); None: anyone
    owner: str | None = None
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)
    metadata: dict[str, Any] = Field(default_factory=dict)
    items: list[ConversationItem] = Field(default_factory=list)


class ConversationPolicy(BaseModel):
    """How much of a kind the store keeps (None: no limit)."""

    model_config = ConfigDict(frozen=True)

    ttl_seconds: float | None = Field(default=None, gt=0)
    max_items: int | None = Field(default=None, ge=1)
    max_conversations: int | None = Field(default=None, ge=1)


UNBOUNDED = ConversationPolicy()


class Conversations:
    """The conversations of one kind, under one policy (see the module docstring)."""

    def __init__(self, store: RunStore, kind: str, policy: ConversationPolicy = UNBOUNDED
                 ) -> None:
        self.store = store
        self.kind = kind
        self.policy = policy

    async def get(self, conversation_id: str) -> Conversation | None:
        """The conversation with its items, or None when unknown, expired or another
        principal's."""
        found = await self.store.get_conversation(self.kind, conversation_id,
                                                  policy=self.policy)
        return found if found is None or visible(found.owner) else None

    async def check_access(self, conversation_id: str) -> None:
        """Raise `NotFound` when the conversation exists and belongs to someone the
        current principal may not act for (a no-op without a principal)."""
        if current_principal() is None:
            return
        found = await self.store.get_conversation(self.kind, conversation_id,
                                                  policy=self.policy)
        if found is not None and not visible(found.owner):
            raise NotFound(f"no conversation {conversation_id!r}",
                           code="conversation_not_found")

    async def open(self, conversation_id: str, *, owner: str | None = None,
                   metadata: dict[str, Any] | None = None) -> Conversation:
        """The conversation, created (empty, with `owner` — default: the current
        principal — and `metadata`) if it is not there: calling it twice with one id is
        one conversation."""
        await self.check_access(conversation_id)
        return await self.store.open_conversation(self.kind, conversation_id,
                                                  policy=self.policy, owner=owner,
                                                  metadata=metadata)

    async def append(self, conversation_id: str, *items: ConversationItem) -> Conversation:
        """Add items (creating the conversation, owned by the current principal, if
        needed) and return it, trimmed."""
        await self.check_access(conversation_id)
        return await self.store.append_items(self.kind, conversation_id, list(items),
                                             policy=self.policy)

    async def delete(self, conversation_id: str) -> bool:
        """Forget it. True when it existed (and the current principal may see it)."""
        if current_principal() is not None and await self.get(conversation_id) is None:
            return False
        return await self.store.delete_conversation(self.kind, conversation_id)
