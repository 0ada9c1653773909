"""The local event bus and `follow_run`: bounded queues, replay + follow without loss."""

from __future__ import annotations

import asyncio

import pytest

from armillary._events import follow_run
from armillary._local_bus import LocalEventBus
from armillary._memory_store import MemoryRunStore
from armillary._models import Event, Run


def event(seq: int, type: str = "step") -> Event:
    return Event(id=f"e{seq}", run_id="r", seq=seq, type=type)


async def test_subscribers_get_published_events_in_order() -> None:
    bus = LocalEventBus()
    sub = bus.subscribe("r")
    for i in range(1, 4):
        await bus.publish("r", event(i))
    assert [(await sub.get(1)).seq for _ in range(3)] == [1, 2, 3]  # type: ignore[union-attr]
    assert await sub.get(0.01) is None
    await sub.close()
    assert bus.subscriber_count("r") == 0


async def test_a_slow_subscriber_is_marked_lagged_and_its_queue_stays_bounded() -> None:
    bus = LocalEventBus()
    sub = bus.subscribe("r", max_queue=3)
    for i in range(1, 11):
        await bus.publish("r", event(i))
    assert sub.lagged
    assert [e.seq for e in sub.drain()] == [8, 9, 10]


async def test_closing_wakes_a_waiting_reader() -> None:
    bus = LocalEventBus()
    sub = bus.subscribe("r")
    reader = asyncio.create_task(sub.get())
    await asyncio.sleep(0)
    await bus.stop()
    assert await asyncio.wait_for(reader, 1) is None
    assert sub.closed


async def emit(store: MemoryRunStore, bus: LocalEventBus, run_id: str, type: str) -> None:
    await bus.publish(run_id, await store.append_event(run_id, type, {}))


async def test_follow_run_replays_then_follows_with_no_gap_or_duplicate() -> None:
    store, bus = MemoryRunStore(), LocalEventBus()
    run = await store.create_run(Run(goal="g"))
    for _ in range(3):
        await emit(store, bus, run.id, "step")
    seen: list[int] = []

    async def consume() -> None:
        async for batch in follow_run(store, bus, run.id, after_seq=1, idle_timeout=0.05):
            seen.extend(e.seq for e in batch)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.02)
    for _ in range(3):
        await emit(store, bus, run.id, "step")
    await emit(store, bus, run.id, "completed")
    await asyncio.wait_for(task, 2)
    assert seen == [2, 3, 4, 5, 6, 7]
    assert bus.subscriber_count(run.id) == 0


async def test_follow_run_recovers_events_dropped_for_a_slow_consumer() -> None:
    store, bus = MemoryRunStore(), LocalEventBus()
    run = await store.create_run(Run(goal="g"))
    seen: list[int] = []
    stream = follow_run(store, bus, run.id, max_queue=2, idle_timeout=0.05)
    first = asyncio.create_task(anext(stream))  # subscribes, replays nothing, waits
    await asyncio.sleep(0.01)
    for _ in range(10):
        await emit(store, bus, run.id, "step")
    await emit(store, bus, run.id, "completed")
    seen.extend(e.seq for e in await first)
    async for batch in stream:
        seen.extend(e.seq for e in batch)
    assert seen == list(range(1, 12))


async def test_follow_run_on_a_finished_run_replays_everything_and_stops() -> None:
    store, bus = MemoryRunStore(), LocalEventBus()
    run = await store.create_run(Run(goal="g"))
    for t in ("queued", "running", "step", "completed"):
        await emit(store, bus, run.id, t)
    batches = [b async for b in follow_run(store, bus, run.id)]
    assert [e.type for b in batches for e in b] == ["queued", "running", "step", "completed"]


async def test_follow_run_sends_heartbeats_while_idle() -> None:
    store, bus = MemoryRunStore(), LocalEventBus()
    run = await store.create_run(Run(goal="g"))
    stream = follow_run(store, bus, run.id, idle_timeout=0.01)
    assert await asyncio.wait_for(anext(stream), 1) == []
    await stream.aclose()


async def test_follow_run_never_yields_anything_after_the_first_end_event() -> None:
    store, bus = MemoryRunStore(), LocalEventBus()
    run = await store.create_run(Run(goal="g"))
    for t in ("queued", "running", "cancelled", "step", "completed"):  # a log a race broke
        await emit(store, bus, run.id, t)
    replayed = [e.type async for b in follow_run(store, bus, run.id) for e in b]
    assert replayed == ["queued", "running", "cancelled"]
    resumed = [e.type async for b in follow_run(store, bus, run.id, after_seq=1) for e in b]
    assert resumed == ["running", "cancelled"]


async def test_follow_run_stops_when_the_server_is_stopping() -> None:
    store, bus = MemoryRunStore(), LocalEventBus()
    run = await store.create_run(Run(goal="g"))
    await emit(store, bus, run.id, "queued")
    stop = asyncio.Event()
    stream = follow_run(store, bus, run.id, idle_timeout=30, stop=stop)
    assert [e.type for e in await anext(stream)] == ["queued"]
    waiting = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.05)
    await emit(store, bus, run.id, "running")
    assert [e.type for e in await asyncio.wait_for(waiting, 1)] == ["running"]
    waiting = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # an idle live run: nothing yet (heartbeats every 30 s)
    stop.set()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 1)
    assert bus.subscriber_count(run.id) == 0
