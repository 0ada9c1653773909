"""Chat memory in the kernel's store: each conversation's exchanges, under the chat policy.

`ChatMemory` keeps each exchange as two items of the store's conversation kind "chat":
the user's message (role `user`), then the reply (role `assistant`, with the agent and a
`partial` flag). The store applies the `ConversationPolicy` the plugin builds from its
settings (`policy`): a conversation idle for `memory_ttl_seconds` is forgotten, only the
newest `2 * memory_max_turns` items (that many exchanges) are kept, and beyond
`memory_max_conversations` the least recently used goes first. Reading counts as use.

With `store = "memory://"` (the Pi profile) memory ends with the process; with SQLite it
survives a restart. Every item carries `data["n"]`, its position in the conversation
counting items trimmed away, so `Recalled.items` (the count after the newest item) only
grows while the conversation lives: it is the `seq` of the conversation's `chat.turn`
events.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from armillary import ConversationItem, ConversationPolicy, Conversations

#: the store's conversation kind for /chat
KIND = "chat"


@dataclass(frozen=True, slots=True)
class Exchange:
    """One turn: what the user said and what the assistant answered.

    `partial` marks a reply cut short (the client went away, or the provider failed after
    it started): the text is what was produced before that."""

    user: str
    assistant: str
    partial: bool = False
    agent: str | None = None
    at: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class Recalled:
    """A conversation as the store holds it: its exchanges, oldest first, and how many
    items it has held in all (trimmed ones included)."""

    exchanges: list[Exchange]
    items: int


def policy(*, ttl_seconds: float, max_turns: int, max_conversations: int
           ) -> ConversationPolicy:
    """The store policy for chat memory: two items per exchange."""
    return ConversationPolicy(ttl_seconds=ttl_seconds, max_items=2 * max_turns,
                              max_conversations=max_conversations)


def _exchanges(items: list[ConversationItem]) -> list[Exchange]:
    """Pair user items with the assistant item after them. Items are appended in pairs
    and trimmed to an even count, so an unpaired item only appears if the store was
    written otherwise; it is skipped rather than shown half."""
    out: list[Exchange] = []
    pending: ConversationItem | None = None
    for item in items:
        if item.role == "user":
            pending = item
        elif item.role == "assistant" and pending is not None:
            out.append(Exchange(user=pending.content, assistant=item.content,
                                partial=item.partial, agent=item.agent, at=pending.at))
            pending = None
    return out


def _count(items: list[ConversationItem]) -> int:
    if not items:
        return 0
    n = items[-1].data.get("n")
    return n if isinstance(n, int) else len(items)


class ChatMemory:
    """The chat conversations of one app, in the store (see the module docstring)."""

    def __init__(self, conversations: Conversations) -> None:
        self.conversations = conversations

    async def recall(self, conversation_id: str) -> Recalled | None:
        """The conversation, or None when unknown or expired (refreshes its TTL and LRU
        position)."""
        conversation = await self.conversations.get(conversation_id)
        if conversation is None:
            return None
        return Recalled(_exchanges(conversation.items), _count(conversation.items))

    async def history(self, conversation_id: str) -> list[Exchange]:
        """The exchanges, oldest first ([] when unknown or expired)."""
        recalled = await self.recall(conversation_id)
        return recalled.exchanges if recalled is not None else []

    async def remember(self, conversation_id: str, exchange: Exchange, *,
                       after: int | None = None) -> int:
        """Append one exchange; returns the conversation's item count after it.

        `after` is the count the caller recalled at the start of the turn (it holds the
        conversation's turn lock, so nobody appended since); without it the count is read
        first."""
        if after is None:
            recalled = await self.recall(conversation_id)
            after = recalled.items if recalled is not None else 0
        user = ConversationItem(role="user", content=exchange.user, agent=exchange.agent,
                                at=exchange.at, data={"n": after + 1})
        reply = ConversationItem(role="assistant", content=exchange.assistant,
                                 agent=exchange.agent, partial=exchange.partial,
                                 at=exchange.at, data={"n": after + 2})
        kept = await self.conversations.append(conversation_id, user, reply)
        return _count(kept.items)

    async def forget(self, conversation_id: str) -> bool:
        """Drop a conversation. True when it existed."""
        return await self.conversations.delete(conversation_id)
