"""The RunStore contract, run against every built-in store (memory and SQLite)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from armillary._errors import NotFound
from armillary._memory_store import MemoryRunStore
from armillary._models import Run, RunStatus
from armillary._sqlite_store import SQLiteRunStore
from armillary._store import RunStore


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RunStore]:
    s: RunStore = (MemoryRunStore() if request.param == "memory"
                   else SQLiteRunStore(f"sqlite:///{tmp_path / 'runs.db'}"))
    await s.open()
    yield s
    await s.close()


async def test_a_created_run_reads_back_equal(store: RunStore) -> None:
    run = Run(goal="hello", metadata={"k": [1, 2]})
    await store.create_run(run)
    assert await store.get_run(run.id) == run
    assert await store.get_run("run_missing") is None


async def test_update_changes_fields_and_bumps_updated_at(store: RunStore) -> None:
    run = await store.create_run(Run(goal="g", updated_at=1.0))
    updated = await store.update_run(run.id, status=RunStatus.RUNNING, steps_taken=3)
    assert updated.status is RunStatus.RUNNING and updated.steps_taken == 3
    assert updated.updated_at > 1.0
    assert await store.get_run(run.id) == updated
    with pytest.raises(NotFound):
        await store.update_run("run_missing", steps_taken=1)


async def test_event_seq_starts_at_one_and_never_repeats(store: RunStore) -> None:
    run = await store.create_run(Run(goal="g"))
    events = [await store.append_event(run.id, "step", {"n": i}) for i in range(5)]
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert [e.payload["n"] for e in await store.events(run.id)] == [0, 1, 2, 3, 4]
    assert [e.seq for e in await store.events(run.id, after_seq=3)] == [4, 5]
    with pytest.raises(NotFound):
        await store.append_event("run_missing", "step", {})


async def test_events_filter_by_type_with_limit_and_offset(store: RunStore) -> None:
    run = await store.create_run(Run(goal="g"))
    for i in range(6):
        await store.append_event(run.id, "step" if i % 2 else "token", {"i": i})
    steps = await store.events(run.id, types=["step"])
    assert [e.payload["i"] for e in steps] == [1, 3, 5]
    page = await store.events(run.id, types=["step"], limit=1, offset=1)
    assert [e.payload["i"] for e in page] == [3]
    assert await store.count_events(run.id, types=["step"]) == 3
    assert await store.count_events(run.id) == 6


async def test_list_and_count_runs_newest_first_by_status(store: RunStore) -> None:
    a = await store.create_run(Run(goal="a", created_at=1.0))
    b = await store.create_run(Run(goal="b", created_at=2.0, status=RunStatus.COMPLETED))
    c = await store.create_run(Run(goal="c", created_at=3.0))
    assert [r.id for r in await store.list_runs()] == [c.id, b.id, a.id]
    assert [r.id for r in await store.list_runs(status=[RunStatus.QUEUED])] == [c.id, a.id]
    assert [r.id for r in await store.list_runs(limit=1, offset=1)] == [b.id]
    assert await store.count_runs(status=[RunStatus.COMPLETED]) == 1
    assert await store.count_runs() == 3


async def test_prune_removes_old_or_excess_finished_runs_and_their_events(
        store: RunStore) -> None:
    now = time.time()
    old = await store.create_run(Run(goal="old", status=RunStatus.COMPLETED,
                                     finished_at=now - 1000))
    mid = await store.create_run(Run(goal="mid", status=RunStatus.FAILED, finished_at=now - 10))
    new = await store.create_run(Run(goal="new", status=RunStatus.COMPLETED, finished_at=now))
    live = await store.create_run(Run(goal="live", status=RunStatus.RUNNING))
    await store.append_event(old.id, "step", {})
    assert await store.prune(older_than=now - 100) == 1
    assert await store.get_run(old.id) is None
    assert await store.events(old.id) == []
    assert await store.prune(keep=1) == 1
    assert await store.get_run(mid.id) is None
    assert await store.get_run(new.id) is not None
    assert await store.get_run(live.id) is not None
