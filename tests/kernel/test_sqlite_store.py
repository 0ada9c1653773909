"""The SQLite store keeps runs and their event logs across a reopen (a restart)."""

from __future__ import annotations

from pathlib import Path

import pytest

from armillary.errors import StartupError
from armillary.models import Run, RunStatus
from armillary.sqlite_store import SQLiteRunStore, path_from_url


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
