"""ChatMemory in the kernel's store (memory and SQLite): TTL, max turns, LRU cap, the item
count that numbers chat.turn events, and concurrent use."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from armillary_chat.memory import KIND, ChatMemory, Exchange, policy

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
                   else SQLiteRunStore(f"sqlite:///{tmp_path / 'chat.db'}", clock=clock))
    await s.open()
    yield s
    await s.close()


def memory(store: RunStore, *, ttl_seconds: float = 3600, max_turns: int = 10,
           max_conversations: int = 1000) -> ChatMemory:
    from armillary._conversations import Conversations

    return ChatMemory(Conversations(store, KIND, policy(
        ttl_seconds=ttl_seconds, max_turns=max_turns, max_conversations=max_conversations)))


def ex(i: int, *, partial: bool = False) -> Exchange:
    return Exchange(user=f"q{i}", assistant=f"a{i}", partial=partial, agent="general")


async def test_history_is_oldest_first_and_empty_for_an_unknown_conversation(
        store: RunStore) -> None:
    mem = memory(store)
    assert await mem.history("nope") == []
    assert await mem.recall("nope") is None
    await mem.remember("c", ex(1))
    await mem.remember("c", ex(2))
    assert [(e.user, e.assistant, e.agent) for e in await mem.history("c")] == [
        ("q1", "a1", "general"), ("q2", "a2", "general")]


async def test_each_exchange_is_a_user_item_and_an_assistant_item_in_the_store(
        store: RunStore) -> None:
    mem = memory(store)
    await mem.remember("c", ex(1, partial=True))
    conversation = await store.get_conversation(KIND, "c", policy=mem.conversations.policy)
    assert conversation is not None
    assert [(i.role, i.content, i.agent, i.partial) for i in conversation.items] == [
        ("user", "q1", "general", False), ("assistant", "a1", "general", True)]


async def test_only_the_newest_max_turns_exchanges_are_kept(store: RunStore) -> None:
    mem = memory(store, max_turns=3)
    for i in range(7):
        await mem.remember("c", ex(i))
    assert [e.user for e in await mem.history("c")] == ["q4", "q5", "q6"]


async def test_the_item_count_keeps_growing_when_old_items_are_trimmed(
        store: RunStore) -> None:
    mem = memory(store, max_turns=2)
    counts = [await mem.remember("c", ex(i)) for i in range(5)]
    recalled = await mem.recall("c")
    assert counts == [2, 4, 6, 8, 10]
    assert recalled is not None and recalled.items == 10
    assert len(recalled.exchanges) == 2


async def test_an_idle_conversation_is_forgotten_after_the_ttl(
        store: RunStore, clock: Clock) -> None:
    mem = memory(store, ttl_seconds=60)
    await mem.remember("old", ex(1))
    clock.now += 30
    await mem.remember("fresh", ex(2))
    clock.now += 31  # "old" idle 61 s, "fresh" 31 s
    assert await mem.recall("old") is None
    assert [e.user for e in await mem.history("fresh")] == ["q2"]


async def test_reading_a_conversation_keeps_it_alive(store: RunStore, clock: Clock) -> None:
    mem = memory(store, ttl_seconds=60)
    await mem.remember("c", ex(1))
    for _ in range(5):
        clock.now += 50
        assert len(await mem.history("c")) == 1


async def test_beyond_the_cap_the_least_recently_used_conversation_goes(
        store: RunStore, clock: Clock) -> None:
    mem = memory(store, max_conversations=3)
    for name in ("a", "b", "c"):
        clock.now += 1
        await mem.remember(name, ex(0))
    clock.now += 1
    await mem.history("a")  # a is now the most recently used; b the least
    clock.now += 1
    await mem.remember("d", ex(0))
    assert await mem.recall("b") is None
    for name in ("a", "c", "d"):
        assert await mem.history(name), name


async def test_size_stays_at_the_cap_under_many_conversations(
        store: RunStore, clock: Clock) -> None:
    mem = memory(store, max_conversations=20, max_turns=2)
    for i in range(600):
        clock.now += 0.001
        await mem.remember(f"c{i % 70}", ex(i))
    kept = [h for i in range(70) if (h := await mem.history(f"c{i}"))]
    assert len(kept) == 20
    assert all(len(h) <= 2 for h in kept)


async def test_partial_replies_keep_their_mark(store: RunStore) -> None:
    mem = memory(store)
    await mem.remember("c", ex(1, partial=True))
    (e,) = await mem.history("c")
    assert e.partial and e.assistant == "a1"


async def test_forget_drops_a_conversation(store: RunStore) -> None:
    mem = memory(store)
    await mem.remember("c", ex(1))
    assert await mem.forget("c") is True
    assert await mem.forget("c") is False
    assert await mem.recall("c") is None


async def test_concurrent_appends_lose_nothing(store: RunStore) -> None:
    mem = memory(store, max_turns=1000)

    async def writer(n: int) -> None:
        for i in range(20):
            await mem.remember("shared", ex(n * 100 + i))
            await asyncio.sleep(0)

    await asyncio.gather(*(writer(n) for n in range(10)))
    assert len(await mem.history("shared")) == 200


@pytest.mark.parametrize("kwargs", [{"max_turns": 0}, {"max_conversations": 0},
                                    {"ttl_seconds": 0}])
def test_nonsense_limits_are_refused(kwargs: dict[str, float]) -> None:
    from pydantic import ValidationError

    limits: dict[str, float] = {"ttl_seconds": 60, "max_turns": 1, "max_conversations": 1,
                                **kwargs}
    with pytest.raises(ValidationError):
        policy(**limits)  # type: ignore[arg-type]
