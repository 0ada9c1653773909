"""Conversations: transcripts the store keeps between requests (chat memory, sessions).

A conversation belongs to a `kind` (a namespace: "chat", "dvadasa", "sdk", …) and holds
items, oldest first. What the store keeps is bounded by a `ConversationPolicy` that the
owner of the kind passes with every call: a conversation unused for `ttl_seconds` is
forgotten, only its newest `max_items` are kept, and beyond `max_conversations` of the
kind the least recently used goes first. Reading counts as use.

Plugins use `kernel.conversations(kind, policy)`, a `Conversations` view bound to the
run store (memory or SQLite built in; Redis or Postgres from plugins), so a restart with
SQLite keeps them.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

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
        """The conversation with its items, or None when unknown or expired."""
        return await self.store.get_conversation(self.kind, conversation_id,
                                                 policy=self.policy)

    async def open(self, conversation_id: str, *, owner: str | None = None,
                   metadata: dict[str, Any] | None = None) -> Conversation:
        """The conversation, created (empty, with `owner` and `metadata`) if it is not
        there: calling it twice with one id is one conversation."""
        return await self.store.open_conversation(self.kind, conversation_id,
                                                  policy=self.policy, owner=owner,
                                                  metadata=metadata)

    async def append(self, conversation_id: str, *items: ConversationItem) -> Conversation:
        """Add items (creating the conversation if needed) and return it, trimmed."""
        return await self.store.append_items(self.kind, conversation_id, list(items),
                                             policy=self.policy)

    async def delete(self, conversation_id: str) -> bool:
        """Forget it. True when it existed."""
        return await self.store.delete_conversation(self.kind, conversation_id)
