"""The realtime agents routes go through the kernel's safety pipeline: the tool stage for
/api/tools/execute, the output stage (PII redaction) for context snapshots, the input
stage for SDK messages. Served in this process (real uvicorn) to add test checks."""

from __future__ import annotations

from typing import Any

from armillary import RegisterSafetyCheck, hookimpl
from armillary.testing.checks import PII, PatternCheck
from tests.plugins.realtime.agents_harness import served
from tests.support.ollama_server import OllamaTestServer


class Checks:
    def __init__(self, *checks: Any) -> None:
        self.checks = checks

    @hookimpl
    def register_safety_checks(self, register: RegisterSafetyCheck) -> None:
        for check in self.checks:
            register(check)


async def test_a_tool_call_the_tool_stage_refuses_is_an_error_with_the_checks_code() -> None:
    no_exponents = PatternCheck({"power": r"\*\*"}, name="no-powers",
                                stages=frozenset({"tool"}), block=True)
    with OllamaTestServer() as ollama:
        async with served(ollama.url, ("checks", Checks(no_exponents))) as (client, _):
            refused = await client.post("/api/tools/execute", json={
                "name": "calculator", "arguments": {"expression": "2 ** 64"}})
            allowed = await client.post("/api/tools/execute", json={
                "name": "calculator", "arguments": {"expression": "2 * 64"}})
    assert refused.status_code == 400, refused.text
    assert refused.json()["code"] == "tool_blocked"
    assert refused.json()["check"] == "no-powers"
    assert allowed.json()["result"]["result"] == 128
    assert ("tool", 'calculator {"expression": "2 * 64"}') in no_exponents.seen


async def test_the_context_snapshot_has_pii_stripped() -> None:
    with OllamaTestServer() as ollama:
        async with served(ollama.url, ("checks", Checks(PII()))) as (client, _):
            reply = await client.post("/api/context/snapshot", json={
                "user_id": "ada@example.com", "page_id": "p-1"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert "ada@example.com" not in reply.text
    assert body["ids"]["user_id"] == "[email]"
    assert "user id: [email]" in body["context"]
    assert body["sections"][0]["content"] == "page id: p-1\nuser id: [email]"


async def test_an_sdk_message_the_input_stage_refuses_is_a_400_and_reaches_no_model() -> None:
    no_secrets = PatternCheck({"secret": r"hunter2"}, name="no-secrets", block=True)
    with OllamaTestServer() as ollama:
        async with served(ollama.url, ("checks", Checks(no_secrets))) as (client, _):
            await client.post("/api/sdk/session/create", json={
                "session_id": "s-safe", "agent_name": "a", "instructions": ""})
            reply = await client.post("/api/sdk/session/message", json={
                "session_id": "s-safe", "user_input": "my password is hunter2"})
            transcript = await client.get("/api/sdk/session/transcript",
                                          params={"session_id": "s-safe"})
    assert reply.status_code == 400, reply.text
    assert reply.json()["code"] == "input_blocked"
    assert ollama.chat_requests == []
    assert transcript.json()["length"] == 0
