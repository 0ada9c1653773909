"""Who gets in: keys from plugins.toml (hashed or not) and PORI_API_KEYS, in a header, a
bearer token, ?api_key= (SSE) or the WebSocket sub-protocol; public paths stay open."""

from __future__ import annotations

import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from armillary.testing import Turn
from tests.plugins.auth.served import ALICE, READER, auth_server, key


async def test_a_request_without_a_key_is_401_in_the_error_model() -> None:
    async with auth_server() as (_, client, _app):
        r = await client.get("/v1/tasks")
        assert r.status_code == 401
        assert r.json()["code"] == "unauthorized" and "X-API-Key" in r.json()["detail"]
        assert r.headers["www-authenticate"].startswith("Bearer")
        wrong = await client.get("/v1/tasks", headers=key("nope"))
        assert wrong.status_code == 401 and wrong.json() == {
            "detail": "the API key is not valid", "code": "unauthorized"}
        posted = await client.post("/chat", json={"message": "hi"})
        assert posted.status_code == 401


async def test_health_docs_and_openapi_need_no_key() -> None:
    async with auth_server() as (_, client, _app):
        for path in ("/health", "/v1/health", "/docs", "/openapi.json"):
            assert (await client.get(path)).status_code == 200, path


async def test_a_hashed_key_a_plain_key_and_a_bearer_token_all_get_in() -> None:
    async with auth_server() as (_, client, _app):
        assert (await client.get("/v1/tasks", headers=key(ALICE))).status_code == 200
        assert (await client.get("/v1/tasks", headers=key("bob-key-0123456789"))
                ).status_code == 200
        bearer = await client.get("/v1/tasks", headers={"Authorization": f"Bearer {ALICE}"})
        assert bearer.status_code == 200


async def test_keys_from_pori_api_keys_work_as_the_seed_writes_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORI_API_KEYS", "key1,key2")
    async with auth_server() as (_, client, _app):
        for k in ("key1", "key2"):
            assert (await client.get("/v1/tasks", headers=key(k))).status_code == 200
        assert (await client.get("/v1/tasks", headers=key("key3"))).status_code == 401


async def test_a_read_only_key_cannot_submit() -> None:
    async with auth_server() as (_, client, _app):
        assert (await client.get("/v1/tasks", headers=key(READER))).status_code == 200
        r = await client.post("/v1/tasks", json={"task": "x"}, headers=key(READER))
        assert r.status_code == 403 and r.json()["code"] == "insufficient_scope"


async def test_sse_takes_the_key_as_a_query_parameter() -> None:
    async with auth_server(["done"]) as (_, client, _app):
        r = await client.post("/v1/tasks", json={"task": "go", "wait": True},
                              headers=key(ALICE))
        task_id = r.json()["task_id"]
        path = f"/v1/stream/tasks/{task_id}"
        refused = await client.get(path, headers={"Accept": "text/event-stream"})
        assert refused.status_code == 401
        async with client.stream("GET", f"{path}?api_key={ALICE}",
                                 headers={"Accept": "text/event-stream"}) as stream:
            assert stream.status_code == 200
            text = "".join([line async for line in stream.aiter_lines()])
        assert "event: completed" in text


async def test_a_websocket_takes_the_key_as_a_subprotocol_and_gets_it_echoed() -> None:
    async with auth_server([Turn(text="ok")]) as (url, client, _app):
        r = await client.post("/v1/tasks", json={"task": "go", "wait": True},
                              headers=key(ALICE))
        ws_url = url.replace("http", "ws") + f"/v1/stream/tasks/{r.json()['task_id']}"
        async with connect(ws_url, subprotocols=["api-key", ALICE]) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "api-key"
            types = [json.loads(m)["type"] async for m in ws]
        assert types[-1] == "completed"
        with pytest.raises(InvalidStatus) as refused:
            async with connect(ws_url):
                pass
        assert refused.value.response.status_code == 401
        assert json.loads(refused.value.response.body)["code"] == "unauthorized"
        with pytest.raises(InvalidStatus) as wrong:
            async with connect(ws_url, subprotocols=["api-key", "wrong"]):  # type: ignore[list-item]
                pass
        assert wrong.value.response.status_code == 401


async def test_the_openapi_document_shows_the_security_schemes() -> None:
    async with auth_server() as (_, client, _app):
        doc = (await client.get("/openapi.json")).json()
        schemes = doc["components"]["securitySchemes"]
        assert schemes["APIKeyHeader"] == {"type": "apiKey", "in": "header",
                                           "name": "X-API-Key"}
        assert {"APIKeyHeader": []} in doc["security"]
        assert doc["paths"]["/health"]["get"]["security"] == []
        assert "401" in doc["paths"]["/v1/tasks"]["post"]["responses"]
