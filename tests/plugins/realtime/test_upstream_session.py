"""GET /api/session, /api/session2 and /api/health through the real app on uvicorn,
against the OpenAI test server's `POST /v1/realtime/client_secrets` over loopback."""

from __future__ import annotations

import time

import pytest

from armillary.testing import free_port
from tests.plugins.realtime.upstream_harness import API_KEY, upstream_app
from tests.support.openai_server import OpenAITestServer, Reply

SECRETS = "/v1/realtime/client_secrets"


@pytest.fixture
def server():
    with OpenAITestServer(api_key=API_KEY) as s:
        yield s


async def test_session_answers_both_key_shapes(server: OpenAITestServer) -> None:
    async with upstream_app(server, upstream={"voice": "verse", "expires_after_seconds": 120,
                                              "instructions": "Be brief."}) as (_, client):
        response = await client.get("/api/session")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["value"].startswith("ek_") and body["value"] == server.client_secrets[-1]
    assert body["client_secret"] == {"value": body["value"], "expires_at": body["expires_at"]}
    assert body["session"]["type"] == "realtime"
    assert body["session"]["audio"]["output"]["voice"] == "verse"
    sent = server.requests_to(SECRETS)[-1]
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.json == {"session": {"type": "realtime", "model": "gpt-realtime",
                                     "audio": {"output": {"voice": "verse"}},
                                     "instructions": "Be brief."},
                         "expires_after": {"anchor": "created_at", "seconds": 120}}
    # the test server's expiry is its clock + the seconds asked for
    assert abs(body["expires_at"] - (time.time() + 120)) < 60


async def test_no_api_key_is_500_missing_openai_api_key(server: OpenAITestServer) -> None:
    async with upstream_app(server, api_key=None) as (_, client):
        response = await client.get("/api/session")
        health = await client.get("/api/health")
    assert response.status_code == 500
    assert response.json()["detail"] == "Missing OPENAI_API_KEY"
    assert response.json()["code"] == "missing_api_key"
    assert server.requests_to(SECRETS) == []
    assert health.json() == {"status": "ok", "upstream": {
        "provider": "openai", "enabled": True, "api_key": False}}


async def test_refused_key_keeps_the_upstream_status_and_text(
        server: OpenAITestServer) -> None:
    async with upstream_app(server, api_key="sk-wrong") as (_, client):
        response = await client.get("/api/session")
    assert response.status_code == 401
    assert response.json()["detail"] == "Incorrect API key provided."
    assert response.json()["code"] == "upstream_error"
    assert response.json()["upstream_status"] == 401


async def test_upstream_error_status_is_relayed(server: OpenAITestServer) -> None:
    server.push_to(SECRETS, Reply(status=429, error="Rate limit reached for requests",
                                  error_code="rate_limit_exceeded"))
    async with upstream_app(server) as (_, client):
        response = await client.get("/api/session")
    assert response.status_code == 429
    assert response.json()["detail"] == "Rate limit reached for requests"
    assert response.json()["upstream_code"] == "rate_limit_exceeded"


async def test_upstream_validation_error_is_relayed(server: OpenAITestServer) -> None:
    async with upstream_app(server, upstream={"realtime_model": "gpt-nope"}) as (_, client):
        response = await client.get("/api/session")
    assert response.status_code == 400
    assert response.json()["detail"] == "Invalid model: 'gpt-nope'."


async def test_network_failure_is_502() -> None:
    async with upstream_app(f"http://127.0.0.1:{free_port()}") as (_, client):
        response = await client.get("/api/session")
    assert response.status_code == 502
    assert response.json()["code"] == "provider_unavailable"


async def test_a_hang_up_before_the_reply_is_502(server: OpenAITestServer) -> None:
    server.push_to(SECRETS, Reply(hangup=True))
    async with upstream_app(server) as (_, client):
        response = await client.get("/api/session")
    assert response.status_code == 502
    assert response.json()["code"] == "provider_unavailable"


async def test_a_reply_without_a_key_is_a_protocol_error(server: OpenAITestServer) -> None:
    server.push_to(SECRETS, Reply(malformed=b'{"expires_at": 1}'))
    async with upstream_app(server) as (_, client):
        response = await client.get("/api/session")
    assert response.status_code == 502
    assert response.json()["code"] == "provider_protocol_error"


async def test_session2_mints_for_the_root_agent(server: OpenAITestServer) -> None:
    async with upstream_app(server) as (_, client):
        default = await client.get("/api/session2")
        chosen = await client.get("/api/session2",
                                  params={"scenario_id": "retail", "root_agent": "returns"})
    assert default.status_code == 200, default.text
    body = default.json()
    assert body["scenario_id"] == "retail" and body["root_agent"] == "supervisor"
    assert body["ephemeral_key"].startswith("ek_")
    assert body["client_secret"]["value"] == body["ephemeral_key"] == body["value"]
    assert body["expires_at"] == body["client_secret"]["expires_at"]
    assert [a["name"] for a in body["initial_agents"]] == ["supervisor", "returns"]
    assert body["guardrails"][0]["endpoint"] == "/api/moderate"
    first, second = (r.json["session"] for r in server.requests_to(SECRETS))
    assert first["instructions"] == "Greet and route."
    assert first["audio"]["output"]["voice"] == "sage"
    assert second["instructions"] == "Handle returns."
    assert [a["name"] for a in chosen.json()["initial_agents"]] == ["returns", "supervisor"]


@pytest.mark.parametrize(("params", "code"), [
    ({"scenario_id": "nope"}, "scenario_not_found"),
    ({"scenario_id": "retail", "root_agent": "nobody"}, "agent_not_found"),
])
async def test_session2_unknown_ids_are_404_and_mint_nothing(
        server: OpenAITestServer, params: dict[str, str], code: str) -> None:
    async with upstream_app(server) as (_, client):
        response = await client.get("/api/session2", params=params)
    assert response.status_code == 404
    assert response.json()["code"] == code
    assert server.requests_to(SECRETS) == []


async def test_health(server: OpenAITestServer) -> None:
    async with upstream_app(server) as (_, client):
        response = await client.get("/api/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["upstream"]["api_key"] is True
    # liveness: no upstream call (the kernel's own startup probe is GET /v1/models)
    assert {r.path for r in server.requests} <= {"/v1/models"}
