"""One turn at a time per conversation.

Two requests in one conversation at once would both read the same history and append
their exchanges interleaved, each answered as if the other had not happened. A turn holds
its conversation's lock from reading the history until its exchange is remembered (for a
stream: until the stream ended); the next request in that conversation waits its turn.

`TurnLocks` keeps a lock only while some request holds it or waits for it, so it holds at
most as many locks as there are requests in flight, whatever the number of conversations.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: requests holding or waiting for the lock
    users: int = 0


class TurnLocks:
    """`release = await locks.acquire(conversation_id)`, then `release()` once (calling it
    again does nothing)."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def acquire(self, conversation_id: str) -> Callable[[], None]:
        """Wait for the conversation's turn; cancelling the wait leaves nothing held."""
        entry = self._entries.get(conversation_id)
        if entry is None:
            entry = self._entries[conversation_id] = _Entry()
        entry.users += 1
        try:
            await entry.lock.acquire()
        except BaseException:
            self._leave(conversation_id, entry)
            raise
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                entry.lock.release()
                self._leave(conversation_id, entry)

        return release

    def _leave(self, conversation_id: str, entry: _Entry) -> None:
        entry.users -= 1
        if entry.users == 0 and self._entries.get(conversation_id) is entry:
            del self._entries[conversation_id]
