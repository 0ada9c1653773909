"""The event bus interface: publish events on topics, subscribe with bounded queues.

A topic is usually a run id. Subscribers get a bounded queue; a subscriber that falls
behind is marked `lagged` and its oldest events are dropped, so memory never grows
without bound: transports recover what was dropped by replaying from the store.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator

from armillary.models import Event


class Subscription(abc.ABC):
    """An async iterator of events for one topic. Always `close()` it (or use `async with`)."""

    #: set when events were dropped because this subscriber was slow
    lagged: bool = False

    @abc.abstractmethod
    def __aiter__(self) -> AsyncIterator[Event]: ...

    @abc.abstractmethod
    async def get(self, timeout: float | None = None) -> Event | None:
        """The next event, or None when `timeout` passes or the subscription is closed."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class EventBus(abc.ABC):
    async def start(self) -> None:  # noqa: B027 - optional
        """Connect. Called once at startup."""

    async def stop(self) -> None:  # noqa: B027 - optional
        """Disconnect. Called once at shutdown."""

    @abc.abstractmethod
    async def publish(self, topic: str, event: Event) -> None: ...

    @abc.abstractmethod
    def subscribe(self, topic: str, *, max_queue: int = 1024) -> Subscription: ...
