"""The SQLite store and ownership: an old file (from before `Run.owner`) gets the
column on open, filled from each run's JSON; runs created as a principal are theirs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from armillary import Principal, Run, RunStatus, acting_as
from armillary._sqlite_store import SQLiteRunStore


async def test_the_sqlite_store_adds_the_owner_column_to_an_old_file(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE runs (id TEXT PRIMARY KEY, status TEXT NOT NULL, "
                     "created_at REAL NOT NULL, finished_at REAL, data TEXT NOT NULL);")
    old = Run(id="run_old", goal="from before auth", status=RunStatus.COMPLETED)
    data = old.model_dump_json(exclude={"owner"})
    db.execute("INSERT INTO runs VALUES (?,?,?,?,?)",
               (old.id, old.status.value, old.created_at, None, data))
    db.commit()
    db.close()
    store = SQLiteRunStore(f"sqlite:///{path}")
    await store.open()
    try:
        assert (await store.get_run("run_old")).owner is None  # type: ignore[union-attr]
        with acting_as(Principal(name="dave", scopes=frozenset({"read", "submit"}))):
            await store.create_run(Run(id="run_new", goal="after"))
        assert [r.id for r in await store.list_runs(owner="dave")] == ["run_new"]
        assert await store.count_runs(owner="dave") == 1 and await store.count_runs() == 2
    finally:
        await store.close()
    columns = [r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(runs)")]
    assert "owner" in columns
