"""Conversations in the RunStore, against every built-in store (memory and SQLite):
items in order, the policy's TTL, max items and LRU cap, and a restart with SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from armillary._conversations import ConversationItem, ConversationPolicy, Conversations
from armillary._memory_store import MemoryRunStore
from armillary._sqlite_store import SQLiteRunStore
from armillary._store import RunStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path,
                clock: Clock) -> AsyncIterator[RunStore]:
    s: RunStore = (MemoryRunStore(clock=clock) if request.param == "memory"
                   else SQLiteRunStore(f"sqlite:///{tmp_path / 'runs.db'}", clock=clock))
    await s.open()
    yield s
    await s.close()


def say(role: str, content: str, **kw: object) -> ConversationItem:
    return ConversationItem(role=role, content=content, **kw)  # type: ignore[arg-type]


async def test_items_read_back_in_order_with_their_fields(store: RunStore) -> None:
    chats = Conversations(store, "chat")
    await chats.append("c1", say("user", "hi"), say("assistant", "hello", agent="general"))
    await chats.append("c1", say("user", "again"),
                       say("assistant", "cut", partial=True, data={"k": [1]}))
    got = await chats.get("c1")
    assert got is not None and got.kind == "chat"
    assert [(i.role, i.content) for i in got.items] == [
        ("user", "hi"), ("assistant", "hello"), ("user", "again"), ("assistant", "cut")]
    assert got.items[1].agent == "general"
    assert got.items[3].partial and got.items[3].data == {"k": [1]}
    assert await chats.get("missing") is None


async def test_kinds_are_separate_namespaces(store: RunStore) -> None:
    await Conversations(store, "chat").append("same", say("user", "a"))
    assert await Conversations(store, "sdk").get("same") is None
    assert not await Conversations(store, "sdk").delete("same")


async def test_open_is_idempotent_and_keeps_owner_and_metadata(store: RunStore) -> None:
    sessions = Conversations(store, "sdk")
    first = await sessions.open("s", owner="key-1", metadata={"agent": "triage"})
    again = await sessions.open("s", owner="other", metadata={"agent": "x"})
    assert (again.owner, again.metadata) == ("key-1", {"agent": "triage"})
    assert again.created_at == first.created_at and again.items == []


async def test_only_the_newest_max_items_are_kept(store: RunStore) -> None:
    chats = Conversations(store, "chat", ConversationPolicy(max_items=4))
    for n in range(5):
        kept = await chats.append("c", say("user", f"u{n}"), say("assistant", f"a{n}"))
    assert [i.content for i in kept.items] == ["u3", "a3", "u4", "a4"]
    got = await chats.get("c")
    assert got is not None and [i.content for i in got.items] == ["u3", "a3", "u4", "a4"]


async def test_a_conversation_unused_past_the_ttl_is_forgotten(store: RunStore,
                                                                clock: Clock) -> None:
    chats = Conversations(store, "chat", ConversationPolicy(ttl_seconds=60))
    await chats.append("old", say("user", "a"))
    clock.now += 30
    await chats.append("fresh", say("user", "b"))
    assert await chats.get("old") is not None  # reading is use: its TTL starts again
    clock.now += 59
    assert await chats.get("old") is not None
    clock.now += 61
    assert await chats.get("old") is None and await chats.get("fresh") is None


async def test_beyond_max_conversations_the_least_recently_used_goes(store: RunStore,
                                                                     clock: Clock) -> None:
    chats = Conversations(store, "chat", ConversationPolicy(max_conversations=2))
    for name in ("a", "b"):
        await chats.append(name, say("user", name))
        clock.now += 1
    await chats.get("a")  # a is now the most recently used
    clock.now += 1
    await chats.append("c", say("user", "c"))
    assert await chats.get("b") is None
    assert await chats.get("a") is not None and await chats.get("c") is not None


async def test_delete_forgets(store: RunStore) -> None:
    chats = Conversations(store, "chat")
    await chats.append("c", say("user", "a"))
    assert await chats.delete("c")
    assert await chats.get("c") is None
    assert not await chats.delete("c")


async def test_sqlite_keeps_conversations_across_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    make: Callable[[], SQLiteRunStore] = lambda: SQLiteRunStore(url)  # noqa: E731
    first = make()
    await first.open()
    await Conversations(first, "chat").append("c", say("user", "hi"), say("assistant", "yo"))
    await first.close()
    second = make()
    await second.open()
    got = await Conversations(second, "chat").get("c")
    await second.close()
    assert got is not None and [i.content for i in got.items] == ["hi", "yo"]
