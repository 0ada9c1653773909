"""/chat calls models through the kernel's guard: input before the provider, output on
the reply (whole-text checks here; incremental ones on streams: test_chat_guarded.py)."""

from __future__ import annotations

from typing import Any

from armillary import SafetyCheck, Verdict, hookimpl
from tests.plugins.chat.conftest import ChatServer


class NoSecrets(SafetyCheck):
    name = "no-secrets"

    async def check(self, text: str, *, stage: str, context: dict[str, Any]) -> Verdict:
        if stage == "input" and "password" in text:
            return Verdict(allowed=False, reason="no passwords please", code="input_blocked")
        if stage == "output" and "1234" in text:
            return Verdict(redacted=text.replace("1234", "[redacted]"))
        if stage == "output" and "forbidden" in text:
            return Verdict(allowed=False, reason="not allowed", code="output_blocked")
        return Verdict()


class SafetyPlugin:
    @hookimpl
    def register_safety_checks(self, register):  # type: ignore[no-untyped-def]
        register(NoSecrets())


async def test_a_blocked_message_never_reaches_the_provider(chat_server: ChatServer) -> None:
    async with chat_server(["x"], extra={"safety": SafetyPlugin()}) as s:
        r = await s.client.post("/chat", json={"message": "my password is hunter2"})
    assert (r.status_code, r.json()) == (400, {"detail": "no passwords please",
                                               "code": "input_blocked", "stage": "input",
                                               "check": "no-secrets"})
    assert s.provider.requests == []


async def test_a_redacted_reply_is_returned_and_remembered_redacted(
        chat_server: ChatServer) -> None:
    async with chat_server(["the pin is 1234"], extra={"safety": SafetyPlugin()}) as s:
        r = await s.client.post("/chat", json={"message": "pin?", "conversation_id": "c"})
        turns = (await s.client.get("/chat/c")).json()["turns"]
    assert r.json()["reply"] == "the pin is [redacted]"
    assert turns[0]["assistant"] == "the pin is [redacted]"


async def test_a_blocked_reply_is_a_400_with_the_checks_code_and_is_not_remembered(
        chat_server: ChatServer) -> None:
    async with chat_server(["this is forbidden text"], extra={"safety": SafetyPlugin()}) as s:
        r = await s.client.post("/chat", json={"message": "go", "conversation_id": "c"})
        gone = await s.client.get("/chat/c")
    assert (r.status_code, r.json()) == (400, {"detail": "not allowed", "code": "output_blocked",
                                               "stage": "output", "check": "no-secrets"})
    assert gone.status_code == 404


async def test_a_stream_blocked_before_any_text_was_sent_is_a_400_not_a_200(
        chat_server: ChatServer) -> None:
    # a whole-text check holds the stream until the model has finished, so the block
    # comes before the first byte: the one safety status, like a blocked message
    async with chat_server(["this is forbidden text"], extra={"safety": SafetyPlugin()}) as s:
        plain = await s.client.post("/chat", json={"message": "go", "stream": True,
                                                   "conversation_id": "c"})
        sse = await s.client.post("/chat", json={"message": "go", "stream": True,
                                                 "conversation_id": "c"},
                                  headers={"Accept": "text/event-stream"})
        gone = await s.client.get("/chat/c")
    for r in (plain, sse):
        assert r.status_code == 400
        assert (r.json()["code"], r.json()["stage"]) == ("output_blocked", "output")
        assert "forbidden" not in r.text
    assert gone.status_code == 404
    assert s.provider.open_streams == 0
