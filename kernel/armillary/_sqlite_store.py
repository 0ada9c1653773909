"""`SQLiteRunStore`: runs and event logs in one SQLite file (the default for `serve`).

Standard-library `sqlite3` on one dedicated thread (SQLite connections are not shared
across threads, and one writer is all SQLite allows anyway), in WAL mode so readers in
other processes never block the writer. `synchronous=NORMAL`: a power cut can lose the
last few commits but never corrupts the file.

URLs: `sqlite:///relative/or/absolute/path.db`, `sqlite:///:memory:`.

One process per file: `open()` takes an exclusive advisory lock (`flock`) on
`<path>.lock` (which records the holder's pid), so a second `armillary serve` on the
same file fails to start instead of marking the first one's live runs interrupted and
colliding with its event sequence numbers. The lock goes with the process (even on
SIGKILL); the `.lock` file itself may stay, harmlessly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, TypeVar

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory lock
    fcntl = None  # type: ignore[assignment]

from armillary import _sqlite_conversations as conversations
from armillary._conversations import Conversation, ConversationItem, ConversationPolicy
from armillary._errors import NotFound, StartupError
from armillary._models import Event, Run, RunStatus, new_id
from armillary._store import RunStore, principal_name, stamp_owner

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    finished_at REAL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, created_at);
CREATE INDEX IF NOT EXISTS runs_by_created ON runs (created_at);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    type TEXT NOT NULL,
    ts REAL NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_by_type ON events (run_id, type, seq);
"""

_FINISHED = [s.value for s in RunStatus if s.finished]


def migrate(db: sqlite3.Connection) -> None:
    """Bring a file written by an older version up to date: the `owner` column of
    `runs` (a run's `Run.owner`, also in its JSON `data`), filled from that JSON."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    if "owner" not in columns:
        db.execute("ALTER TABLE runs ADD COLUMN owner TEXT")
        db.execute("UPDATE runs SET owner = json_extract(data, '$.owner')")
    db.execute("CREATE INDEX IF NOT EXISTS runs_by_owner ON runs (owner, created_at)")


def _where(status: list[RunStatus] | None, owner: str | None) -> tuple[str, list[Any]]:
    clauses: list[str] = ["1"]
    args: list[Any] = []
    if status is not None:
        clause, values = _in("status", [s.value for s in status])
        clauses.append(clause)
        args += values
    if owner is not None:
        clauses.append("owner = ?")
        args.append(owner)
    return " AND ".join(clauses), args


def path_from_url(url: str) -> str:
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise StartupError(f"[kernel] store: {url!r} is not a SQLite URL "
                           f"(sqlite:///path/to/file.db or sqlite:///:memory:)")
    return url[len(prefix):]


def _in(column: str, values: list[str]) -> tuple[str, list[str]]:
    return f"{column} IN ({','.join('?' * len(values))})", values


class SQLiteRunStore(RunStore):
    def __init__(self, url: str, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path_from_url(url)
        self._clock = clock
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None
        self._last_seq: dict[str, int] = {}
        self._lock_file: IO[str] | None = None

    def _take_lock(self) -> None:
        """Lock `<path>.lock` for this process, or fail saying which process holds it."""
        if self.path == ":memory:" or fcntl is None:
            return
        lock_path = f"{self.path}.lock"
        where = os.path.abspath(self.path)
        try:
            handle = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115 - kept open
        except OSError as exc:
            raise StartupError(f"[kernel] store: cannot create the lock file {lock_path}: "
                               f"{exc.strerror or exc}") from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            pid = handle.read().strip() or "unknown"
            handle.close()
            raise StartupError(f"store {where} is in use by another armillary process "
                               f"(pid {pid})") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock_file = handle

    def _drop_lock(self) -> None:
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                self._lock_file.close()  # closing releases the flock
            self._lock_file = None

    # --- plumbing ------------------------------------------------------------------

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._executor is None or self._db is None:
            raise StartupError("the SQLite store is not open")
        db = self._db
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, db)

    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="armillary-sqlite")

        def connect() -> sqlite3.Connection:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=5000")
            db.executescript(SCHEMA)
            migrate(db)
            db.executescript(conversations.SCHEMA)
            return db

        loop = asyncio.get_running_loop()
        try:
            self._db = await loop.run_in_executor(self._executor, connect)
        except sqlite3.Error as exc:
            self._executor.shutdown(wait=False)
            self._executor = None
            self._drop_lock()
            raise StartupError(f"[kernel] store: cannot open SQLite file {self.path}: {exc}") \
                from None

    async def close(self) -> None:
        if self._db is not None and self._executor is not None:
            db = self._db
            await asyncio.get_running_loop().run_in_executor(self._executor, db.close)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._db, self._executor = None, None
        self._drop_lock()

    # --- runs ----------------------------------------------------------------------

    async def create_run(self, run: Run) -> Run:
        run = stamp_owner(run)
        row = (run.id, run.status.value, run.created_at, run.finished_at, run.owner,
               run.model_dump_json())
        await self._call(lambda db: db.execute(
            "INSERT INTO runs (id, status, created_at, finished_at, owner, data) "
            "VALUES (?,?,?,?,?,?)", row))
        self._last_seq[run.id] = 0
        return run

    async def get_run(self, run_id: str) -> Run | None:
        row = await self._call(lambda db: db.execute(
            "SELECT data FROM runs WHERE id = ?", (run_id,)).fetchone())
        return Run.model_validate_json(row[0]) if row else None

    async def update_run(self, run_id: str, **changes: Any) -> Run:
        changes.setdefault("updated_at", time.time())

        def update(db: sqlite3.Connection) -> Run | None:
            row = db.execute("SELECT data FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                return None
            run = Run.model_validate({**json.loads(row[0]), **changes})
            db.execute("UPDATE runs SET status = ?, finished_at = ?, owner = ?, data = ? "
                       "WHERE id = ?", (run.status.value, run.finished_at, run.owner,
                                        run.model_dump_json(), run_id))
            return run

        run = await self._call(update)
        if run is None:
            raise NotFound(f"no run {run_id!r}", code="run_not_found")
        return run

    async def list_runs(self, *, status: list[RunStatus] | None = None, limit: int = 50,
                        offset: int = 0, owner: str | None = None) -> list[Run]:
        where, args = _where(status, owner)
        rows = await self._call(lambda db: db.execute(
            f"SELECT data FROM runs WHERE {where} ORDER BY created_at DESC LIMIT ? OFFSET ?",
            [*args, limit, offset]).fetchall())
        return [Run.model_validate_json(r[0]) for r in rows]

    async def count_runs(self, *, status: list[RunStatus] | None = None,
                         owner: str | None = None) -> int:
        where, args = _where(status, owner)
        row = await self._call(lambda db: db.execute(
            f"SELECT COUNT(*) FROM runs WHERE {where}", args).fetchone())
        return int(row[0])

    # --- events --------------------------------------------------------------------

    async def append_event(self, run_id: str, type: str, payload: dict[str, Any]) -> Event:
        event_id, ts, data = new_id("evt_"), time.time(), json.dumps(payload, default=str)

        def append(db: sqlite3.Connection) -> int | None:
            last = self._last_seq.get(run_id)
            if last is None:
                if db.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                    return None
                row = db.execute("SELECT MAX(seq) FROM events WHERE run_id = ?",
                                 (run_id,)).fetchone()
                last = int(row[0] or 0)
            seq = last + 1
            db.execute("INSERT INTO events (run_id, seq, id, type, ts, payload) "
                       "VALUES (?,?,?,?,?,?)", (run_id, seq, event_id, type, ts, data))
            self._last_seq[run_id] = seq
            return seq

        seq = await self._call(append)
        if seq is None:
            raise NotFound(f"no run {run_id!r}", code="run_not_found")
        return Event(id=event_id, run_id=run_id, seq=seq, type=type, ts=ts,
                     payload=json.loads(data))

    async def events(self, run_id: str, *, after_seq: int = 0, types: list[str] | None = None,
                     limit: int | None = None, offset: int = 0) -> list[Event]:
        sql = "SELECT seq, id, type, ts, payload FROM events WHERE run_id = ? AND seq > ?"
        args: list[Any] = [run_id, after_seq]
        if types is not None:
            clause, values = _in("type", types)
            sql, args = f"{sql} AND {clause}", [*args, *values]
        sql += " ORDER BY seq LIMIT ? OFFSET ?"
        args += [-1 if limit is None else limit, offset]
        rows = await self._call(lambda db: db.execute(sql, args).fetchall())
        return [Event(id=i, run_id=run_id, seq=s, type=t, ts=ts, payload=json.loads(p))
                for s, i, t, ts, p in rows]

    async def count_events(self, run_id: str, *, types: list[str] | None = None) -> int:
        sql, args = "SELECT COUNT(*) FROM events WHERE run_id = ?", [run_id]
        if types is not None:
            clause, values = _in("type", types)
            sql, args = f"{sql} AND {clause}", [*args, *values]
        row = await self._call(lambda db: db.execute(sql, args).fetchone())
        return int(row[0])

    async def prune(self, *, older_than: float | None = None, keep: int | None = None) -> int:
        finished, values = _in("status", _FINISHED)

        def prune(db: sqlite3.Connection) -> list[str]:
            doomed: set[str] = set()
            if older_than is not None:
                doomed.update(r[0] for r in db.execute(
                    f"SELECT id FROM runs WHERE {finished} AND finished_at < ?",
                    [*values, older_than]))
            if keep is not None:
                doomed.update(r[0] for r in db.execute(
                    f"SELECT id FROM runs WHERE {finished} "
                    f"ORDER BY finished_at DESC LIMIT -1 OFFSET ?", [*values, keep]))
            ids = list(doomed)
            db.execute("BEGIN")
            try:
                for start in range(0, len(ids), 500):
                    chunk = ids[start:start + 500]
                    where, args = _in("id", chunk)
                    db.execute(f"DELETE FROM runs WHERE {where}", args)
                    where, args = _in("run_id", chunk)
                    db.execute(f"DELETE FROM events WHERE {where}", args)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")  # else the open transaction blocks every later write
                raise
            return ids

        removed = await self._call(prune)
        for run_id in removed:
            self._last_seq.pop(run_id, None)
        return len(removed)

    # --- conversations (armillary._sqlite_conversations) -------------------------------

    async def get_conversation(self, kind: str, conversation_id: str, *,
                               policy: ConversationPolicy) -> Conversation | None:
        return await self._call(conversations.get(kind, conversation_id, policy,
                                                  self._clock()))

    async def open_conversation(self, kind: str, conversation_id: str, *,
                                policy: ConversationPolicy, owner: str | None = None,
                                metadata: dict[str, Any] | None = None) -> Conversation:
        return await self._call(conversations.open_(kind, conversation_id, policy,
                                                    self._clock(), owner or principal_name(),
                                                    metadata))

    async def append_items(self, kind: str, conversation_id: str,
                           items: list[ConversationItem], *,
                           policy: ConversationPolicy) -> Conversation:
        return await self._call(conversations.append(kind, conversation_id, items, policy,
                                                     self._clock(), principal_name()))

    async def delete_conversation(self, kind: str, conversation_id: str) -> bool:
        return await self._call(conversations.delete(kind, conversation_id))
