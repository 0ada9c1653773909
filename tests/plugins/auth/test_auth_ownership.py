"""A key sees and controls only its own runs and conversations; an admin key sees all."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt

from armillary.testing import Turn
from tests.plugins.auth.served import ALICE, BOB, ROOT, auth_server, key


async def test_another_keys_task_does_not_exist_for_a_key_but_does_for_admin() -> None:
    async with auth_server([Turn(text="one"), Turn(text="two")]) as (_, client, app):
        a = await client.post("/v1/tasks", json={"task": "a", "wait": True},
                              headers=key(ALICE))
        b = await client.post("/v1/tasks", json={"task": "b", "wait": True},
                              headers=key(BOB))
        task_a, task_b = a.json()["task_id"], b.json()["task_id"]
        stored = await app.state.kernel.store.get_run(task_a)
        assert stored.owner == "alice"
        mine = (await client.get("/v1/tasks", headers=key(ALICE))).json()
        assert mine["total"] == 1 and [t["task_id"] for t in mine["items"]] == [task_a]
        for path in (f"/v1/tasks/{task_b}", f"/v1/tasks/{task_b}/result",
                     f"/v1/tasks/{task_b}/memory"):
            r = await client.get(path, headers=key(ALICE))
            assert r.status_code == 404 and r.json()["code"] == "task_not_found", path
        cancel = await client.delete(f"/v1/tasks/{task_b}", headers=key(ALICE))
        assert cancel.status_code == 404
        every = (await client.get("/v1/tasks", headers=key(ROOT))).json()
        assert every["total"] == 2
        assert (await client.get(f"/v1/tasks/{task_b}", headers=key(ROOT))).status_code == 200


async def test_a_chat_conversation_belongs_to_the_key_that_started_it() -> None:
    async with auth_server(["hello alice", "hello again"]) as (_, client, _app):
        r = await client.post("/chat", json={"message": "hi", "conversation_id": "c1"},
                              headers=key(ALICE))
        assert r.status_code == 200, r.text
        assert (await client.get("/chat/c1", headers=key(ALICE))).status_code == 200
        peek = await client.get("/chat/c1", headers=key(BOB))
        assert peek.status_code == 404 and peek.json()["code"] == "conversation_not_found"
        hijack = await client.post("/chat", json={"message": "me too",
                                                  "conversation_id": "c1"},
                                   headers=key(BOB))
        assert hijack.status_code == 404
        assert (await client.delete("/chat/c1", headers=key(BOB))).status_code == 404
        history = (await client.get("/chat/c1", headers=key(ROOT))).json()
        assert [t["user"] for t in history["turns"]] == ["hi"]


async def test_a_jwt_subject_owns_its_runs_and_a_bad_token_is_refused() -> None:
    secret = "s3cret-for-tests-only-32-bytes!!"
    settings = {"jwt": {"secret": secret, "issuer": "https://id.example",
                        "audience": "armillary"}}
    claims = {"sub": "carol", "iss": "https://id.example", "aud": "armillary",
              "exp": int(time.time()) + 60, "scope": "read submit"}
    good = jwt.encode(claims, secret, algorithm="HS256")
    expired = jwt.encode({**claims, "exp": int(time.time()) - 3600}, secret,
                         algorithm="HS256")
    wrong_aud = jwt.encode({**claims, "aud": "other"}, secret, algorithm="HS256")
    async with auth_server(["ok"], auth=settings) as (_, client, app):
        r = await client.post("/v1/tasks", json={"task": "go", "wait": True},
                              headers={"Authorization": f"Bearer {good}"})
        assert r.status_code == 200, r.text
        run = await app.state.kernel.store.get_run(r.json()["task_id"])
        assert run.owner == "carol"
        for token in (expired, wrong_aud):
            refused = await client.get("/v1/tasks", headers={"Authorization": f"Bearer {token}"})
            assert refused.status_code == 401 and refused.json()["code"] == "invalid_token"


async def test_a_jwt_signed_by_the_issuers_jwks_key_is_accepted() -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from armillary.testing import LoopbackHTTPServer

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    jwks = {"keys": [{**public_jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}

    async def answer(request: Any, responder: Any) -> None:
        await responder.send_json(200, jwks)

    with LoopbackHTTPServer(answer) as issuer:
        settings = {"jwt": {"jwks_url": f"{issuer.url}/jwks.json", "algorithms": ["RS256"],
                            "audience": "armillary"}}
        claims = {"sub": "erin", "aud": "armillary", "exp": int(time.time()) + 60}
        token = jwt.encode(claims, private, algorithm="RS256", headers={"kid": "k1"})
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        forged = jwt.encode(claims, other, algorithm="RS256", headers={"kid": "k1"})
        async with auth_server(["ok"], auth=settings) as (_, client, app):
            r = await client.post("/v1/tasks", json={"task": "go", "wait": True},
                                  headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200, r.text
            assert (await app.state.kernel.store.get_run(r.json()["task_id"])).owner == "erin"
            refused = await client.get("/v1/tasks",
                                       headers={"Authorization": f"Bearer {forged}"})
            assert refused.status_code == 401 and refused.json()["code"] == "invalid_token"
        assert any(req.path == "/jwks.json" for req in issuer.requests)


async def test_another_keys_task_stream_is_not_found_over_a_websocket() -> None:
    from websockets.asyncio.client import connect

    async with auth_server(["done"]) as (url, client, _app):
        r = await client.post("/v1/tasks", json={"task": "go", "wait": True},
                              headers=key(ALICE))
        ws_url = url.replace("http", "ws") + f"/v1/stream/tasks/{r.json()['task_id']}"
        async with connect(ws_url, additional_headers=key(BOB)) as ws:
            message = json.loads(await ws.recv())
            assert message["payload"]["code"] == "task_not_found"
            await ws.wait_closed()
            assert ws.close_code == 4404


async def test_a_run_acts_for_its_owner_and_its_model_calls_are_reported_for_them() -> None:
    """The runner runs a strategy as its run's owner: `provider.call` firehose events
    name the key that submitted it (what per-key token budgets settle against)."""
    import asyncio

    from armillary import FIREHOSE

    async with auth_server([Turn(text="one")]) as (_, client, app):
        firehose = app.state.kernel.bus.subscribe(FIREHOSE)
        try:
            done = await client.post("/v1/tasks", json={"task": "a", "wait": True},
                                     headers=key(ALICE))
            assert done.status_code == 200, done.text
            for _ in range(100):
                calls = [e for e in firehose.drain() if e.type == "provider.call"]
                if calls:
                    break
                await asyncio.sleep(0.01)
        finally:
            await firehose.close()
    assert [c.payload["owner"] for c in calls] == ["alice"]
    assert calls[0].run_id == done.json()["task_id"]
