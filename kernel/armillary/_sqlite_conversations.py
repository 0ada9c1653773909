"""Conversations in the SQLite store: the tables and the (synchronous) statements.

Called on the store's one database thread (`SQLiteRunStore._call`), each function in one
transaction. Items are rows numbered per conversation (`idx` grows, never reused), so
trimming to `max_items` is one range delete.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from armillary._conversations import Conversation, ConversationItem, ConversationPolicy

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    owner TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    used_at REAL NOT NULL,
    next_idx INTEGER NOT NULL DEFAULT 0,
    metadata TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (kind, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS conversations_by_use ON conversations (kind, used_at);
CREATE TABLE IF NOT EXISTS conversation_items (
    kind TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (kind, conversation_id, idx)
) WITHOUT ROWID;
"""


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _delete(db: sqlite3.Connection, kind: str, ids: list[str]) -> None:
    for conversation_id in ids:
        db.execute("DELETE FROM conversations WHERE kind = ? AND id = ?", (kind, conversation_id))
        db.execute("DELETE FROM conversation_items WHERE kind = ? AND conversation_id = ?",
                   (kind, conversation_id))


def _expire(db: sqlite3.Connection, kind: str, policy: ConversationPolicy, now: float) -> None:
    if policy.ttl_seconds is None:
        return
    rows = db.execute("SELECT id FROM conversations WHERE kind = ? AND used_at <= ?",
                      (kind, now - policy.ttl_seconds)).fetchall()
    _delete(db, kind, [r[0] for r in rows])


def _evict(db: sqlite3.Connection, kind: str, policy: ConversationPolicy, keep: str) -> None:
    """Beyond `max_conversations`, drop the least recently used (never `keep`, the one
    just used)."""
    if policy.max_conversations is None:
        return
    rows = db.execute("SELECT id FROM conversations WHERE kind = ? AND id != ? "
                      "ORDER BY used_at DESC LIMIT -1 OFFSET ?",
                      (kind, keep, policy.max_conversations - 1)).fetchall()
    _delete(db, kind, [r[0] for r in rows])


def _load(db: sqlite3.Connection, kind: str, conversation_id: str) -> Conversation | None:
    row = db.execute("SELECT owner, created_at, updated_at, metadata FROM conversations "
                     "WHERE kind = ? AND id = ?", (kind, conversation_id)).fetchone()
    if row is None:
        return None
    items = db.execute("SELECT data FROM conversation_items WHERE kind = ? AND "
                       "conversation_id = ? ORDER BY idx", (kind, conversation_id)).fetchall()
    return Conversation(id=conversation_id, kind=kind, owner=row[0], created_at=row[1],
                        updated_at=row[2], metadata=json.loads(row[3]),
                        items=[ConversationItem.model_validate_json(i[0]) for i in items])


def _touch(db: sqlite3.Connection, kind: str, conversation_id: str, now: float) -> None:
    db.execute("UPDATE conversations SET used_at = ? WHERE kind = ? AND id = ?",
               (now, kind, conversation_id))


def _create(db: sqlite3.Connection, kind: str, conversation_id: str, now: float,
            owner: str | None, metadata: dict[str, Any] | None) -> None:
    db.execute("INSERT OR IGNORE INTO conversations (kind, id, owner, created_at, updated_at, "
               "used_at, metadata) VALUES (?,?,?,?,?,?,?)",
               (kind, conversation_id, owner, now, now, now,
                json.dumps(metadata or {}, default=str)))


def get(kind: str, conversation_id: str, policy: ConversationPolicy, now: float
        ) -> Callable[[sqlite3.Connection], Conversation | None]:
    def run(db: sqlite3.Connection) -> Conversation | None:
        with _transaction(db):
            _expire(db, kind, policy, now)
            _touch(db, kind, conversation_id, now)
            return _load(db, kind, conversation_id)
    return run


def open_(kind: str, conversation_id: str, policy: ConversationPolicy, now: float,
          owner: str | None, metadata: dict[str, Any] | None
          ) -> Callable[[sqlite3.Connection], Conversation]:
    def run(db: sqlite3.Connection) -> Conversation:
        with _transaction(db):
            _expire(db, kind, policy, now)
            _create(db, kind, conversation_id, now, owner, metadata)
            _touch(db, kind, conversation_id, now)
            _evict(db, kind, policy, conversation_id)
            found = _load(db, kind, conversation_id)
        assert found is not None  # created above, and the newest is never evicted
        return found
    return run


def append(kind: str, conversation_id: str, items: list[ConversationItem],
           policy: ConversationPolicy, now: float, owner: str | None = None
           ) -> Callable[[sqlite3.Connection], Conversation]:
    """Append items; a conversation created by it belongs to `owner`."""
    rows = [i.model_dump_json() for i in items]

    def run(db: sqlite3.Connection) -> Conversation:
        with _transaction(db):
            _expire(db, kind, policy, now)
            _create(db, kind, conversation_id, now, owner, None)
            start = int(db.execute("SELECT next_idx FROM conversations WHERE kind = ? AND "
                                   "id = ?", (kind, conversation_id)).fetchone()[0])
            db.executemany("INSERT INTO conversation_items (kind, conversation_id, idx, data) "
                           "VALUES (?,?,?,?)",
                           [(kind, conversation_id, start + n, r) for n, r in enumerate(rows)])
            end = start + len(rows)
            db.execute("UPDATE conversations SET next_idx = ?, updated_at = ?, used_at = ? "
                       "WHERE kind = ? AND id = ?", (end, now, now, kind, conversation_id))
            if policy.max_items is not None:
                db.execute("DELETE FROM conversation_items WHERE kind = ? AND "
                           "conversation_id = ? AND idx < ?",
                           (kind, conversation_id, end - policy.max_items))
            _evict(db, kind, policy, conversation_id)
            found = _load(db, kind, conversation_id)
        assert found is not None
        return found
    return run


def delete(kind: str, conversation_id: str) -> Callable[[sqlite3.Connection], bool]:
    def run(db: sqlite3.Connection) -> bool:
        with _transaction(db):
            existed = db.execute("SELECT 1 FROM conversations WHERE kind = ? AND id = ?",
                                 (kind, conversation_id)).fetchone() is not None
            _delete(db, kind, [conversation_id])
        return existed
    return run
