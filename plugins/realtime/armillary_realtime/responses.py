"""`POST /api/responses`: a proxy to OpenAI's Responses API.

The body is the Responses API's own (`model`, `input`, `text.format`, `tools`, …), sent on
as it is (a body without `model` gets `responses_model`). A whole reply is the upstream's
`response` object plus what the OpenAI SDKs compute client-side and the seed's frontend
reads: `output_text` (every `output_text` part of every message item, joined) and, when
`text.format` is a JSON schema, `output_parsed` (that text parsed; null when it is not
JSON). With `"stream": true` the upstream's Server-Sent Events are relayed as they come,
whole events only, byte for byte (a burst coalesced into one write per
`stream_flush_ms`, see `relay`); a stream that breaks after it started ends with one
`event: error`; a client that goes away closes the upstream request at once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse

from armillary import InvalidRequest, KernelDep, WatchedStreamingResponse, cancel_on_disconnect
from armillary_realtime.upstream import (
    UpstreamSettings,
    platform_client,
    upstream_errors,
    upstream_settings,
)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def output_text(response: dict[str, Any]) -> str:
    """The text of a `response` object's message items (the SDKs' `output_text`)."""
    parts = []
    for item in response.get("output") or []:
        if isinstance(item, dict) and item.get("type") == "message":
            for part in item.get("content") or []:
                if isinstance(part, dict) and part.get("type") == "output_text":
                    parts.append(str(part.get("text", "")))
    return "".join(parts)


def wants_json_schema(body: dict[str, Any]) -> bool:
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    return isinstance(fmt, dict) and fmt.get("type") == "json_schema"


def with_output(body: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """`response` with `output_text`, and `output_parsed` for a JSON-schema format."""
    text = output_text(response)
    out = {**response, "output_text": text}
    if wants_json_schema(body):
        try:
            out["output_parsed"] = json.loads(text)
        except ValueError:
            out["output_parsed"] = None
    return out


def request_body(body: Any, settings: UpstreamSettings) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a Responses API request (a JSON object)",
                             code="invalid_responses_request")
    if "input" not in body and "previous_response_id" not in body and "prompt" not in body:
        raise InvalidRequest("a Responses API request needs `input`",
                             code="invalid_responses_request")
    return body if body.get("model") else {**body, "model": settings.responses_model}


async def relay(stream: AsyncIterator[bytes], first: bytes | None, *,
                flush_seconds: float) -> AsyncIterator[bytes]:
    """The upstream's events, `first` (already read) first.

    With `flush_seconds` > 0, writes are coalesced: a read that comes after a quiet spell
    (the last write was `flush_seconds` ago or more) goes out at once, so a paced stream
    and the first events lose nothing; reads that come faster are gathered and written
    together at most once per `flush_seconds`. Each write is one syscall and one HTTP
    chunk, which at thousands of events a second costs more than the relaying itself;
    a burst's events wait at most `flush_seconds`. Always whole events, in order."""
    if first is not None:
        yield first
    if flush_seconds <= 0:
        try:
            async for chunk in stream:
                yield chunk
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        return
    loop = asyncio.get_running_loop()
    buffer = bytearray()
    ready = asyncio.Event()
    ended = False

    async def pump() -> None:
        nonlocal ended
        try:
            async for chunk in stream:
                buffer.extend(chunk)
                ready.set()
        finally:
            ended = True
            ready.set()

    reader = asyncio.create_task(pump())
    last = loop.time() - flush_seconds  # the first read after `first` goes at once
    try:
        while buffer or not ended:
            await ready.wait()
            wait = last + flush_seconds - loop.time()
            if wait > 0 and not ended:
                await asyncio.sleep(wait)
            ready.clear()
            if buffer:
                data = bytes(buffer)
                buffer.clear()
                last = loop.time()
                yield data
        reader.result()  # an error the stream raised (it reports its own as an event)
    finally:
        # the reader ends by itself once cancelled (closing the upstream synchronously
        # first: `open_stream` shuts the socket down), even if this wait is cut short by
        # a cancel that keeps coming (anyio's cancel scope re-raises on every await)
        reader.add_done_callback(_retrieve)
        if not reader.done():
            reader.cancel()
            await asyncio.wait([reader])
        await stream.aclose()  # type: ignore[attr-defined]


def _retrieve(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()


def add_routes(router: APIRouter, settings: Any) -> None:
    upstream = upstream_settings(settings)

    @router.post("/api/responses", summary="Proxy to the OpenAI Responses API",
                 responses={200: {"content": {"text/event-stream": {
                     "schema": {"type": "string"}}}, "description": "The response object "
                     "with `output_text` (and `output_parsed`), or with `\"stream\": true` "
                     "OpenAI's Server-Sent Events relayed as they come"},
                     **upstream_errors({422: "Not a Responses API request: not a JSON "
                                             "object, or no `input` "
                                             "(`invalid_responses_request`)"})})
    async def responses(request: Request, kernel: KernelDep,
                        body: Any = Body(...)) -> Any:  # noqa: B008
        """A Responses API body; the reply carries `output_text` (and `output_parsed`
        for a JSON-schema `text.format`), or with `"stream": true` the upstream's events."""
        payload = request_body(body, upstream)
        client = platform_client(kernel, upstream)
        if not payload.get("stream"):
            data = await cancel_on_disconnect(request, client.create_response(payload))
            return JSONResponse(with_output(payload, data))
        stream = client.stream_response(payload)
        # the first events are awaited here, so a refused key or a network failure is an
        # error answer with its status rather than a 200 stream that fails
        try:
            first = await cancel_on_disconnect(request, anext(stream))
        except StopAsyncIteration:
            first = None
        content = relay(stream, first, flush_seconds=upstream.stream_flush_ms / 1000)
        return WatchedStreamingResponse(content, media_type="text/event-stream",
                                        headers=SSE_HEADERS)
