"""/chat runs the kernel's safety pipeline: input before the provider, output after."""

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
                                               "code": "input_blocked"})
    assert s.provider.requests == []


async def test_a_redacted_reply_is_returned_and_remembered_redacted(
        chat_server: ChatServer) -> None:
    async with chat_server(["the pin is 1234"], extra={"safety": SafetyPlugin()}) as s:
        r = await s.client.post("/chat", json={"message": "pin?", "conversation_id": "c"})
        turns = (await s.client.get("/chat/c")).json()["turns"]
    assert r.json()["reply"] == "the pin is [redacted]"
    assert turns[0]["assistant"] == "the pin is [redacted]"


async def test_a_blocked_streamed_reply_ends_with_an_error_and_is_not_remembered(
        chat_server: ChatServer) -> None:
    async with chat_server(["this is forbidden text"], extra={"safety": SafetyPlugin()}) as s:
        r = await s.client.post("/chat", json={"message": "go", "stream": True,
                                               "conversation_id": "c"})
        gone = await s.client.get("/chat/c")
    assert r.text.endswith("\n[error: output_blocked] not allowed\n")
    assert gone.status_code == 404
