"""ConversationMemory: TTL, max turns, LRU cap, concurrent use."""

from __future__ import annotations

import asyncio

import pytest
from armillary_chat.memory import ConversationMemory, Exchange


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ex(i: int, *, partial: bool = False) -> Exchange:
    return Exchange(user=f"q{i}", assistant=f"a{i}", partial=partial)


async def test_history_is_oldest_first_and_empty_for_an_unknown_conversation() -> None:
    mem = ConversationMemory()
    assert await mem.history("nope") == []
    await mem.append("c", ex(1))
    await mem.append("c", ex(2))
    assert [e.user for e in await mem.history("c")] == ["q1", "q2"]


async def test_only_the_newest_max_turns_exchanges_are_kept() -> None:
    mem = ConversationMemory(max_turns=3)
    for i in range(7):
        await mem.append("c", ex(i))
    assert [e.user for e in await mem.history("c")] == ["q4", "q5", "q6"]


async def test_an_idle_conversation_is_forgotten_after_the_ttl() -> None:
    clock = Clock()
    mem = ConversationMemory(ttl_seconds=60, clock=clock)
    await mem.append("old", ex(1))
    clock.now += 30
    await mem.append("fresh", ex(2))
    clock.now += 31  # "old" idle 61 s, "fresh" 31 s
    assert await mem.history("old") == []
    assert [e.user for e in await mem.history("fresh")] == ["q2"]
    assert mem.expired == 1
    assert len(mem) == 1


async def test_reading_a_conversation_keeps_it_alive() -> None:
    clock = Clock()
    mem = ConversationMemory(ttl_seconds=60, clock=clock)
    await mem.append("c", ex(1))
    for _ in range(5):
        clock.now += 50
        assert len(await mem.history("c")) == 1


async def test_beyond_the_cap_the_least_recently_used_conversation_goes() -> None:
    mem = ConversationMemory(max_conversations=3)
    for name in ("a", "b", "c"):
        await mem.append(name, ex(0))
    await mem.history("a")  # a is now the most recently used; b the least
    await mem.append("d", ex(0))
    assert len(mem) == 3
    assert await mem.history("b") == []
    for name in ("a", "c", "d"):
        assert await mem.history(name), name
    assert mem.evicted == 1


async def test_size_stays_at_the_cap_under_many_conversations() -> None:
    mem = ConversationMemory(max_conversations=50, max_turns=2)
    for i in range(5000):
        await mem.append(f"c{i % 700}", ex(i))
    assert len(mem) == 50
    assert all(len(c.exchanges) <= 2 for c in mem._conversations.values())


async def test_partial_replies_keep_their_mark() -> None:
    mem = ConversationMemory()
    await mem.append("c", ex(1, partial=True))
    (e,) = await mem.history("c")
    assert e.partial and e.assistant == "a1"


async def test_forget_drops_a_conversation() -> None:
    mem = ConversationMemory()
    await mem.append("c", ex(1))
    assert await mem.forget("c") is True
    assert await mem.forget("c") is False
    assert not await mem.exists("c")


async def test_concurrent_appends_lose_nothing() -> None:
    mem = ConversationMemory(max_turns=1000)

    async def writer(n: int) -> None:
        for i in range(50):
            await mem.append("shared", ex(n * 100 + i))
            await asyncio.sleep(0)

    await asyncio.gather(*(writer(n) for n in range(10)))
    assert len(await mem.history("shared")) == 500


@pytest.mark.parametrize("kwargs", [{"max_turns": 0}, {"max_conversations": 0},
                                    {"ttl_seconds": 0}])
def test_nonsense_limits_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ConversationMemory(**kwargs)  # type: ignore[arg-type]
