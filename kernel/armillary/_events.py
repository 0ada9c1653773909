"""The event bus interface: publish events on topics, subscribe with bounded queues.

A topic is usually a run id. Subscribers get a bounded queue; a subscriber that falls
behind is marked `lagged` and its oldest events are dropped, so memory never grows
without bound: transports recover what was dropped by replaying from the store.

`follow_run` is what every transport (SSE, WebSocket, the CLI) uses: replay a run's log
from the store after a sequence number, then follow the bus, with no gap and no duplicate,
until the run's end event. `follow_topic` follows a bus topic with no replay (a firehose,
a plugin's updates). `coalesce` merges token deltas; `iso` is the one timestamp format on
the wire (the store keeps epoch seconds).
"""

from __future__ import annotations

import abc
import asyncio
import json
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from armillary._models import Event, RunStatus

if TYPE_CHECKING:
    from armillary._store import RunStore

#: lifecycle events are named after the status a run enters; these end a run's log
END_EVENT_TYPES = frozenset(s.value for s in RunStatus if s.finished)
LIFECYCLE_EVENT_TYPES = frozenset(s.value for s in RunStatus)
#: how long a follower of a finished run waits for its end event before closing
FINISHING_WAIT = 0.5
#: the firehose: the runner publishes every run's every event on this topic too (after
#: the run's own topic), so a metrics plugin or a live console subscribes once and sees
#: all runs. Live only: it has no log to replay (each event's `run_id` says whose it is),
#: and a subscriber that falls behind is `lagged` like any other, never slowing a run.
FIREHOSE = "*"


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


def iso(ts: float) -> str:
    """Epoch seconds as ISO 8601 UTC with `Z` (`2026-01-02T03:04:05.678901Z`): how every
    timestamp goes out on the wire — REST bodies (pydantic writes UTC datetimes the same
    way), SSE data and WebSocket messages. The store keeps the epoch float."""
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _end_index(batch: list[Event]) -> int | None:
    for i, event in enumerate(batch):
        if event.type in END_EVENT_TYPES:
            return i
    return None


def _close_when(stop: asyncio.Event | None, sub: Subscription) -> asyncio.Task[None] | None:
    """A task that closes `sub` once `stop` is set, so a pending `get` returns None at
    once. One task per follower: racing every `get` against `stop.wait()` cost two tasks
    per event per follower, which starved the runs producing the events (the 1,000
    subscriber benchmark delivered a tenth of what it did without)."""
    if stop is None:
        return None

    async def close_on_stop() -> None:
        await stop.wait()
        await sub.close()

    return asyncio.create_task(close_on_stop())


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
    closer = _close_when(stop, sub)
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
        while True:
            first = await sub.get(FINISHING_WAIT if finished else idle_timeout)
            if first is None:
                stopping = stop is not None and stop.is_set()
                if sub.closed and not stopping:
                    return  # the bus closed the subscription
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
        if closer is not None:
            closer.cancel()
        await sub.close()


async def follow_topic(bus: EventBus, topic: str, *, idle_timeout: float = 15.0,
                       max_queue: int = 1024, stop: asyncio.Event | None = None
                       ) -> AsyncIterator[list[Event]]:
    """Batches of the events published on `topic` from now on (no replay: a topic has no
    log), until the bus closes the subscription or `stop` is set. An empty batch means
    nothing arrived for `idle_timeout` seconds (send a heartbeat). A subscriber that
    falls behind loses the oldest events (the bus's bounded queue), never memory."""
    sub = bus.subscribe(topic, max_queue=max_queue)
    closer = _close_when(stop, sub)
    try:
        while True:
            first = await sub.get(idle_timeout)
            if first is None:
                if sub.closed or (stop is not None and stop.is_set()):
                    return
                yield []
                continue
            sub.lagged = False  # nothing to re-read: what was dropped is gone
            yield [first, *sub.drain()]
    finally:
        if closer is not None:
            closer.cancel()
        await sub.close()
