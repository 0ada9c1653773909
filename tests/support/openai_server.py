"""A loopback OpenAI-compatible chat-completions server, for what a real one will not do.

The real-server tier runs the provider against llama.cpp's server; this fake covers the
rest: unknown models (llama.cpp answers any model name), upstream errors, an error in the
middle of a stream, malformed lines, stalls, usage chunks, parallel tool calls split
into many fragments. Real sockets, real SSE (`data: {...}` events, `data: [DONE]`).

Usage::

    from tests.support.openai_server import OpenAITestServer, Reply

    with OpenAITestServer(script=["Hello!"]) as server:
        provider = OpenAIProvider(base_url=server.url + "/v1", api_key="sk-test")

Endpoints: `GET /v1/models`, `POST /v1/chat/completions`. `Reply` fields:
`text`/`tokens`, `tool_calls` (`[{"id", "name", "arguments": {...}}]`, streamed as an
`id`+`name` fragment followed by the arguments JSON cut into `fragment_size` pieces; one
call after another, or with `interleave=True` the calls' fragments in turn — index 0, 1,
0, 1, … — as some servers send parallel calls),
`delay` (before each event), `status`+`error` (an HTTP error before anything),
`error`+`after` (N text events, then `data: {"error": {...}}`), `malformed`+`after`,
`stall`+`after`, `drop_after`, `hangup` (close the connection right after reading the
request, before any reply), `lines` (raw SSE lines), `finish_reason`, `usage`.
A model not in `models` gets OpenAI's 404 `model_not_found`. `respond=fn(body)` picks a
reply once the script is used up. Records as `armillary.testing.loopback.LoopbackHTTPServer`
does (`requests`, `open_connections`, `streams`, …).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from armillary.testing.loopback import LoopbackHTTPServer, RecordedRequest, Responder, StreamRecord


@dataclass
class Reply:
    text: str = ""
    tokens: list[str] | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    fragment_size: int = 4
    interleave: bool = False
    delay: float = 0.0
    status: int = 200
    error: str | None = None
    error_code: str | None = None
    after: int | None = None
    malformed: bytes | None = None
    stall: float | None = None
    drop_after: int | None = None
    hangup: bool = False
    lines: list[str] | None = None
    finish_reason: str | None = None
    usage: dict[str, int] | None = None

    def pieces(self) -> list[str]:
        if self.tokens is not None:
            return self.tokens
        if not self.text:
            return []
        words = self.text.split(" ")
        return [w + " " for w in words[:-1]] + [words[-1]]


def _event(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


class OpenAITestServer(LoopbackHTTPServer):
    def __init__(self, script: Iterable[Reply | str] = (), *,
                 models: Iterable[str] = ("gpt-4o-mini", "gpt-4o"),
                 default: Reply | str = "Hello! How can I help you today?",
                 respond: Callable[[dict[str, Any]], Reply | str | None] | None = None,
                 api_key: str | None = None, port: int = 0) -> None:
        super().__init__(self._handle, port=port)
        self.script = [self._reply(r) for r in script]
        self.default = self._reply(default)
        self.respond = respond
        self.models = list(models)
        self.api_key = api_key
        self._lock = threading.Lock()

    @staticmethod
    def _reply(reply: Reply | str) -> Reply:
        return Reply(text=reply) if isinstance(reply, str) else reply

    def push(self, *replies: Reply | str) -> None:
        with self._lock:
            self.script.extend(self._reply(r) for r in replies)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == "/v1/chat/completions"]

    def _next(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            if self.script:
                return self.script.pop(0)
        chosen = self.respond(body) if self.respond is not None else None
        return self.default if chosen is None else self._reply(chosen)

    async def _handle(self, request: RecordedRequest, out: Responder) -> None:
        if self.api_key is not None and \
                request.headers.get("authorization") != f"Bearer {self.api_key}":
            await out.send_json(401, {"error": {
                "message": "Incorrect API key provided.", "type": "invalid_request_error",
                "param": None, "code": "invalid_api_key"}})
            return
        if (request.method, request.path) == ("GET", "/v1/models"):
            await out.send_json(200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": 1686935002, "owned_by": "system"}
                for m in self.models]})
        elif (request.method, request.path) == ("POST", "/v1/chat/completions"):
            await self._chat(request, out)
        else:
            await out.send_json(404, {"detail": "Not Found"})

    async def _chat(self, request: RecordedRequest, out: Responder) -> None:
        body = request.json or {}
        model = body.get("model")
        if model not in self.models:
            await out.send_json(404, {"error": {
                "message": f"The model `{model}` does not exist or you do not have access "
                           f"to it.", "type": "invalid_request_error", "param": None,
                "code": "model_not_found"}})
            return
        reply = self._next(body)
        if reply.hangup:
            out.abort()
            return
        if reply.status != 200:
            await out.send_json(reply.status, {"error": {
                "message": reply.error or "error", "type": "server_error", "param": None,
                "code": reply.error_code}})
            return
        usage = reply.usage or {"prompt_tokens": 9, "completion_tokens": len(reply.pieces()),
                                "total_tokens": 9 + len(reply.pieces())}
        finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
        base = {"id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG", "created": int(time.time()),
                "model": model, "system_fingerprint": "fp_eb9dce56a8"}
        if not body.get("stream"):
            await self._whole(reply, out, base, usage, finish)
            return
        record = StreamRecord(request.path)
        self.streams.append(record)
        try:
            await self._stream(reply, body, out, base, usage, finish, record)
        finally:
            record.client_closed = out.client_gone and not record.finished
            record.ended_at = time.monotonic()

    @staticmethod
    def _tool_fragments(reply: Reply) -> list[dict[str, Any]]:
        """Each call's fragments (`id`+`name`, then its arguments in pieces): one call
        after another, or with `interleave` round-robin across the calls."""
        per_call = []
        for i, call in enumerate(reply.tool_calls):
            args = json.dumps(call.get("arguments", {}))
            fragments = [{"index": i, "id": call.get("id", f"call_{i}"), "type": "function",
                          "function": {"name": call["name"], "arguments": ""}}]
            fragments += [{"index": i, "function": {
                "arguments": args[start:start + reply.fragment_size]}}
                for start in range(0, len(args), reply.fragment_size)]
            per_call.append(fragments)
        if not reply.interleave:
            return [f for fragments in per_call for f in fragments]
        return [fragments[n] for n in range(max(map(len, per_call), default=0))
                for fragments in per_call if n < len(fragments)]

    async def _whole(self, reply: Reply, out: Responder, base: dict[str, Any],
                     usage: dict[str, int], finish: str) -> None:
        if reply.stall is not None and not await out.sleep(reply.stall):
            return
        if reply.malformed is not None:
            await out.send(200, reply.malformed)
            return
        if reply.error is not None:
            await out.send_json(500, {"error": {"message": reply.error, "type": "server_error",
                                                "param": None, "code": None}})
            return
        message: dict[str, Any] = {"role": "assistant",
                                   "content": "".join(reply.pieces()) or None,
                                   "refusal": None}
        if reply.tool_calls:
            message["tool_calls"] = [
                {"id": c.get("id", f"call_{i}"), "type": "function",
                 "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
                for i, c in enumerate(reply.tool_calls)]
        await out.send_json(200, {**base, "object": "chat.completion", "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": usage})

    async def _stream(self, reply: Reply, body: dict[str, Any], out: Responder,
                      base: dict[str, Any], usage: dict[str, int], finish: str,
                      record: StreamRecord) -> None:
        if not await out.start_stream(200, "text/event-stream; charset=utf-8"):
            return

        async def send(data: bytes) -> bool:
            if reply.delay and not await out.sleep(reply.delay):
                return False
            ok = await out.write(data)
            record.lines_sent += ok
            return ok

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            return _event({**base, "object": "chat.completion.chunk", "choices": [
                {"index": 0, "delta": delta, "logprobs": None,
                 "finish_reason": finish_reason}]})

        if reply.lines is not None:
            for line in reply.lines:
                if not await send(line.encode() + b"\n"):
                    return
            await out.end_stream()
            record.finished = True
            return
        if not await send(chunk({"role": "assistant", "content": "", "refusal": None})):
            return
        stop_at = next((n for n in (reply.after, reply.drop_after) if n is not None), None)
        for i, piece in enumerate(reply.pieces()):
            if stop_at is not None and i >= stop_at:
                break
            if not await send(chunk({"content": piece})):
                return
        if reply.drop_after is not None:
            out.abort()
            return
        if reply.stall is not None and not await out.sleep(
                math.inf if math.isinf(reply.stall) else reply.stall):
            return
        if reply.error is not None:
            await send(_event({"error": {"message": reply.error, "type": "server_error",
                                         "param": None, "code": None}}))
            await out.end_stream()
            record.finished = True
            return
        if reply.malformed is not None:
            await send(reply.malformed + b"\n\n")
            await out.end_stream()
            record.finished = True
            return
        for fragment in self._tool_fragments(reply):
            if not await send(chunk({"tool_calls": [fragment]})):
                return
        if not await send(chunk({}, finish)):
            return
        if (body.get("stream_options") or {}).get("include_usage") and \
                not await send(_event({**base, "object": "chat.completion.chunk",
                                       "choices": [], "usage": usage})):
            return
        if not await send(b"data: [DONE]\n\n"):
            return
        await out.end_stream()
        record.finished = True
