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

OpenAI's platform endpoints, each with a script of its own (`push_to(path, Reply(...))`,
else the default):

- `POST /v1/realtime/client_secrets`: checks `session.type == "realtime"` (400
  `invalid_request_error` otherwise, as OpenAI answers) and the model (`realtime_models`),
  answers `{"value": "ek_<32 hex>", "expires_at": now + expires_after.seconds (600),
  "session": {... "object": "realtime.session", "id": "sess_…", the asked model,
  instructions and voice}}`; the keys minted are in `client_secrets`. A `Reply` with
  `status`+`error` answers that error; `hangup` closes the connection; `stall` delays.
- `POST /v1/responses`: the Responses API. Whole: a `response` object whose `output` has a
  `message` item (`output_text` content) and one `function_call` item per
  `Reply.tool_calls` entry (`call_id`, `name`, `arguments` as a JSON string). Streamed
  (`"stream": true`): `event: <type>` + `data:` SSE, `sequence_number` from 0:
  `response.created`, `response.in_progress`, `response.output_item.added`,
  `response.content_part.added`, `response.output_text.delta` (one per piece),
  `response.output_text.done`, `response.content_part.done`, `response.output_item.done`,
  then per tool call `output_item.added`, `function_call_arguments.delta` (pieces of
  `fragment_size`), `function_call_arguments.done`, `output_item.done`, and
  `response.completed` with usage. `error`+`after` sends N deltas then `event: error`
  (`{"type": "error", "code", "message", "param", "sequence_number"}`); `drop_after`
  breaks the connection after N deltas; `stall`, `delay` as for chat. The stream is in
  `streams` (path `/v1/responses`) with `client_closed` when the client hung up.
- `POST /v1/moderations`: `results[0]` with OpenAI's 13 categories, `flagged` when the
  input has a word of `flag_words` (`{"kill": "violence", "idiot": "harassment"}`).
"""

from __future__ import annotations

import json
import math
import secrets
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
                 api_key: str | None = None, port: int = 0,
                 realtime_models: Iterable[str] = ("gpt-realtime", "gpt-realtime-mini",
                                                   "gpt-4o-realtime-preview"),
                 flag_words: dict[str, str] | None = None) -> None:
        super().__init__(self._handle, port=port)
        self.realtime_models = list(realtime_models)
        self.flag_words = dict(flag_words if flag_words is not None else FLAG_WORDS)
        #: scripts of the platform endpoints, by path
        self.platform: dict[str, list[Reply]] = {}
        #: every ephemeral key minted, in order
        self.client_secrets: list[str] = []
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

    def push_to(self, path: str, *replies: Reply | str) -> None:
        """Script the next replies of a platform endpoint (`/v1/responses`, …)."""
        with self._lock:
            self.platform.setdefault(path, []).extend(self._reply(r) for r in replies)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def _next_for(self, path: str) -> Reply | None:
        with self._lock:
            queue = self.platform.get(path)
            return queue.pop(0) if queue else None

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
        elif (request.method, request.path) == ("POST", "/v1/realtime/client_secrets"):
            await self._client_secret(request, out)
        elif (request.method, request.path) == ("POST", "/v1/responses"):
            await self._responses(request, out)
        elif (request.method, request.path) == ("POST", "/v1/moderations"):
            await self._moderations(request, out)
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

    # --- platform endpoints -----------------------------------------------------------

    @staticmethod
    async def _invalid(out: Responder, message: str, param: str | None,
                       status: int = 400, code: str | None = None) -> None:
        await out.send_json(status, {"error": {"message": message,
                                               "type": "invalid_request_error",
                                               "param": param, "code": code}})

    async def _scripted_failure(self, reply: Reply | None, out: Responder) -> bool:
        """Play a scripted hang-up, stall or error; True when the reply is done."""
        if reply is None:
            return False
        if reply.hangup:
            out.abort()
            return True
        if reply.stall is not None and not await out.sleep(reply.stall):
            return True
        if reply.status != 200:
            await out.send_json(reply.status, {"error": {
                "message": reply.error or "error", "type": "server_error", "param": None,
                "code": reply.error_code}})
            return True
        if reply.malformed is not None:
            await out.send(200, reply.malformed)
            return True
        return False

    async def _client_secret(self, request: RecordedRequest, out: Responder) -> None:
        reply = self._next_for(request.path)
        if await self._scripted_failure(reply, out):
            return
        body = request.json or {}
        session = body.get("session")
        if not isinstance(session, dict) or "type" not in session:
            await self._invalid(out, "Missing required parameter: 'session.type'.",
                                "session.type", code="missing_required_parameter")
            return
        if session["type"] != "realtime":
            await self._invalid(out, f"Invalid value: '{session['type']}'. Supported "
                                f"values are: 'realtime' and 'transcription'.",
                                "session.type", code="invalid_value")
            return
        model = session.get("model", "gpt-realtime")
        if model not in self.realtime_models:
            await self._invalid(out, f"Invalid model: '{model}'.", "session.model",
                                code="invalid_model")
            return
        seconds = (body.get("expires_after") or {}).get("seconds", 600)
        if not isinstance(seconds, int) or not 10 <= seconds <= 7200:
            await self._invalid(out, f"Invalid 'expires_after.seconds': {seconds!r}; "
                                "expected an integer between 10 and 7200.",
                                "expires_after.seconds", code="invalid_value")
            return
        now = int(time.time())
        key = "ek_" + secrets.token_hex(16)
        self.client_secrets.append(key)
        voice = ((session.get("audio") or {}).get("output") or {}).get("voice", "alloy")
        await out.send_json(200, {"value": key, "expires_at": now + seconds, "session": {
            "type": "realtime", "object": "realtime.session",
            "id": "sess_" + secrets.token_hex(12), "model": model,
            "output_modalities": session.get("output_modalities", ["audio"]),
            "instructions": session.get("instructions", ""),
            "tools": session.get("tools", []), "tool_choice": "auto",
            "max_output_tokens": "inf", "tracing": None, "truncation": "auto",
            "prompt": None, "expires_at": 0, "include": None,
            "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000},
                                "transcription": None, "noise_reduction": None,
                                "turn_detection": {"type": "server_vad", "threshold": 0.5,
                                                   "prefix_padding_ms": 300,
                                                   "silence_duration_ms": 200,
                                                   "idle_timeout_ms": None,
                                                   "create_response": True,
                                                   "interrupt_response": True}},
                      "output": {"format": {"type": "audio/pcm", "rate": 24000},
                                 "voice": voice, "speed": 1.0}}}})

    async def _moderations(self, request: RecordedRequest, out: Responder) -> None:
        reply = self._next_for(request.path)
        if await self._scripted_failure(reply, out):
            return
        body = request.json or {}
        inputs = body.get("input")
        if inputs is None:
            await self._invalid(out, "Missing required parameter: 'input'.", "input",
                                code="missing_required_parameter")
            return
        texts = [inputs] if isinstance(inputs, str) else [
            i if isinstance(i, str) else str(i.get("text", "")) for i in inputs]
        results = []
        for text in texts:
            words = {w.strip(".,!?;:").lower() for w in text.split()}
            hit = {self.flag_words[w] for w in words if w in self.flag_words}
            categories = {c: c in hit for c in MODERATION_CATEGORIES}
            results.append({"flagged": bool(hit), "categories": categories,
                            "category_scores": {c: 0.97 if v else 0.0001
                                                for c, v in categories.items()},
                            "category_applied_input_types": {
                                c: ["text"] for c in MODERATION_CATEGORIES}})
        await out.send_json(200, {"id": "modr-" + secrets.token_hex(12),
                                  "model": body.get("model") or "omni-moderation-latest",
                                  "results": results})

    @staticmethod
    def _text_of(body: dict[str, Any]) -> str:
        """The last user text of a Responses `input` (a string or a list of items)."""
        value = body.get("input")
        if isinstance(value, str):
            return value
        for item in reversed(value or []):
            if isinstance(item, dict) and item.get("role", "user") == "user":
                content = item.get("content")
                if isinstance(content, str):
                    return content
                return " ".join(str(p.get("text", "")) for p in content or []
                                if isinstance(p, dict))
        return ""

    async def _responses(self, request: RecordedRequest, out: Responder) -> None:
        body = request.json or {}
        model = body.get("model")
        if not model:
            await self._invalid(out, "Missing required parameter: 'model'.", "model",
                                code="missing_required_parameter")
            return
        if model not in self.models:
            await self._invalid(out, f"The requested model '{model}' does not exist.",
                                "model", status=400, code="model_not_found")
            return
        if "input" not in body:
            await self._invalid(out, "Missing required parameter: 'input'.", "input",
                                code="missing_required_parameter")
            return
        reply = self._next_for(request.path)
        if reply is None:
            chosen = self.respond(body) if self.respond is not None else None
            reply = self.default if chosen is None else self._reply(chosen)
        if reply.hangup:
            out.abort()
            return
        if reply.status != 200:
            await out.send_json(reply.status, {"error": {
                "message": reply.error or "error", "type": "server_error", "param": None,
                "code": reply.error_code}})
            return
        resp_id = "resp_" + secrets.token_hex(24)
        msg_id = "msg_" + secrets.token_hex(24)
        text = "".join(reply.pieces())
        calls = [{"id": "fc_" + secrets.token_hex(24), "type": "function_call",
                  "status": "completed", "arguments": json.dumps(c.get("arguments", {})),
                  "call_id": c.get("id", f"call_{i}"), "name": c["name"]}
                 for i, c in enumerate(reply.tool_calls)]
        message = {"id": msg_id, "type": "message", "status": "completed",
                   "role": "assistant", "content": [
                       {"type": "output_text", "annotations": [], "logprobs": [],
                        "text": text}]}
        output = ([message] if text or not calls else []) + calls
        usage = {"input_tokens": 12, "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens": len(reply.pieces()) + len(calls),
                 "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": 12 + len(reply.pieces()) + len(calls)}
        fmt = (body.get("text") or {}).get("format") or {"type": "text"}
        response = {
            "id": resp_id, "object": "response", "created_at": int(time.time()),
            "status": "completed", "background": False, "error": None,
            "incomplete_details": None, "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"), "model": model,
            "output": output, "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None}, "store": True,
            "temperature": body.get("temperature", 1.0), "text": {"format": fmt},
            "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools", []),
            "top_p": 1.0, "truncation": "disabled", "usage": usage, "user": None,
            "metadata": body.get("metadata", {})}
        if not body.get("stream"):
            if reply.stall is not None and not await out.sleep(reply.stall):
                return
            if reply.malformed is not None:
                await out.send(200, reply.malformed)
                return
            await out.send_json(200, response)
            return
        record = StreamRecord(request.path)
        self.streams.append(record)
        try:
            await self._responses_stream(reply, out, response, message, calls, record)
        finally:
            record.client_closed = out.client_gone and not record.finished
            record.ended_at = time.monotonic()

    async def _responses_stream(self, reply: Reply, out: Responder,
                                response: dict[str, Any], message: dict[str, Any],
                                calls: list[dict[str, Any]], record: StreamRecord) -> None:
        if not await out.start_stream(200, "text/event-stream; charset=utf-8"):
            return
        sequence = 0

        async def send(kind: str, payload: dict[str, Any]) -> bool:
            nonlocal sequence
            if reply.delay and not await out.sleep(reply.delay):
                return False
            data = json.dumps({"type": kind, **payload, "sequence_number": sequence},
                              separators=(",", ":"))
            sequence += 1
            ok = await out.write(f"event: {kind}\ndata: {data}\n\n".encode())
            record.lines_sent += ok
            return ok

        if reply.lines is not None:
            for line in reply.lines:
                if not await out.write(line.encode() + b"\n"):
                    return
            await out.end_stream()
            record.finished = True
            return
        pending = {**response, "status": "in_progress", "output": [], "usage": None}
        if not await send("response.created", {"response": pending}):
            return
        if not await send("response.in_progress", {"response": pending}):
            return
        index = 0
        pieces = reply.pieces()
        if pieces or not calls:
            ids = {"item_id": message["id"], "output_index": 0}
            if not await send("response.output_item.added", {"output_index": 0, "item": {
                    **message, "status": "in_progress", "content": []}}):
                return
            part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
            if not await send("response.content_part.added",
                              {**ids, "content_index": 0, "part": part}):
                return
            stop_at = next((n for n in (reply.after, reply.drop_after) if n is not None),
                           None)
            for i, piece in enumerate(pieces):
                if stop_at is not None and i >= stop_at:
                    break
                if not await send("response.output_text.delta", {
                        **ids, "content_index": 0, "delta": piece, "logprobs": []}):
                    return
            if reply.drop_after is not None:
                out.abort()
                return
            if reply.stall is not None and not await out.sleep(
                    math.inf if math.isinf(reply.stall) else reply.stall):
                return
            if reply.error is not None:
                await send("error", {"code": reply.error_code or "server_error",
                                     "message": reply.error, "param": None})
                await out.end_stream()
                record.finished = True
                return
            if reply.malformed is not None:
                await out.write(reply.malformed + b"\n\n")
                await out.end_stream()
                record.finished = True
                return
            text = "".join(pieces)
            done_part = {**part, "text": text}
            for kind, payload in (
                    ("response.output_text.done", {**ids, "content_index": 0, "text": text,
                                                   "logprobs": []}),
                    ("response.content_part.done", {**ids, "content_index": 0,
                                                    "part": done_part}),
                    ("response.output_item.done", {"output_index": 0, "item": message})):
                if not await send(kind, payload):
                    return
            index = 1
        for offset, call in enumerate(calls):
            at = index + offset
            if not await send("response.output_item.added", {"output_index": at, "item": {
                    **call, "status": "in_progress", "arguments": ""}}):
                return
            args = call["arguments"]
            for start in range(0, len(args), reply.fragment_size):
                if not await send("response.function_call_arguments.delta", {
                        "item_id": call["id"], "output_index": at,
                        "delta": args[start:start + reply.fragment_size]}):
                    return
            if not await send("response.function_call_arguments.done", {
                    "item_id": call["id"], "output_index": at, "arguments": args}):
                return
            if not await send("response.output_item.done", {"output_index": at,
                                                            "item": call}):
                return
        if not await send("response.completed", {"response": response}):
            return
        await out.end_stream()
        record.finished = True


#: OpenAI's moderation categories (omni-moderation)
MODERATION_CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
    "illicit/violent", "self-harm", "self-harm/intent", "self-harm/instructions", "sexual",
    "sexual/minors", "violence", "violence/graphic")

#: words that make the test server's moderation flag an input, and the category
FLAG_WORDS = {"kill": "violence", "idiot": "harassment"}


if __name__ == "__main__":  # a standalone fake OpenAI: python -m tests.support.openai_server
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tokens", type=int, default=0,
                        help="reply with this many tokens ('tok0 tok1 ...') instead of text")
    parser.add_argument("--text", default="Hello! How can I help you today?")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--paced-delay", type=float, default=0.001,
                        help="seconds between events for requests naming model 'paced'")
    args = parser.parse_args()
    tokens = [f"tok{i} " for i in range(args.tokens)]
    default_reply = Reply(tokens=tokens) if args.tokens else Reply(text=args.text)
    paced = Reply(tokens=tokens or args.text.split(" "), delay=args.paced_delay)
    fake = OpenAITestServer(
        default=default_reply, port=args.port, api_key=args.api_key,
        models=["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "paced"],
        respond=lambda body: paced if body.get("model") == "paced" else None).start()
    print(f"fake OpenAI on {fake.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.stop()
