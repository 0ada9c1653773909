"""Safety checks on runs through the real path: uvicorn on loopback serving the tasks and
sse plugins, the ollama plugin streaming from the Ollama test server over sockets, and
`PII()` registered by a test plugin. The model's reply carries an SSN and an e-mail
address split across its stream lines at several split sizes; neither they nor any
fragment of them may reach a client (SSE, WebSocket), a REST view (steps, tools, memory,
result) or the store — redacted by `PII()`, or the run failed `output_blocked` by
`PII(block=True)`. And a strategy written only against the public API that streams from
`ctx.provider()` gets the checks without calling one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from armillary import (
    ArmillaryError,
    ChatRequest,
    Message,
    RunContext,
    SafetyCheck,
    Strategy,
    hookimpl,
)
from armillary._event_stream import EventStreamParser
from armillary.testing import make_app, serve_app
from armillary.testing.checks import PII
from tests.support.ollama_server import OllamaTestServer, Reply

SSN, EMAIL = "123-45-6789", "jane.doe@example.com"
SECRET_TEXT = f"Her SSN is {SSN} and her mail is {EMAIL}, thanks."
REDACTED = "Her SSN is [ssn] and her mail is [email], thanks."
#: the secrets and pieces of them (none of which a run id or a timestamp can contain)
FRAGMENTS = (SSN, "123-45", "45-6789", "-6789", EMAIL, "jane.doe", "doe@", "@example.com")
#: longer than the hold-back window: some text streams out before a block
PREAMBLE = "Let me look that up for you. " * 4
SPLITS = [1, 2, 3, 5, 8, 13]


def pieces(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def assert_clean(where: str, text: str) -> None:
    for fragment in FRAGMENTS:
        assert fragment not in text, f"{fragment!r} reached {where}"


class Checks:
    """A test plugin registering the safety checks."""

    def __init__(self, *checks: SafetyCheck) -> None:
        self.checks = checks

    @hookimpl
    def register_safety_checks(self, register: Any) -> None:
        for check in self.checks:
            register(check)


class Streamer(Strategy):
    """A third-party strategy: one streamed model call, its text as token events, written
    only against `armillary`'s public names. It calls no check itself."""

    name = "streamer"

    async def execute(self, ctx: RunContext) -> str | None:
        request = ChatRequest(messages=[Message(role="user", content=ctx.run.goal)])
        parts: list[str] = []
        async for chunk in ctx.provider().stream(request):
            if chunk.error is not None:
                raise ArmillaryError(chunk.error.detail, code=chunk.error.code)
            if chunk.delta:
                parts.append(chunk.delta)
                await ctx.emit("token", {"delta": chunk.delta})
        return "".join(parts)


class StreamerPlugin:
    @hookimpl
    def register_strategies(self, register: Any) -> None:
        register(Streamer())


@dataclass
class Server:
    url: str
    client: httpx.AsyncClient
    kernel: Any
    ollama: OllamaTestServer

    async def submit(self, task: str = "tell me about Jane", **body: Any) -> str:
        r = await self.client.post("/v1/tasks", json={"task": task, **body})
        assert r.status_code == 202, r.text
        task_id: str = r.json()["task_id"]
        return task_id


@pytest.fixture
def ollama() -> Iterator[OllamaTestServer]:
    with OllamaTestServer() as server:
        yield server


@asynccontextmanager
async def server(ollama: OllamaTestServer, tmp_path: Path, *checks: SafetyCheck
                 ) -> AsyncIterator[Server]:
    config = {
        "kernel": {"enable": ["ollama", "tasks", "sse"],
                   "store": f"sqlite:///{tmp_path / 'runs.db'}"},
        "plugins": {"ollama": {"base_url": ollama.url, "model": "llama3.2"}},
        "agents": {"third-party": {"strategy": "streamer"}},
    }
    app = make_app({"checks": Checks(*checks), "streamer": StreamerPlugin()}, config=config,
                   load_entry_points=True)
    async with serve_app(app, ws="websockets-sansio") as url, \
            httpx.AsyncClient(base_url=url, timeout=20) as client:
        yield Server(url, client, app.state.kernel, ollama)


async def sse_text(s: Server, task_id: str) -> str:
    """The whole SSE body of the task's stream, as the client received it."""
    async with s.client.stream("GET", f"/v1/stream/tasks/{task_id}",
                               headers={"Accept": "text/event-stream"}) as response:
        assert response.status_code == 200
        return "".join([t async for t in response.aiter_text()])


def sse_events(text: str) -> list[tuple[str, Any]]:
    parser, out = EventStreamParser(), []
    for line in text.split("\n"):
        message = parser.feed(line)
        if message is not None and message.comment is None:
            out.append((message.event, json.loads(message.data)))
    return out


async def ws_frames(s: Server, task_id: str) -> list[str]:
    url = s.url.replace("http://", "ws://") + f"/v1/stream/tasks/{task_id}"
    async with connect(url) as ws:
        frames = [str(m) async for m in ws]
        assert ws.close_code == 1000
    return frames


async def follow_live(s: Server, task_id: str) -> tuple[str, list[str]]:
    """SSE and WebSocket clients following the task from its start."""
    sse, ws = await asyncio.gather(sse_text(s, task_id), ws_frames(s, task_id))
    return sse, ws


async def everything_stored(s: Server, task_id: str) -> str:
    events = await s.kernel.store.events(task_id)
    run = await s.kernel.store.get_run(task_id)
    return "\n".join([run.model_dump_json(), *(e.model_dump_json() for e in events)])


async def rest_views(s: Server, task_id: str) -> dict[str, Any]:
    views = {}
    for view in ("", "/result", "/steps", "/tools", "/memory", "/plan"):
        r = await s.client.get(f"/v1/tasks/{task_id}{view}")
        assert r.status_code == 200, (view, r.text)
        views[view or "/"] = r.json()
    return views


@pytest.mark.parametrize("size", SPLITS)
async def test_a_redacted_reply_never_shows_the_secret_anywhere(
        ollama: OllamaTestServer, tmp_path: Path, size: int) -> None:
    ollama.push(Reply(tokens=pieces(SECRET_TEXT, size), delay=0.005))
    async with server(ollama, tmp_path, PII()) as s:
        task_id = await s.submit()
        sse, ws = await follow_live(s, task_id)
        views = await rest_views(s, task_id)
        stored = await everything_stored(s, task_id)
    # the model really sent the secret, in pieces of `size`
    assert ollama.streams[-1].finished and ollama.streams[-1].lines_sent >= len(
        pieces(SECRET_TEXT, size))
    assert_clean("SSE", sse)
    assert_clean("the WebSocket", "\n".join(ws))
    for view, body in views.items():
        assert_clean(f"GET /v1/tasks/{{id}}{view}", json.dumps(body))
    assert_clean("the store", stored)
    assert views["/result"]["final_answer"] == REDACTED
    assert views["/result"]["success"] is True
    events = sse_events(sse)
    assert events[-1][0] == "completed" and events[-1][1]["result"] == REDACTED
    assert "".join(d["delta"] for e, d in events if e == "token") == REDACTED
    reply = [m for m in views["/memory"]["working_messages"] if m["role"] == "assistant"]
    assert reply[-1]["content"] == REDACTED
    assert ("safety", {"stage": "output", "check": "pii", "action": "redacted",
                       "code": None}) in events
    ws_tokens = [json.loads(f) for f in ws]
    assert "".join(m["payload"]["delta"] for m in ws_tokens if m["type"] == "token") == \
        REDACTED


@pytest.mark.parametrize("size", [1, 4, 11])
async def test_a_blocked_reply_fails_the_run_output_blocked_and_shows_no_secret(
        ollama: OllamaTestServer, tmp_path: Path, size: int) -> None:
    ollama.push(Reply(tokens=pieces(PREAMBLE + SECRET_TEXT, size), delay=0.002))
    async with server(ollama, tmp_path, PII(block=True)) as s:
        task_id = await s.submit()
        sse, ws = await follow_live(s, task_id)
        views = await rest_views(s, task_id)
        stored = await everything_stored(s, task_id)
        # the block hung up on the model: it is not generating for nobody
        assert await asyncio.to_thread(ollama.wait_until, lambda: ollama.open_streams == 0)
    assert_clean("SSE", sse)
    assert_clean("the WebSocket", "\n".join(ws))
    for view, body in views.items():
        assert_clean(f"GET /v1/tasks/{{id}}{view}", json.dumps(body))
    assert_clean("the store", stored)
    result = views["/result"]
    assert result["status"] == "failed" and result["success"] is False
    assert result["error"]["code"] == "output_blocked" and result["final_answer"] is None
    events = sse_events(sse)
    assert events[-1][0] == "failed"
    assert events[-1][1]["error"]["code"] == "output_blocked"
    streamed = "".join(d["delta"] for e, d in events if e == "token")
    assert streamed and PREAMBLE.startswith(streamed)  # it streamed until the block
    last = json.loads(ws[-1])
    assert last["type"] == "failed" and last["payload"]["error"]["code"] == "output_blocked"


async def test_a_third_party_strategy_streaming_from_ctx_provider_gets_the_checks(
        ollama: OllamaTestServer, tmp_path: Path) -> None:
    ollama.push(Reply(tokens=pieces(SECRET_TEXT, 3), delay=0.002))
    async with server(ollama, tmp_path, PII()) as s:
        task_id = await s.submit(f"write to {EMAIL}", agent="third-party")
        sse, ws = await follow_live(s, task_id)
        views = await rest_views(s, task_id)
    sent = ollama.requests[-1].json["messages"]
    assert sent[-1]["content"] == "write to [email]"  # the input stage, before the model
    assert views["/result"]["final_answer"] == REDACTED
    events = sse_events(sse)
    assert "".join(d["delta"] for e, d in events if e == "token") == REDACTED
    assert_clean("SSE", "\n".join(json.dumps(d) for e, d in events if e == "token"))
    assert_clean("the WebSocket", "\n".join(f for f in ws if '"token"' in f))


async def test_a_goal_is_checked_before_it_is_stored(
        ollama: OllamaTestServer, tmp_path: Path) -> None:
    """The input stage runs at submit: the run record, its `queued` event and the views
    hold the redacted goal; a goal a blocking check refuses is a 400 and no run."""
    ollama.push(Reply(tokens=["fine"]))
    async with server(ollama, tmp_path, PII()) as s:
        task_id = await s.submit(f"remember {SSN} for {EMAIL}")
        sse = await sse_text(s, task_id)
        stored = await everything_stored(s, task_id)
        view = (await s.client.get(f"/v1/tasks/{task_id}")).json()
    assert_clean("the stream", sse)
    assert_clean("the store", stored)
    assert_clean("GET /v1/tasks/{id}", json.dumps(view))
    queued = [d for e, d in sse_events(sse) if e == "queued"]
    assert queued and queued[0]["goal"] == "remember [ssn] for [email]"
    assert_clean("the model's request", ollama.chat_requests[-1].body.decode())
    async with server(ollama, tmp_path, PII(block=True)) as s:
        before = len(await s.kernel.store.list_runs(limit=100))
        refused = await s.client.post("/v1/tasks", json={"task": f"remember {SSN}"})
        after = len(await s.kernel.store.list_runs(limit=100))
    assert refused.status_code == 400
    assert refused.json()["code"] == "input_blocked"
    assert_clean("the refusal", refused.text)
    assert before == after
