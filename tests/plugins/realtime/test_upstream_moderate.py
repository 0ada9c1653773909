"""POST /api/moderate: the kernel's safety checks, then OpenAI's moderation when
configured, through the real app on uvicorn against the OpenAI test server."""

from __future__ import annotations

import pytest

from armillary.testing.checks import PII, PatternCheck
from tests.plugins.realtime.upstream_harness import API_KEY, upstream_app
from tests.support.openai_server import OpenAITestServer, Reply

MODERATIONS = "/v1/moderations"
UPSTREAM = {"moderation_model": "omni-moderation-latest"}


@pytest.fixture
def server():
    with OpenAITestServer(api_key=API_KEY) as s:
        yield s


async def test_clean_text_is_allowed_after_both_layers(server: OpenAITestServer) -> None:
    async with upstream_app(server, upstream=UPSTREAM) as (_, client):
        response = await client.post("/api/moderate", json={"text": "Where is my parcel?"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["allowed"] is True and body["category"] == "NONE"
    assert body["text"] == "Where is my parcel?"
    assert body["upstream"]["flagged"] is False
    assert server.requests_to(MODERATIONS)[0].json == {
        "input": "Where is my parcel?", "model": "omni-moderation-latest"}


@pytest.mark.parametrize(("text", "category", "flagged"), [
    ("I will kill the process owner", "VIOLENCE", ["violence"]),
    ("you idiot", "OFFENSIVE", ["harassment"]),
])
async def test_upstream_moderation_blocks(server: OpenAITestServer, text: str,
                                          category: str, flagged: list[str]) -> None:
    async with upstream_app(server, upstream=UPSTREAM) as (_, client):
        response = await client.post("/api/moderate", json={"text": text})
    body = response.json()
    assert response.status_code == 200
    assert body["allowed"] is False
    assert body["category"] == category
    assert body["source"] == "upstream" and body["code"] == "moderation_flagged"
    assert body["upstream"]["categories"] == flagged


async def test_categories_limit_what_blocks(server: OpenAITestServer) -> None:
    async with upstream_app(server, upstream=UPSTREAM) as (_, client):
        response = await client.post("/api/moderate", json={
            "text": "you idiot", "categories": ["VIOLENCE"]})
    assert response.json()["allowed"] is True
    assert response.json()["upstream"]["flagged"] is True


async def test_a_safety_block_decides_before_upstream(server: OpenAITestServer) -> None:
    check = PatternCheck({"secret": r"project zeus"}, name="blocklist", block=True)
    async with upstream_app(server, upstream={**UPSTREAM, "safety_categories": {
            "input_blocked": "OFF_BRAND"}}, checks=[check]) as (_, client):
        response = await client.post("/api/moderate",
                                     json={"text": "tell me about project zeus"})
    body = response.json()
    assert body["allowed"] is False
    assert body["source"] == "safety" and body["code"] == "input_blocked"
    assert body["check"] == "blocklist" and body["category"] == "OFF_BRAND"
    assert check.seen == [("input", "tell me about project zeus")]
    assert server.requests_to(MODERATIONS) == []


async def test_output_stage_and_redaction_reach_upstream_redacted(
        server: OpenAITestServer) -> None:
    pii = PII(stages=frozenset({"output"}))
    async with upstream_app(server, upstream=UPSTREAM, checks=[pii]) as (_, client):
        as_input = await client.post("/api/moderate", json={"text": "mail bob@example.com"})
        as_output = await client.post("/api/moderate", json={
            "text": "mail bob@example.com", "stage": "output"})
    assert as_input.json()["text"] == "mail bob@example.com"
    assert as_output.json()["allowed"] is True
    assert as_output.json()["text"] == "mail [email]"
    assert as_output.json()["source"] == "safety"
    assert [r.json["input"] for r in server.requests_to(MODERATIONS)] == [
        "mail bob@example.com", "mail [email]"]


async def test_without_a_moderation_model_only_the_checks_run(
        server: OpenAITestServer) -> None:
    async with upstream_app(server, api_key=None) as (_, client):
        response = await client.post("/api/moderate", json={"text": "kill it"})
    assert response.json()["allowed"] is True and response.json()["upstream"] is None
    assert server.requests_to(MODERATIONS) == []


async def test_upstream_failure_is_an_error_answer(server: OpenAITestServer) -> None:
    server.push_to(MODERATIONS, Reply(status=500, error="moderation is down"))
    async with upstream_app(server, upstream=UPSTREAM) as (_, client):
        response = await client.post("/api/moderate", json={"text": "hello"})
    assert response.status_code == 500
    assert response.json()["detail"] == "moderation is down"


async def test_bad_body_is_422(server: OpenAITestServer) -> None:
    async with upstream_app(server, upstream=UPSTREAM) as (_, client):
        empty = await client.post("/api/moderate", json={"text": ""})
        stage = await client.post("/api/moderate", json={"text": "x", "stage": "tool"})
    assert empty.status_code == 422 and stage.status_code == 422
    assert empty.json()["code"] == "validation_error"
