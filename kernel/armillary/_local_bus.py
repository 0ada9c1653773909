"""`LocalEventBus`: in-process publish/subscribe with bounded per-subscriber queues.

Publishing never blocks and never awaits a subscriber: each subscriber has a bounded
deque; when it is full the oldest event is dropped and the subscription is marked
`lagged` (transports then re-read the gap from the store).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

from armillary._events import EventBus, Subscription
from armillary._models import Event


class LocalSubscription(Subscription):
    __slots__ = ("_bus", "_queue", "_topic", "_waiter", "closed", "lagged")

    def __init__(self, bus: LocalEventBus, topic: str, max_queue: int) -> None:
        self._bus = bus
        self._topic = topic
        self._queue: deque[Event] = deque(maxlen=max_queue)
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False
        self.lagged = False

    def _push(self, event: Event) -> None:
        queue = self._queue
        if len(queue) == queue.maxlen:
            self.lagged = True  # the append below drops the oldest
        queue.append(event)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self, timeout: float | None = None) -> Event | None:
        while not self._queue:
            if self.closed:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                if timeout is None:
                    await self._waiter
                else:
                    await asyncio.wait_for(self._waiter, timeout)
            except TimeoutError:
                return None
            finally:
                self._waiter = None
        return self._queue.popleft()

    def drain(self) -> list[Event]:
        """Every event queued now, without waiting (for transports that batch writes)."""
        items = list(self._queue)
        self._queue.clear()
        return items

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            event = await self.get()
            if event is None:
                return
            yield event

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._bus._remove(self._topic, self)
            self._wake()


class LocalEventBus(EventBus):
    def __init__(self) -> None:
        self._topics: dict[str, set[LocalSubscription]] = {}

    async def publish(self, topic: str, event: Event) -> None:
        for sub in tuple(self._topics.get(topic, ())):
            sub._push(event)

    def subscribe(self, topic: str, *, max_queue: int = 1024) -> Subscription:
        sub = LocalSubscription(self, topic, max_queue)
        self._topics.setdefault(topic, set()).add(sub)
        return sub

    def _remove(self, topic: str, sub: LocalSubscription) -> None:
        subs = self._topics.get(topic)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._topics[topic]

    async def stop(self) -> None:
        for subs in list(self._topics.values()):
            for sub in list(subs):
                await sub.close()

    def subscriber_count(self, topic: str) -> int:
        return len(self._topics.get(topic, ()))
