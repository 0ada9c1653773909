"""The event bus interface: publish events on topics, subscribe with bounded queues.

A topic is usually a run id. Subscribers get a bounded queue; a subscriber that falls
behind is marked `lagged` and its oldest events are dropped, so memory never grows
without bound: transports recover what was dropped by replaying from the store.

`follow_run` is what every transport (SSE, WebSocket, the CLI) uses: replay a run's log
from the store after a sequence number, then follow the bus, with no gap and no duplicate,
until the run's end event.
"""

from __future__ import annotations

import abc
import asyncio
import json
import math
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from armillary.models import Event, RunStatus

if TYPE_CHECKING:
    from armillary.store import RunStore

#: lifecycle events are named after the status a run enters; these end a run's log
END_EVENT_TYPES = frozenset(s.value for s in RunStatus if s.finished)
LIFECYCLE_EVENT_TYPES = frozenset(s.value for s in RunStatus)
#: how long a follower of a finished run waits for its end event before closing
FINISHING_WAIT = 0.5


class Subscription(abc.ABC):
    """An async iterator of events for one topic. Always `close()` it (or use `async with`)."""

    #: set when events were dropped because this subscriber was slow
    lagged: bool = False
    #: set once closed (by the subscriber, or by the bus stopping)
    closed: bool = False

    @abc.abstractmethod
    def __aiter__(self) -> AsyncIterator[Event]: ...

    @abc.abstractmethod
    async def get(self, timeout: float | None = None) -> Event | None:
        """The next event, or None when `timeout` passes or the subscription is closed."""

    def drain(self) -> list[Event]:
        """Every event already queued, without waiting (transports batch with it)."""
        return []

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


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def to_json(value: Any, *, compact: bool = True, ensure_ascii: bool = False) -> str:
    """JSON that every parser accepts: NaN and ±Infinity (which `json.dumps` writes as
    bare `NaN`/`Infinity`, invalid JSON for browsers) become null, as they do in the REST
    views; anything else unknown is written as its `str`."""
    options: dict[str, Any] = {"ensure_ascii": ensure_ascii, "default": str,
                               "allow_nan": False}
    if compact:
        options["separators"] = (",", ":")
    try:
        return json.dumps(value, **options)
    except ValueError:  # a non-finite float somewhere
        return json.dumps(_finite(value), **options)


def _end_index(batch: list[Event]) -> int | None:
    for i, event in enumerate(batch):
        if event.type in END_EVENT_TYPES:
            return i
    return None


async def _next(sub: Subscription, timeout: float, stop: asyncio.Event | None) -> Event | None:
    """`sub.get(timeout)`, or None as soon as `stop` is set."""
    if stop is None:
        return await sub.get(timeout)
    if stop.is_set():
        return None
    getter = asyncio.ensure_future(sub.get(timeout))
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not getter.done():
            getter.cancel()  # an event not yet taken stays queued (and is in the store)
    return getter.result() if getter.done() and not getter.cancelled() else None


def coalesce(batch: list[Event], types: frozenset[str] = frozenset({"token"})) -> list[Event]:
    """Merge runs of consecutive `types` events (their `delta` text concatenated) into the
    last of each run, so a transport sends one message where a model streamed many. Ids
    and seqs stay those of the merged event, so resuming after it loses nothing."""
    out: list[Event] = []
    for event in batch:
        prev = out[-1] if out else None
        if (prev is not None and event.type in types and prev.type == event.type
                and isinstance(prev.payload.get("delta"), str)
                and isinstance(event.payload.get("delta"), str)):
            merged = {**event.payload, "delta": prev.payload["delta"] + event.payload["delta"]}
            out[-1] = event.model_copy(update={"payload": merged})
        else:
            out.append(event)
    return out


async def follow_run(store: RunStore, bus: EventBus, run_id: str, *, after_seq: int = 0,
                     idle_timeout: float = 15.0, max_queue: int = 256,
                     page: int = 500, stop: asyncio.Event | None = None
                     ) -> AsyncIterator[list[Event]]:
    """Batches of a run's events with `seq > after_seq`, oldest first: the stored log,
    then live events from the bus, until the end event (included) or the bus closes.

    An empty batch means nothing happened for `idle_timeout` seconds (send a heartbeat).
    A run that is already finished yields its remaining log and stops. Events the bus
    dropped for a slow subscriber are re-read from the store, so nothing is lost. Nothing
    after the first end event is ever yielded. When `stop` is set (the server is shutting
    down) it yields what the log holds by then and stops, end event or not."""
    sub = bus.subscribe(run_id, max_queue=max_queue)
    try:
        last = after_seq
        while True:  # replay; subscribed first, so nothing falls between replay and follow
            batch = await store.events(run_id, after_seq=last, limit=page)
            if not batch:
                break
            end = _end_index(batch)
            if end is not None:
                yield batch[:end + 1]
                return
            last = batch[-1].seq
            yield batch
        run = await store.get_run(run_id)
        if run is None:
            return
        # a run whose status is final may still be appending its end event: wait briefly
        finished = run.status.finished
        while not sub.closed:
            first = await _next(sub, FINISHING_WAIT if finished else idle_timeout, stop)
            if first is None:
                stopping = stop is not None and stop.is_set()
                if not finished and not stopping:
                    current = await store.get_run(run_id)
                    finished = current is None or current.status.finished
                if finished or stopping:  # nothing more is coming: send what is left
                    rest = await store.events(run_id, after_seq=last)
                    end = _end_index(rest)
                    rest = rest if end is None else rest[:end + 1]
                    if rest:
                        yield rest
                    return
                if not sub.closed:
                    yield []
                continue
            batch = [first, *sub.drain()]
            if sub.lagged or batch[0].seq > last + 1:
                sub.lagged = False
                batch = await store.events(run_id, after_seq=last)
            batch = [e for e in batch if e.seq > last]
            if not batch:
                continue
            end = _end_index(batch)
            if end is not None:
                yield batch[:end + 1]
                return
            last = batch[-1].seq
            yield batch
    finally:
        await sub.close()
