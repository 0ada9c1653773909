"""`armillary._provider_http.HTTPProvider` as a third-party author uses it: a provider of
a dozen lines for a made-up NDJSON completion API, tested against
`armillary.testing.LoopbackHTTPServer` over real sockets (what the server saw, how it
saw the client leave)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from armillary._errors import (
    ProviderError,
    ProviderProtocolError,
    ProviderTimeout,
    ProviderUnavailable,
)
from armillary._models import ChatChunk, ChatRequest, ChatResponse, Message, ModelInfo
from armillary._provider_http import HTTPProvider
from armillary.testing import LoopbackHTTPServer, RecordedRequest, Responder, StreamRecord
from armillary.testing.contract import refused_url


class TinyProvider(HTTPProvider):
    """`POST /v1/complete {"prompt", "stream"}` → `{"text"}`, or NDJSON `{"text"}` lines
    and a last `{"done": true}`."""

    health_path = "/health"

    def _body(self, request: ChatRequest, stream: bool) -> dict[str, object]:
        return {"prompt": request.messages[-1].content, "stream": stream}

    async def chat(self, request: ChatRequest) -> ChatResponse:
        response = await self.request("POST", "/v1/complete", json=self._body(request, False),
                                      model=self.default_model)
        return ChatResponse(message=Message(role="assistant", content=response.json()["text"]),
                            model=self.default_model)

    def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        def parse(line: bytes) -> ChatChunk | None:
            data = json.loads(line)
            if "error" in data:
                raise self.upstream_error(data["error"])
            return ChatChunk(delta=data.get("text", ""), done=bool(data.get("done")),
                             model=self.default_model)

        def end() -> ChatChunk:
            raise ProviderProtocolError(f"{self.name}: no done line",
                                        extra={"provider": self.name})

        return self.stream_request("/v1/complete", self._body(request, True),
                                   model=self.default_model, parse=parse, end=end)

    async def models(self) -> list[ModelInfo]:
        return [ModelInfo(name=self.default_model)]


class TinyServer(LoopbackHTTPServer):
    """Streams `words`, one line each, `delay` apart; `status` != 200 answers an error."""

    def __init__(self) -> None:
        super().__init__(self._handle)
        self.words = ["Hello", " there"]
        self.delay = 0.0
        self.status = 200
        self.error: str | None = None
        self.error_after: int | None = None

    async def _handle(self, request: RecordedRequest, out: Responder) -> None:
        if request.path == "/health":
            await out.send(self.status, b"warming up" if self.status != 200 else b"ok",
                           "text/plain")
            return
        if self.status != 200:
            await out.send(self.status, (self.error or "boom").encode(), "text/plain")
            return
        if not (request.json or {}).get("stream"):
            await out.send_json(200, {"text": "".join(self.words)})
            return
        record = StreamRecord(request.path)
        self.streams.append(record)
        try:
            await out.start_stream()
            for i, word in enumerate(self.words):
                if i == self.error_after:
                    await out.write(json.dumps({"error": self.error}).encode() + b"\n")
                    break
                if not await out.sleep(self.delay) or \
                        not await out.write(json.dumps({"text": word}).encode() + b"\n"):
                    return
                record.lines_sent += 1
            else:
                await out.write(b'{"done": true}\n')
            record.finished = await out.end_stream()
        finally:
            record.client_closed = out.client_gone and not record.finished
            record.ended_at = time.monotonic()


@pytest.fixture
def server() -> Iterator[TinyServer]:
    with TinyServer() as s:
        yield s


@pytest.fixture
async def provider(server: TinyServer) -> AsyncIterator[TinyProvider]:
    p = TinyProvider(name="tiny", base_url=server.url, model="tiny-1",
                     headers={"X-Token": "t0ken"})
    yield p
    await p.aclose()


def ask(text: str = "hi") -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content=text)])


async def test_a_stream_yields_the_read_chunks_up_to_the_done_one(server, provider) -> None:
    chunks = [c async for c in provider.stream(ask("say hello"))]
    assert [c.delta for c in chunks] == ["Hello", " there", ""]
    assert chunks[-1].done and chunks[-1].error is None
    sent = server.requests[-1]
    assert sent.json == {"prompt": "say hello", "stream": True}
    assert sent.headers["x-token"] == "t0ken"


async def test_a_whole_request_returns_the_200_response(server, provider) -> None:
    reply = await provider.chat(ask())
    assert reply.message.content == "Hello there"


@pytest.mark.parametrize("stream", [False, True])
async def test_an_error_status_is_the_default_provider_error_with_the_upstream_text(
        server, provider, stream) -> None:
    server.status, server.error = 500, "out of memory at http://u:s3cret@node:9000/x"
    with pytest.raises(ProviderError) as info:
        if stream:
            await anext(aiter(provider.stream(ask())))
        else:
            await provider.chat(ask())
    assert (info.value.code, info.value.status_code) == ("provider_error", 502)
    assert info.value.detail == "tiny: out of memory at http://u:***@node:9000/x " \
                                "(upstream HTTP 500)"
    assert info.value.extra == {"provider": "tiny", "upstream_status": 500}


async def test_an_error_after_the_first_chunk_is_one_last_error_chunk(
        server, provider) -> None:
    server.words, server.error, server.error_after = ["a", "b", "c"], "gpu fell off", 1
    chunks = [c async for c in provider.stream(ask())]
    assert [c.delta for c in chunks[:-1]] == ["a"]
    assert chunks[-1].done and chunks[-1].error is not None
    assert chunks[-1].error.code == "provider_error"
    assert chunks[-1].error.detail == "tiny: gpu fell off"


async def test_a_body_that_ends_without_its_final_chunk_is_a_protocol_error(
        server, provider) -> None:
    async def no_done(request: RecordedRequest, out: Responder) -> None:
        await out.start_stream()
        await out.write(b'{"text": "half"}\n')
        await out.end_stream()

    server.handler = no_done
    chunks = [c async for c in provider.stream(ask())]
    assert chunks[0].delta == "half"
    assert chunks[-1].error is not None and chunks[-1].error.code == "provider_protocol_error"


async def test_refused_and_silent_servers_are_unavailable_and_timeout(server) -> None:
    refused = TinyProvider(name="tiny", base_url=refused_url(), model="m")
    silent = TinyProvider(name="tiny", base_url=server.url, model="m", chunk_timeout=0.2)
    server.words, server.delay = ["slow"], 5.0
    try:
        with pytest.raises(ProviderUnavailable):
            await anext(aiter(refused.stream(ask())))
        with pytest.raises(ProviderTimeout) as info:
            await anext(aiter(silent.stream(ask())))
        assert "within 0.2s" in info.value.detail
    finally:
        await refused.aclose()
        await silent.aclose()


async def test_health_is_one_get_of_the_health_path(server, provider) -> None:
    health = await provider.health()
    assert health.reachable and health.latency_ms is not None and health.detail is None
    assert server.requests[-1].path == "/health"
    server.status = 503
    health = await provider.health()
    assert not health.reachable
    assert health.detail == f"{server.url}/health answered 503: warming up"
    down = TinyProvider(name="tiny", base_url=refused_url(), model="m")
    try:
        health = await down.health()
    finally:
        await down.aclose()
    assert not health.reachable and health.detail and "cannot connect" in health.detail


async def test_a_consumer_cancelled_twice_mid_stream_still_hangs_up(server, provider) -> None:
    server.words, server.delay = [f"w{i} " for i in range(400)], 0.05

    async def consume() -> None:
        async for _ in provider.stream(ask()):
            pass

    reader = asyncio.create_task(consume())
    assert await server.await_until(
        lambda: bool(server.streams) and server.streams[0].lines_sent >= 3, 5)
    since = time.monotonic()
    reader.cancel()
    await asyncio.sleep(0)
    reader.cancel()  # lands in the close
    await asyncio.wait([reader], timeout=5)
    assert reader.cancelled()
    record = server.streams[0]
    assert await server.await_until(lambda: record.ended_at is not None, 1.0)
    assert record.client_closed and not record.finished
    assert record.ended_at is not None and record.ended_at - since < 1.0


def test_repr_masks_the_credentials_in_the_base_url() -> None:
    provider = TinyProvider(name="tiny", base_url="http://u:s3cret@h:1/v1?api_key=k",
                            model="m")
    assert repr(provider) == "TinyProvider(name='tiny', base_url='http://u:***@h:1/v1?api_key=***')"
