"""/chat through the kernel's guard: an SSN and an e-mail address split across chunk
boundaries (every split size 1..11) never reach the client — plain stream, SSE,
non-stream — nor the conversation memory, whether the check redacts or blocks."""

from __future__ import annotations

from typing import Any

import armillary_chat
import armillary_ollama
import httpx

from armillary import hookimpl
from armillary.testing import ScriptedProvider, Turn, make_app, serve_app
from armillary.testing.checks import PII, PatternCheck
from tests.plugins.chat.conftest import ChatServer
from tests.plugins.chat.test_chat_stream import parse_sse
from tests.support.ollama_server import OllamaTestServer, Reply

SSN, EMAIL = "078-05-1120", "bob.smith@example.com"
# longer than the hold-back window (the check's span, 96), so a stream has started
# sending before the secrets come: a block is then mid-stream, not before the first byte
PREAMBLE = ("Here is what I found in the records you asked about, read back exactly as it "
            "was written down on the form; ")
TEXT = f"{PREAMBLE}the number is {SSN} and the address is {EMAIL}, as requested."
REDACTED = f"{PREAMBLE}the number is [ssn] and the address is [email], as requested."
SPLITS = range(1, 12)
#: what must never be seen, whole or in part
FRAGMENTS = ("078-", "-05-", "05-1120", "bob.smith", "smith@", "@example", "example.com")


def split(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def turns() -> list[Turn | str]:
    return [Turn(text=TEXT, chunks=split(TEXT, size)) for size in SPLITS]


class Checks:
    def __init__(self, check: PatternCheck) -> None:
        self.check = check

    @hookimpl
    def register_safety_checks(self, register):  # type: ignore[no-untyped-def]
        register(self.check)


def assert_nothing_leaks(text: str) -> None:
    for fragment in FRAGMENTS:
        assert fragment not in text, fragment


def deltas(events: list[tuple[str, dict[str, Any]]]) -> str:
    return "".join(d["delta"] for kind, d in events if kind == "delta")


def test_the_text_is_longer_than_the_window_and_has_no_fragment_outside_the_secrets() -> None:
    assert len(PREAMBLE) > PII().span
    assert_nothing_leaks(REDACTED)


# --- a redacting check ------------------------------------------------------------------

async def test_a_plain_stream_carries_only_redacted_text_at_every_split(
        chat_server: ChatServer) -> None:
    async with chat_server(turns(), extra={"pii": Checks(PII())}) as s:
        for size in SPLITS:
            async with s.client.stream("POST", "/chat", json={
                    "message": "read it back", "stream": True,
                    "conversation_id": f"plain-{size}"}) as r:
                pieces = [p async for p in r.aiter_text()]
            history = (await s.client.get(f"/chat/plain-{size}")).json()
            assert r.status_code == 200
            assert "".join(pieces) == REDACTED, size
            for piece in pieces:
                assert_nothing_leaks(piece)
            (turn,) = history["turns"]
            assert (turn["assistant"], turn["partial"]) == (REDACTED, False)
    assert s.provider.open_streams == 0


async def test_an_sse_stream_carries_only_redacted_text_at_every_split(
        chat_server: ChatServer) -> None:
    async with chat_server(turns(), extra={"pii": Checks(PII())}) as s:
        for size in SPLITS:
            r = await s.client.post("/chat", headers={"Accept": "text/event-stream"}, json={
                "message": "read it back", "stream": True, "conversation_id": f"sse-{size}"})
            history = (await s.client.get(f"/chat/sse-{size}")).json()
            events = parse_sse(r.text)
            assert (events[0][0], events[-1][0]) == ("start", "done")
            assert deltas(events) == REDACTED, size
            assert events[-1][1]["reply"] == REDACTED
            assert_nothing_leaks(r.text)
            assert history["turns"][0]["assistant"] == REDACTED


async def test_a_non_stream_reply_is_redacted_and_remembered_redacted(
        chat_server: ChatServer) -> None:
    async with chat_server(turns(), extra={"pii": Checks(PII())}) as s:
        for size in SPLITS:
            r = await s.client.post("/chat", json={"message": "read it back",
                                                   "conversation_id": f"whole-{size}"})
            history = await s.client.get(f"/chat/whole-{size}")
            assert r.json()["reply"] == REDACTED
            (turn,) = history.json()["turns"]
            assert turn["assistant"] == REDACTED
            assert_nothing_leaks(turn["user"] + turn["assistant"])


async def test_the_users_message_is_redacted_before_the_model_and_memory_see_it(
        chat_server: ChatServer) -> None:
    async with chat_server(["noted"], extra={"pii": Checks(PII())}) as s:
        await s.client.post("/chat", json={"message": f"mail me at {EMAIL}",
                                           "conversation_id": "in"})
        history = (await s.client.get("/chat/in")).json()
    assert s.provider.requests[0].messages[-1].content == "mail me at [email]"
    assert history["turns"][0]["user"] == "mail me at [email]"


async def test_over_ollama_the_stream_and_memory_are_redacted() -> None:
    script = [Reply(tokens=split(TEXT, size)) for size in (1, 4, 7, 11)]
    with OllamaTestServer(script) as ollama:
        app = make_app({"ollama": armillary_ollama, "chat": armillary_chat,
                        "pii": Checks(PII())},
                       config={"plugins": {"ollama": {"base_url": ollama.url,
                                                      "model": "llama3.2"}}})
        async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as c:
            got = []
            for i in range(len(script)):
                r = await c.post("/chat", json={"message": "read it back", "stream": True,
                                                "conversation_id": f"o{i}"})
                history = (await c.get(f"/chat/o{i}")).json()
                got.append((r.text, history["turns"][0]["assistant"]))
    assert got == [(REDACTED, REDACTED)] * len(script)


# --- a blocking check -------------------------------------------------------------------

BLOCK_MARKER = "\n[error: output_blocked] the output contains ssn\n"


async def test_a_blocked_plain_stream_ends_with_the_coded_marker_and_nothing_is_remembered(
        chat_server: ChatServer) -> None:
    async with chat_server(turns(), extra={"pii": Checks(PII(block=True))}) as s:
        for size in SPLITS:
            r = await s.client.post("/chat", json={"message": "read it back", "stream": True,
                                                   "conversation_id": f"bp-{size}"})
            history = await s.client.get(f"/chat/bp-{size}")
            assert r.status_code == 200  # the stream had started: the block is mid-stream
            assert r.text.endswith(BLOCK_MARKER), (size, r.text)
            sent = r.text[:-len(BLOCK_MARKER)]
            assert sent and PREAMBLE.startswith(sent)  # only text before the secret
            assert_nothing_leaks(r.text)
            assert history.status_code == 404
    assert s.provider.open_streams == 0


async def test_a_blocked_sse_stream_ends_with_an_error_event_and_nothing_is_remembered(
        chat_server: ChatServer) -> None:
    async with chat_server(turns(), extra={"pii": Checks(PII(block=True))}) as s:
        for size in SPLITS:
            r = await s.client.post("/chat", headers={"Accept": "text/event-stream"}, json={
                "message": "read it back", "stream": True, "conversation_id": f"bs-{size}"})
            history = await s.client.get(f"/chat/bs-{size}")
            events = parse_sse(r.text)
            assert events[0][0] == "start" and events[-1][0] == "error"
            assert "done" not in [k for k, _ in events]
            assert events[-1][1]["code"] == "output_blocked"
            assert PREAMBLE.startswith(deltas(events))
            assert_nothing_leaks(r.text)
            assert history.status_code == 404


async def test_a_blocked_non_stream_reply_is_a_400_and_nothing_is_remembered(
        chat_server: ChatServer) -> None:
    async with chat_server(turns(), extra={"pii": Checks(PII(block=True))}) as s:
        for size in SPLITS:
            r = await s.client.post("/chat", json={"message": "read it back",
                                                   "conversation_id": f"bw-{size}"})
            history = await s.client.get(f"/chat/bw-{size}")
            assert (r.status_code, r.json()["code"], r.json()["stage"]) == (
                400, "output_blocked", "output")
            assert_nothing_leaks(r.text)
            assert history.status_code == 404


async def test_a_blocked_turn_keeps_the_earlier_history_and_counts_as_an_error(
        chat_server: ChatServer) -> None:
    provider = ScriptedProvider(["Hello.", Turn(text=TEXT, chunks=split(TEXT, 5)), "Bye."])
    async with chat_server(provider=provider, extra={"pii": Checks(PII(block=True))}) as s:
        for message in ("hi", "read it back", "bye"):
            await s.client.post("/chat", json={"message": message, "stream": True,
                                               "conversation_id": "c"})
        history = (await s.client.get("/chat/c")).json()
        general = {a["name"]: a for a in (await s.client.get("/agents")).json()["agents"]}[
            "general"]
    assert [(t["user"], t["assistant"]) for t in history["turns"]] == [
        ("hi", "Hello."), ("bye", "Bye.")]
    # the blocked turn is not sent to the model as history either
    assert [m.content for m in provider.requests[-1].messages[1:]] == ["hi", "Hello.", "bye"]
    assert (general["task_count"], general["error_count"], general["partial_count"]) == (
        3, 1, 0)
    assert general["last_error_code"] == "output_blocked"


async def test_without_checks_the_stream_is_exactly_the_models_text(
        chat_server: ChatServer) -> None:
    # no checks: no hold-back, the text goes out exactly as the model wrote it
    async with chat_server(turns()) as s:
        r = await s.client.post("/chat", json={"message": "x", "stream": True})
    assert r.text == TEXT
