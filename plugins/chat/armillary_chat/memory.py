"""Conversation memory: per-conversation history with a TTL, a max-turns cap and LRU eviction.

One `ConversationMemory` per app. Each conversation keeps its newest `max_turns` exchanges
(user message + assistant reply). A conversation idle for longer than `ttl_seconds` is
forgotten; when more than `max_conversations` are held, the least recently used goes first.
So memory is bounded by `max_conversations * max_turns` exchanges whatever the traffic.

Every method does its work without awaiting anything inside the critical section, under
one `asyncio.Lock`: the lock keeps that true if a subclass ever stores to something that
does I/O, and the sync `_…` methods let a cancelled stream record its partial reply
without awaiting.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field


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


@dataclass(slots=True)
class _Conversation:
    exchanges: deque[Exchange]
    last_used: float


class ConversationMemory:
    """TTL + max-turns + LRU conversation store (see the module docstring)."""

    def __init__(self, *, ttl_seconds: float = 3600.0, max_turns: int = 10,
                 max_conversations: int = 1000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_turns < 1 or max_conversations < 1 or ttl_seconds <= 0:
            raise ValueError("max_turns and max_conversations must be >= 1, ttl_seconds > 0")
        self.ttl_seconds = ttl_seconds
        self.max_turns = max_turns
        self.max_conversations = max_conversations
        self._clock = clock
        # oldest use first: expiry and LRU eviction both pop from the front
        self._conversations: OrderedDict[str, _Conversation] = OrderedDict()
        self._lock = asyncio.Lock()
        #: conversations dropped because of the cap (not the TTL), for the stats
        self.evicted = 0
        self.expired = 0

    def __len__(self) -> int:
        return len(self._conversations)

    # --- async API (what routes use) ----------------------------------------------------

    async def history(self, conversation_id: str) -> list[Exchange]:
        """The conversation's exchanges, oldest first ([] when unknown or expired).
        Reading counts as use: it refreshes the conversation's TTL and LRU position."""
        async with self._lock:
            return self._history(conversation_id)

    async def append(self, conversation_id: str, exchange: Exchange) -> None:
        """Add one exchange, dropping the oldest beyond `max_turns` and the least recently
        used conversation beyond `max_conversations`."""
        async with self._lock:
            self._append(conversation_id, exchange)

    async def forget(self, conversation_id: str) -> bool:
        """Drop a conversation. True when it existed."""
        async with self._lock:
            return self._conversations.pop(conversation_id, None) is not None

    async def exists(self, conversation_id: str) -> bool:
        async with self._lock:
            self._expire(self._clock())
            return conversation_id in self._conversations

    # --- sync core ----------------------------------------------------------------------

    def _expire(self, now: float) -> None:
        cutoff = now - self.ttl_seconds
        convs = self._conversations
        while convs:
            key, conv = next(iter(convs.items()))
            if conv.last_used > cutoff:
                break
            del convs[key]
            self.expired += 1

    def _history(self, conversation_id: str) -> list[Exchange]:
        now = self._clock()
        self._expire(now)
        conv = self._conversations.get(conversation_id)
        if conv is None:
            return []
        conv.last_used = now
        self._conversations.move_to_end(conversation_id)
        return list(conv.exchanges)

    def _append(self, conversation_id: str, exchange: Exchange) -> None:
        now = self._clock()
        self._expire(now)
        conv = self._conversations.get(conversation_id)
        if conv is None:
            conv = _Conversation(deque(maxlen=self.max_turns), now)
            self._conversations[conversation_id] = conv
            while len(self._conversations) > self.max_conversations:
                self._conversations.popitem(last=False)
                self.evicted += 1
        conv.exchanges.append(exchange)
        conv.last_used = now
        self._conversations.move_to_end(conversation_id)
