"""Turns in one conversation are served one at a time (no interleaved history), the lock
map holds nothing once turns are over, and every turn publishes one real `chat.turn`
event on the firehose: run_id = the conversation, seq = its item count after the turn."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from armillary_chat.events import ChatTurn
from armillary_chat.locks import TurnLocks

from armillary._errors import ProviderUnavailable
from armillary._events import FIREHOSE
from armillary._models import Event
from armillary.testing import Turn
from tests.plugins.chat.conftest import ChatServer, Served
from tests.plugins.chat.test_chat_stream import eventually


async def test_concurrent_turns_in_one_conversation_each_see_the_ones_before(
        chat_server: ChatServer) -> None:
    replies = [Turn(text=f"reply {i}", chunks=[f"reply {i}"], delay=0.1) for i in range(4)]
    async with chat_server(replies) as s:

        async def ask(i: int) -> httpx.Response:
            return await s.client.post("/chat", json={
                "message": f"q{i}", "stream": i % 2 == 0, "conversation_id": "shared"})

        answers = await asyncio.gather(*(ask(i) for i in range(4)))
        history = (await s.client.get("/chat/shared")).json()["turns"]
    assert all(a.status_code == 200 for a in answers)
    # the model was called once at a time, each time with every exchange before it
    for j, request in enumerate(s.provider.requests):
        sent = [(m.role, m.content) for m in request.messages[1:]]
        assert [c for r, c in sent if r == "assistant"] == [f"reply {i}" for i in range(j)]
        assert len([c for r, c in sent if r == "user"]) == j + 1
    assert [t["assistant"] for t in history] == [f"reply {i}" for i in range(4)]
    assert sorted(t["user"] for t in history) == ["q0", "q1", "q2", "q3"]
    # each history entry pairs the question the model answered with that answer
    for j, turn in enumerate(history):
        assert s.provider.requests[j].messages[-1].content == turn["user"]


async def test_different_conversations_are_not_serialised(chat_server: ChatServer) -> None:
    # 5 turns of 0.3 s each in 5 conversations overlap: the provider sees them all open
    async with chat_server([Turn(text="slow", chunks=["slow"], delay=0.3)]) as s:
        seen_open = 0

        async def watch() -> None:
            nonlocal seen_open
            while True:
                seen_open = max(seen_open, s.provider.open_streams)
                await asyncio.sleep(0.01)

        watcher = asyncio.create_task(watch())
        await asyncio.gather(*(s.client.post("/chat", json={
            "message": "x", "stream": True, "conversation_id": f"c{i}"}) for i in range(5)))
        watcher.cancel()
    assert seen_open == 5


async def test_a_client_that_leaves_while_waiting_for_its_turn_lets_the_next_one_go(
        chat_server: ChatServer) -> None:
    provider_turns: list[Turn | str] = [Turn(text="first", chunks=["first"], delay=1.0),
                                        "third"]
    async with chat_server(provider_turns) as s:
        first = asyncio.create_task(s.client.post("/chat", json={
            "message": "one", "conversation_id": "q"}))
        await eventually(_provider_called(s, 1))
        async with httpx.AsyncClient(base_url=s.url, timeout=0.3) as impatient:
            with pytest.raises(httpx.ReadTimeout):  # still waiting for "one" to finish
                await impatient.post("/chat", json={"message": "two", "conversation_id": "q"})
        third = await s.client.post("/chat", json={"message": "three", "conversation_id": "q"})
        await first
        history = (await s.client.get("/chat/q")).json()["turns"]
    assert [t["user"] for t in history] == ["one", "three"]
    assert len(s.provider.requests) == 2  # "two" never reached the model
    assert third.json()["reply"] == "third"


def _provider_called(s: Served, n: int) -> Any:
    async def check() -> bool:
        return len(s.provider.requests) >= n

    return check


async def test_turn_locks_hold_nothing_once_turns_are_over() -> None:
    locks = TurnLocks()
    order: list[str] = []

    async def turn(cid: str, name: str) -> None:
        release = await locks.acquire(cid)
        try:
            order.append(f"{name}+")
            await asyncio.sleep(0.01)
            order.append(f"{name}-")
        finally:
            release()
            release()  # a second release does nothing

    await asyncio.gather(*(turn("a", f"a{i}") for i in range(3)),
                         *(turn(f"c{i}", f"c{i}") for i in range(50)))
    assert len(locks) == 0
    a_order = [e for e in order if e.startswith("a")]
    assert a_order == ["a0+", "a0-", "a1+", "a1-", "a2+", "a2-"]  # never two at once

    release = await locks.acquire("x")
    waiter = asyncio.create_task(locks.acquire("x"))
    await asyncio.sleep(0.01)
    waiter.cancel()  # a client that gave up waiting
    await asyncio.gather(waiter, return_exceptions=True)
    release()
    assert len(locks) == 0


async def firehose_events(s: Served, body: dict[str, Any], *requests: dict[str, Any]
                          ) -> list[Event]:
    async with s.kernel.bus.subscribe(FIREHOSE) as sub:
        for extra in ({}, *requests):
            await s.client.post("/chat", json={**body, **extra})
        await asyncio.sleep(0.05)
        return [e for e in sub.drain() if e.type == "chat.turn"]


async def test_every_turn_publishes_a_chat_turn_event_numbered_by_the_conversation(
        chat_server: ChatServer) -> None:
    turns: list[Turn | str] = ["one", Turn(text="two", delay=0.01),
                               Turn(error=ProviderUnavailable("down")), "four"]
    async with chat_server(turns) as s:
        events = await firehose_events(
            s, {"message": "hi", "conversation_id": "conv"}, {"stream": True}, {}, {})
        declared = s.kernel.registry.event_types["chat.turn"]
    assert declared.plugin == "chat" and declared.item is ChatTurn
    assert [e.run_id for e in events] == ["conv"] * 4
    # two items per remembered exchange; the failed turn left none, so repeats the count
    assert [e.seq for e in events] == [2, 4, 4, 6]
    assert len({e.id for e in events}) == 4
    payloads = [ChatTurn.model_validate(e.payload) for e in events]
    assert [(p.agent, p.ok, p.partial, p.disconnected, p.code) for p in payloads] == [
        ("general", True, False, False, None), ("general", True, False, False, None),
        ("general", False, False, False, "provider_unavailable"),
        ("general", True, False, False, None)]
    assert all(p.duration_s >= 0 for p in payloads)


async def test_the_event_count_survives_trimming_and_is_zero_without_memory(
        chat_server: ChatServer) -> None:
    async with chat_server(["r"], config={"plugins": {"chat": {"memory_max_turns": 1}}}) as s:
        trimmed = await firehose_events(s, {"message": "x", "conversation_id": "t"}, {}, {})
    async with chat_server(["r"], config={"plugins": {"chat": {"memory_enabled": False}}}) as s:
        off = await firehose_events(s, {"message": "x", "conversation_id": "t"}, {})
    assert [e.seq for e in trimmed] == [2, 4, 6]
    assert [e.seq for e in off] == [0, 0]
