"""With the auth plugin on, a debate belongs to the key that initialized it: another
key's debate is 404 on GET /debates/{id} and /debate/{id}/control, and its events never
reach another key's /ws/debate-updates; an admin key sees every debate."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import armillary_auth
import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.plugins.debate.served import Served, config, debate_server, messages_until

ALICE, BOB, ROOT = "alice-key-0123456789", "bob-key-0123456789", "root-key-0123456789"
KEYS = [{"name": "alice", "key": ALICE}, {"name": "bob", "key": BOB},
        {"name": "root", "key": ROOT, "scopes": ["admin"]}]


@asynccontextmanager
async def owned() -> AsyncIterator[tuple[Served, dict[str, httpx.AsyncClient]]]:
    async with debate_server(extra={"auth": armillary_auth},
                             plugins={"auth": {"keys": KEYS}}) as s:
        clients = {name: httpx.AsyncClient(base_url=s.url, timeout=20,
                                           headers={"X-API-Key": key})
                   for name, key in (("alice", ALICE), ("bob", BOB), ("root", ROOT))}
        try:
            yield s, clients
        finally:
            for client in clients.values():
                await client.aclose()


async def initialize(client: httpx.AsyncClient, **body: Any) -> str:
    r = await client.post("/debate/initialize", json=config(max_rounds=1, **body))
    assert r.status_code == 200, r.text
    debate_id: str = r.json()["debate_id"]
    return debate_id


def ws(s: Served, key: str, query: str = "") -> Any:
    return connect(s.url.replace("http://", "ws://") + "/ws/debate-updates" + query,
                   additional_headers={"X-API-Key": key})


def ended(debate_id: str) -> Any:
    return lambda m: m["type"] == "debate_complete" and m["debate_id"] == debate_id


async def test_another_keys_debate_is_not_found_before_and_after_it_starts() -> None:
    async with owned() as (s, c):
        debate_id = await initialize(c["alice"])
        for action in ("start", "pause", "stop"):
            r = await c["bob"].post(f"/debate/{debate_id}/control", json={"action": action})
            assert r.status_code == 404, (action, r.text)
            assert r.json()["code"] == "debate_not_found"
        assert (await c["bob"].get(f"/debates/{debate_id}")).status_code == 404
        assert (await c["alice"].get(f"/debates/{debate_id}")).json()["status"] == \
            "initialized"
        r = await c["alice"].post(f"/debate/{debate_id}/control", json={"action": "start"})
        assert r.status_code == 200, r.text
        await s.kernel.runner.wait(debate_id, timeout=15)
        hidden = await c["bob"].get(f"/debates/{debate_id}")
        assert hidden.status_code == 404 and hidden.json()["code"] == "debate_not_found"
        for action in ("start", "pause", "resume", "stop"):
            r = await c["bob"].post(f"/debate/{debate_id}/control", json={"action": action})
            assert r.status_code == 404, (action, r.text)
        assert (await c["alice"].get(f"/debates/{debate_id}")).json()["status"] == "completed"
        assert (await c["root"].get(f"/debates/{debate_id}")).status_code == 200


async def test_an_admin_starting_a_keys_debate_leaves_it_that_keys() -> None:
    async with owned() as (s, c):
        debate_id = await initialize(c["alice"])
        r = await c["root"].post(f"/debate/{debate_id}/control", json={"action": "start"})
        assert r.status_code == 200, r.text
        run = await s.kernel.runner.wait(debate_id, timeout=15)
        assert run.owner == "alice"
        assert (await c["alice"].get(f"/debates/{debate_id}")).status_code == 200
        assert (await c["bob"].get(f"/debates/{debate_id}")).status_code == 404


async def test_a_keys_socket_gets_only_its_own_debates_events() -> None:
    async with owned() as (s, c), ws(s, ALICE) as alices, ws(s, BOB) as bobs, \
            ws(s, ROOT) as roots:
        mine = await initialize(c["alice"])
        theirs = await initialize(c["bob"], selected_agents=["bob"])
        # alice's debate runs to the end first: bob's socket would have it queued by then
        await c["alice"].post(f"/debate/{mine}/control", json={"action": "start"})
        await s.kernel.runner.wait(mine, timeout=15)
        await c["bob"].post(f"/debate/{theirs}/control", json={"action": "start"})
        bob_saw = await messages_until(bobs, ended(theirs))
        alice_saw = await messages_until(alices, ended(mine))
        root_saw = await messages_until(roots, ended(theirs))
    assert {m["debate_id"] for m in bob_saw} == {theirs}
    assert "argument" in [m["type"] for m in bob_saw]
    assert {m["debate_id"] for m in alice_saw} == {mine}
    assert {m["debate_id"] for m in root_saw} == {mine, theirs}


async def test_a_key_cannot_subscribe_to_another_keys_debate() -> None:
    async with owned() as (s, c):
        debate_id = await initialize(c["alice"])
        async with ws(s, BOB) as sock:
            await sock.send(json.dumps({"type": "subscribe", "debate_id": debate_id}))
            assert json.loads(await sock.recv())["code"] == "debate_not_found"
        async with ws(s, BOB, f"?debate_id={debate_id}") as sock:
            assert json.loads(await sock.recv())["code"] == "debate_not_found"
            with pytest.raises(ConnectionClosed) as closed:
                await sock.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404
        async with ws(s, ALICE, f"?debate_id={debate_id}") as sock:
            await c["alice"].post(f"/debate/{debate_id}/control", json={"action": "start"})
            saw = await messages_until(sock, ended(debate_id))
        assert {m["debate_id"] for m in saw} == {debate_id}
