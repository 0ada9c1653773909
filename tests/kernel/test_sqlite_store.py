"""The SQLite store keeps runs and their event logs across a reopen (a restart)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from armillary._errors import StartupError
from armillary._models import Run, RunStatus
from armillary._sqlite_store import SQLiteRunStore, path_from_url


async def test_runs_and_events_survive_closing_and_reopening(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'runs.db'}"
    first = SQLiteRunStore(url)
    await first.open()
    run = await first.create_run(Run(goal="persist me"))
    await first.update_run(run.id, status=RunStatus.RUNNING)
    await first.append_event(run.id, "queued", {"a": 1})
    await first.append_event(run.id, "step", {"step_number": 1})
    await first.close()

    second = SQLiteRunStore(url)
    await second.open()
    again = await second.get_run(run.id)
    assert again is not None and again.status is RunStatus.RUNNING
    assert [e.type for e in await second.events(run.id)] == ["queued", "step"]
    assert (await second.append_event(run.id, "completed", {})).seq == 3
    await second.close()


async def test_the_file_is_in_wal_mode(tmp_path: Path) -> None:
    store = SQLiteRunStore(f"sqlite:///{tmp_path / 'wal.db'}")
    await store.open()
    mode = await store._call(lambda db: db.execute("PRAGMA journal_mode").fetchone()[0])
    assert mode == "wal"
    await store.close()


def test_a_malformed_url_is_a_startup_error() -> None:
    with pytest.raises(StartupError):
        path_from_url("sqlite://")
    assert path_from_url("sqlite:///:memory:") == ":memory:"
    assert path_from_url("sqlite:////abs/x.db") == "/abs/x.db"


async def test_a_second_store_on_the_same_file_is_refused_naming_the_holder(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    first = SQLiteRunStore(url)
    await first.open()
    second = SQLiteRunStore(url)
    with pytest.raises(StartupError) as info:
        await second.open()
    assert str(info.value) == (f"store {tmp_path / 'runs.db'} is in use by another "
                               f"armillary process (pid {os.getpid()})")
    assert (await first.create_run(Run(goal="still mine"))).goal == "still mine"
    await first.close()
    await second.open()  # free again once the first closed
    assert await second.count_runs() == 1
    await second.close()


async def test_a_failed_prune_rolls_back_and_leaves_the_store_writable(tmp_path: Path) -> None:
    store = SQLiteRunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    await store.open()
    try:
        run = await store.create_run(Run(goal="done"))
        await store.update_run(run.id, status=RunStatus.COMPLETED, finished_at=1.0)
        await store._call(lambda db: db.execute(
            "CREATE TRIGGER refuse BEFORE DELETE ON runs BEGIN SELECT RAISE(ABORT, 'no'); END"))
        with pytest.raises(sqlite3.Error):
            await store.prune(keep=0)
        assert await store._call(lambda db: db.in_transaction) is False
        await store._call(lambda db: db.execute("DROP TRIGGER refuse"))
        assert await store.prune(keep=0) == 1
    finally:
        await store.close()
