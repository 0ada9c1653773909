"""POST /ollama/chat calls Ollama only through the kernel's guard: a real uvicorn on
loopback (`serve_app`) in front of the Ollama test server, with `PII()` (redacting SSNs
and e-mail addresses) or `PII(block=True)` registered as a safety check.

The scripted reply carries an SSN and an e-mail address cut into NDJSON lines of every
size from 1 to 11 characters, so each of them arrives split across lines in every
possible way: neither ever appears in what the client receives, streamed or whole."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import armillary_ollama
import httpx
import pytest

from armillary import SafetyCheck, Verdict, hookimpl
from armillary.testing import RecordedRequest, Responder, StreamRecord, make_app, serve_app
from armillary.testing.checks import PII
from tests.support.ollama_server import OllamaTestServer, Reply

SSN, EMAIL = "123-45-6789", "bob.smith@example.com"
#: more than the check's window (96 characters) before the SSN, so a stream blocked at
#: the SSN has already sent some text: the block is mid-stream
PREFIX = ("Here is the summary you asked for. The account was opened last spring and has "
          "been in good standing ever since, with no late payments. ")
REPLY = f"{PREFIX}The holder's SSN is {SSN} and their e-mail is {EMAIL}, reachable any time."
REDACTED = f"{PREFIX}The holder's SSN is [ssn] and their e-mail is [email], reachable any time."
SPLITS = range(1, 12)


def pieces(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


class Checks:
    def __init__(self, *checks: SafetyCheck) -> None:
        self.checks = checks

    @hookimpl
    def register_safety_checks(self, register):  # type: ignore[no-untyped-def]
        for check in self.checks:
            register(check)


@asynccontextmanager
async def guarded(ollama: OllamaTestServer, *checks: SafetyCheck
                  ) -> AsyncIterator[httpx.AsyncClient]:
    app = make_app({"ollama": armillary_ollama, "checks": Checks(*checks)},
                   config={"plugins": {"ollama": {"base_url": ollama.url,
                                                  "chunk_timeout": 5}}})
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield client


@pytest.fixture
def ollama():
    with OllamaTestServer() as server:
        yield server


def body(stream: bool, message: str = "Summarise the account.") -> dict[str, Any]:
    return {"model": "llama3.2", "message": message, "agent_id": "agent-7",
            "stream": stream}


def ndjson(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def assert_never_shown(raw: str) -> None:
    for secret in (SSN, EMAIL, "6789", "bob.smith", "example.com"):
        assert secret not in raw, f"{secret!r} reached the client: {raw[:300]}"


# --- redacting -------------------------------------------------------------------------

@pytest.mark.parametrize("size", SPLITS)
async def test_a_streamed_reply_is_redacted_whatever_the_split(ollama, size) -> None:
    ollama.push(Reply(tokens=pieces(REPLY, size)))
    async with guarded(ollama, PII()) as client:
        r = await client.post("/ollama/chat", json=body(stream=True))
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-ndjson"
    lines = ndjson(r.text)
    assert "".join(x["message"]["content"] for x in lines) == REDACTED
    assert lines[-1]["done"] is True and "error" not in lines[-1]
    assert lines[-1]["agent_id"] == "agent-7" and lines[-1]["provider"] == "ollama"
    assert_never_shown(r.text)
    # Ollama streamed it all, in the pieces scripted
    assert ollama.streams[-1].finished and ollama.streams[-1].lines_sent == \
        len(pieces(REPLY, size)) + 1


@pytest.mark.parametrize("size", SPLITS)
async def test_a_whole_reply_is_redacted_whatever_the_split(ollama, size) -> None:
    ollama.push(Reply(tokens=pieces(REPLY, size)))
    async with guarded(ollama, PII()) as client:
        r = await client.post("/ollama/chat", json=body(stream=False))
    assert r.status_code == 200
    assert r.json()["response"] == REDACTED
    assert r.json()["message"] == {"role": "assistant", "content": REDACTED}
    assert_never_shown(r.text)


async def test_the_message_is_redacted_before_ollama_sees_it(ollama) -> None:
    async with guarded(ollama, PII()) as client:
        r = await client.post("/ollama/chat", json=body(
            stream=True, message=f"My SSN is {SSN}, mail me at {EMAIL}"))
    assert r.status_code == 200
    sent = ollama.chat_requests[-1].json["messages"][-1]["content"]
    assert sent == "My SSN is [ssn], mail me at [email]"


# --- blocking --------------------------------------------------------------------------

Handler = Callable[[RecordedRequest, Responder], Awaitable[None]]


def pausing_after(ollama: OllamaTestServer, prefix: list[str], rest: list[str],
                  pause: float) -> Handler:
    """A handler streaming Ollama's lines for /api/chat: `prefix`, a pause (the relay
    sends what the window released meanwhile), then `rest` and the done line. Other
    paths (the kernel's health check) are the test server's."""
    others = ollama.handler

    async def handle(request: RecordedRequest, out: Responder) -> None:
        if request.path != "/api/chat":
            await others(request, out)
            return
        record = StreamRecord(request.path)
        ollama_streams.append(record)
        try:
            await out.start_stream()
            for i, piece in enumerate([*prefix, *rest]):
                if i == len(prefix) and not await out.sleep(pause):
                    return
                line = {"model": "llama3.2", "created_at": "2025-01-01T00:00:00Z",
                        "message": {"role": "assistant", "content": piece}, "done": False}
                if not await out.write(json.dumps(line).encode() + b"\n"):
                    return
                record.lines_sent += 1
            done = {"model": "llama3.2", "created_at": "2025-01-01T00:00:00Z",
                    "message": {"role": "assistant", "content": ""}, "done_reason": "stop",
                    "done": True}
            record.finished = await out.write(json.dumps(done).encode() + b"\n") and \
                await out.end_stream()
        finally:
            record.client_closed = out.client_gone and not record.finished
            record.ended_at = time.monotonic()

    ollama_streams: list[StreamRecord] = []
    handle.streams = ollama_streams  # type: ignore[attr-defined]
    return handle


@pytest.mark.parametrize("size", SPLITS)
async def test_a_stream_blocked_mid_reply_ends_with_the_checks_error_line(
        ollama, size) -> None:
    cut = pieces(REPLY, size)
    first = next(i for i in range(len(cut)) if len("".join(cut[:i])) > len(PREFIX))
    handler = pausing_after(ollama, cut[:first], cut[first:], pause=0.3)
    ollama.handler = handler
    async with guarded(ollama, PII(block=True)) as client:
        r = await client.post("/ollama/chat", json=body(stream=True))
    assert r.status_code == 200  # text had gone out before the SSN came
    lines = ndjson(r.text)
    sent = "".join(x["message"]["content"] for x in lines[:-1])
    assert sent and REPLY.startswith(sent) and len(sent) <= REPLY.index(SSN)
    last = lines[-1]
    assert (last["code"], last["done"]) == ("output_blocked", True)
    assert "ssn" in last["error"] and last["agent_id"] == "agent-7"
    assert_never_shown(r.text)
    assert len(handler.streams) == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("size", SPLITS)
async def test_a_whole_reply_that_is_blocked_is_a_400_with_the_checks_code(
        ollama, size) -> None:
    ollama.push(Reply(tokens=pieces(REPLY, size)))
    async with guarded(ollama, PII(block=True)) as client:
        r = await client.post("/ollama/chat", json=body(stream=False))
    assert r.status_code == 400
    assert r.json() == {"detail": "the output contains ssn, email", "code": "output_blocked",
                        "stage": "output", "check": "pii"}
    assert_never_shown(r.text)


@pytest.mark.parametrize("size", [1, 4, 11])
async def test_a_stream_blocked_before_any_text_went_out_is_a_400(ollama, size) -> None:
    short = f"SSN: {SSN}."  # all of it inside the hold-back window
    ollama.push(Reply(tokens=pieces(short, size)))
    async with guarded(ollama, PII(block=True)) as client:
        r = await client.post("/ollama/chat", json=body(stream=True))
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/json"
    assert r.json()["code"] == "output_blocked" and r.json()["stage"] == "output"
    assert_never_shown(r.text)


@pytest.mark.parametrize("stream", [False, True])
async def test_a_blocked_message_is_a_400_and_never_reaches_ollama(ollama, stream) -> None:
    async with guarded(ollama, PII(block=True)) as client:
        r = await client.post("/ollama/chat", json=body(stream, message=f"SSN {SSN}"))
    assert r.status_code == 400
    assert r.json() == {"detail": "the input contains ssn", "code": "input_blocked",
                        "stage": "input", "check": "pii"}
    assert not ollama.chat_requests


# --- the guard's context and the client leaving ----------------------------------------

class Recording(SafetyCheck):
    """Allows everything; remembers the context of each look."""

    name = "recording"
    incremental = True
    span = 8

    def __init__(self) -> None:
        self.contexts: list[dict[str, Any]] = []

    async def check(self, text: str, *, stage: str, context: dict[str, Any]) -> Verdict:
        self.contexts.append({"stage": stage, **context})
        return Verdict()


async def test_checks_are_told_the_agent_the_instance_and_the_model(ollama) -> None:
    check = Recording()
    async with guarded(ollama, check) as client:
        await client.post("/ollama/chat", json=body(stream=True))
    assert {c["stage"] for c in check.contexts} == {"input", "output"}
    for context in check.contexts:
        assert (context["agent"], context["provider"], context["model"]) == \
            ("agent-7", "ollama", "llama3.2")


async def test_a_client_that_leaves_a_guarded_stream_closes_it_upstream(ollama) -> None:
    ollama.push(Reply(tokens=[f"t{i} " for i in range(5000)], delay=0.005))
    async with guarded(ollama, PII()) as client:
        async with client.stream("POST", "/ollama/chat", json=body(stream=True)) as r:
            lines = r.aiter_lines()
            await anext(lines)
            await anext(lines)
            assert ollama.open_streams == 1
        assert await ollama.await_until(lambda: ollama.open_streams == 0, timeout=2.0)
    record = ollama.streams[-1]
    assert record.client_closed and not record.finished
    assert record.lines_sent < 1000


# --- reading ahead under the guard -----------------------------------------------------

async def test_a_fast_guarded_stream_arrives_whole_and_in_order(ollama) -> None:
    tokens = [f"t{i} " for i in range(5000)]
    ollama.push(Reply(tokens=tokens, prompt_eval_count=3, eval_count=5000))
    async with guarded(ollama, PII()) as client:
        r = await client.post("/ollama/chat", json=body(stream=True))
    lines = ndjson(r.text)
    assert "".join(x["message"]["content"] for x in lines) == "".join(tokens)
    assert lines[-1]["done"] is True and lines[-1]["eval_count"] == 5000
    assert all(x["done"] is False for x in lines[:-1])


async def test_a_paced_guarded_stream_goes_out_while_the_model_is_still_generating(
        ollama) -> None:
    tokens = [f"word{i:03d} " for i in range(300)]  # 8 characters each, 10 ms apart
    ollama.push(Reply(tokens=tokens, delay=0.01))
    async with guarded(ollama, PII()) as client, \
            client.stream("POST", "/ollama/chat", json=body(stream=True)) as r:
        lines = r.aiter_lines()
        first = json.loads(await anext(lines))
        # the window is 96 characters: the first text goes out about 13 tokens in
        assert ollama.streams[-1].lines_sent < 100 and not ollama.streams[-1].finished
        assert "".join(tokens).startswith(first["message"]["content"])
        rest = [json.loads(line) async for line in lines if line]
    # at this pace nothing waits to be batched: about a line per token
    assert len(rest) > 200
    assert first["message"]["content"] + "".join(x["message"]["content"] for x in rest) \
        == "".join(tokens)


async def test_the_text_before_an_upstream_error_still_goes_out_checked(ollama) -> None:
    cut = pieces(REPLY, 3)
    ollama.push(Reply(tokens=cut, error="out of memory", after=len(cut) - 5))
    async with guarded(ollama, PII()) as client:
        r = await client.post("/ollama/chat", json=body(stream=True))
    lines = ndjson(r.text)
    text = "".join(x["message"]["content"] for x in lines[:-1])
    assert text == redacted("".join(cut[:len(cut) - 5]))
    assert lines[-1]["code"] == "provider_error" and "out of memory" in lines[-1]["error"]
    assert_never_shown(r.text)


def redacted(text: str) -> str:
    """`text` as PII() redacts it."""
    return text.replace(SSN, "[ssn]").replace(EMAIL, "[email]")


async def test_tool_calls_of_a_guarded_stream_keep_their_own_line(ollama) -> None:
    call = {"id": "call_1", "name": "get_weather", "arguments": {"city": "Oslo"}}
    ollama.push(Reply(tokens=pieces("Checking the weather for you now.", 2),
                      tool_calls=[call]))
    async with guarded(ollama, PII()) as client:
        r = await client.post("/ollama/chat", json=body(stream=True))
    lines = ndjson(r.text)
    assert "".join(x["message"]["content"] for x in lines) == \
        "Checking the weather for you now."
    assert lines[-2]["message"]["tool_calls"] == [
        {"id": "call_1", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]
    assert lines[-1]["done"] is True


async def test_a_slow_client_holds_back_the_upstream_read_of_a_guarded_stream(
        ollama) -> None:
    ollama.push(Reply(tokens=[f"token-{i:06d} " * 20 for i in range(60000)]))
    async with guarded(ollama, PII()) as client:
        async with client.stream("POST", "/ollama/chat", json=body(stream=True)) as r:
            await anext(r.aiter_raw())
            await asyncio.sleep(0.5)  # read nothing more: buffers fill, the relay waits
            record = ollama.streams[-1]
            assert not record.finished and record.lines_sent < 60000
        assert await ollama.await_until(lambda: ollama.open_streams == 0, timeout=2.0)
