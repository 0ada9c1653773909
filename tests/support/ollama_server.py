"""A protocol-faithful Ollama server on a loopback port, for tests and benchmarks.

It speaks Ollama's HTTP API over real sockets: `GET /`, `GET /api/version`,
`GET /api/tags`, `POST /api/chat` and `POST /api/generate`, streaming (chunked
`application/x-ndjson`, one JSON object per line, flushed per token) or not
(`"stream": false`). Every line is built from templates copied from real Ollama output
(`tests/support/ollama_fixtures/`), so key names and order are Ollama's.

Usage::

    from tests.support.ollama_server import OllamaTestServer, Reply

    with OllamaTestServer(script=["Hello there!"]) as ollama:
        provider = OllamaProvider(base_url=ollama.url)      # any HTTP client works
        ...
        assert ollama.requests[-1].json["messages"][0]["content"] == "hi"

It runs its own event loop in a background thread, so it works the same from sync and
async tests (and from another process's point of view it is just an Ollama).

Scripting replies
-----------------
`script` is a list of replies used in order by `/api/chat` and `/api/generate`; once it
is used up, `default` (a `Reply` or a string) answers every further request.
`server.push(reply, ...)` appends to the script at any time. `respond=fn` decides
instead of `default` once the script is used up: `fn(body)` gets the request's JSON and
returns a reply (or None for `default`), e.g. a tool call until the last message is a
tool result. A string is shorthand for `Reply(text=...)`. `Reply` fields:

- `text` / `tokens`: the reply text; `tokens` gives the exact stream pieces (default:
  `text` split after each space).
- `tool_calls`: `[{"name": ..., "arguments": {...}}]` (an `"id"` is sent when given),
  streamed as one line before the final one, as Ollama does.
- `delay`: seconds slept before every token line; `first_delay`: before the status line
  and headers (a slow model load).
- `status` + `error`: an HTTP error before any output, e.g. `Reply(status=500,
  error="boom")` answers `500 {"error": "boom"}`.
- `error` with `after=N` (status 200): N token lines, then `{"error": ...}` and the
  stream ends, as Ollama does when a model fails mid-stream.
- `malformed=b"..."` with `after=N`: N token lines, then that raw (non-JSON) line.
- `stall=S` with `after=N`: N token lines, then silence for S seconds (`math.inf` = until
  the client goes away).
- `drop_after=N`: N token lines, then the TCP connection is closed without finishing
  (streamed: after the status line and headers; whole: before anything is sent).
- `hangup=True`: the TCP connection is closed right after the request is read, before a
  byte of the reply (a server that crashed or restarted under the request).
- `lines`: exact raw lines to send instead of anything generated.
- `done_reason`, `prompt_eval_count`, `eval_count`: values for the final line.

Requests naming a model not in `models` get Ollama's `404 {"error": "model 'x' not
found"}` and do not use a script entry; a model without a tag means `:latest`.

What the server records
-----------------------
- `requests`: every request (`.method`, `.path`, `.headers`, `.body`, `.json`).
- `connections_opened`, `connections_closed`, `open_connections`: TCP connections, counted
  when the socket is accepted and when it is closed (by either side).
- `streams`: one `StreamRecord` per streamed reply (`lines_sent`, `finished`,
  `client_closed`); `open_streams` counts those still being written.
- `replies`: one `StreamRecord` per scripted answer to `/api/chat` or `/api/generate`,
  streamed or not, from the moment the request is read (so `first_delay` and a slow
  whole reply count): `finished` once the answer went out whole, `client_closed` when the
  client hung up first, `started_at`/`ended_at`.
- `wait_until(predicate, timeout)` polls a condition (e.g. `lambda: s.open_streams == 0`).

The generic part, `LoopbackHTTPServer` (a tiny HTTP/1.1 server with keep-alive, chunked
streaming, hang-up detection and connection accounting), is the testing kit's
`armillary.testing.loopback`, which `tests/support/openai_server.py` builds on too.
"""

from __future__ import annotations

import contextlib
import copy
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# re-exported: tests that watch either fake server's streams import them from here
from armillary.testing.loopback import (
    LoopbackHTTPServer,
    RecordedRequest,
    Responder,
    StreamRecord,
)

__all__ = ["FIXTURES", "LoopbackHTTPServer", "OllamaTestServer", "RecordedRequest", "Reply",
           "Responder", "StreamRecord", "ollama_server"]

FIXTURES = Path(__file__).parent / "ollama_fixtures"

# --- Ollama ------------------------------------------------------------------------------

def _fixture_lines(name: str) -> list[dict[str, Any]]:
    text = (FIXTURES / name).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


@dataclass
class Reply:
    """One scripted answer to `/api/chat` or `/api/generate` (see the module docstring)."""

    text: str = ""
    tokens: list[str] | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    delay: float = 0.0
    first_delay: float = 0.0
    status: int = 200
    error: str | None = None
    after: int | None = None
    malformed: bytes | None = None
    stall: float | None = None
    drop_after: int | None = None
    hangup: bool = False
    lines: list[bytes | str] | None = None
    done_reason: str = "stop"
    prompt_eval_count: int | None = None
    eval_count: int | None = None

    def pieces(self) -> list[str]:
        if self.tokens is not None:
            return self.tokens
        if not self.text:
            return []
        words = self.text.split(" ")
        return [w + " " for w in words[:-1]] + [words[-1]]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _dumps(obj: Any) -> bytes:
    # Go's encoding/json: compact, non-ASCII kept as is, a newline after each object
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def _normalise(model: str) -> str:
    return model if ":" in model else model + ":latest"


class OllamaTestServer(LoopbackHTTPServer):
    """An Ollama on a loopback port; see the module docstring for the whole API."""

    def __init__(self, script: Iterable[Reply | str] = (), *,
                 models: Iterable[str] = ("llama3.2:latest", "deepseek-r1:latest"),
                 default: Reply | str = "Hello! How can I help you today?",
                 respond: Callable[[dict[str, Any]], Reply | str | None] | None = None,
                 version: str | None = None, port: int = 0) -> None:
        super().__init__(self._handle, port=port)
        self.script: list[Reply] = [self._reply(r) for r in script]
        self.default = self._reply(default)
        self.respond = respond
        self.models = [_normalise(m) for m in models]
        self.version = version or _fixture("version.json")["version"]
        self._lock = threading.Lock()
        chat = _fixture_lines("chat_stream.ndjson")
        self._chat_token, self._chat_tools, self._chat_final = chat
        self._generate_token, self._generate_final = _fixture_lines("generate_stream.ndjson")
        self._chat_whole, self._generate_whole = _fixture("chat.json"), _fixture("generate.json")
        self._tags = _fixture("tags.json")["models"]
        #: one record per scripted answer, streamed or not (see the module docstring)
        self.replies: list[StreamRecord] = []

    @staticmethod
    def _reply(reply: Reply | str) -> Reply:
        return Reply(text=reply) if isinstance(reply, str) else reply

    def push(self, *replies: Reply | str) -> None:
        """Append replies to the script."""
        with self._lock:
            self.script.extend(self._reply(r) for r in replies)

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            if self.script:
                return self.script.pop(0)
        chosen = self.respond(body) if self.respond is not None else None
        return self.default if chosen is None else self._reply(chosen)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == "/api/chat"]

    # --- rendering (templates from real Ollama lines) --------------------------------

    def _token_line(self, kind: str, model: str, piece: str) -> dict[str, Any]:
        # shallow copies keep the template's key order and stay cheap: benchmarks stream
        # thousands of these and the server must not be the bottleneck
        if kind == "chat":
            template = self._chat_token
            return {**template, "model": model, "created_at": _now(),
                    "message": {**template["message"], "content": piece}}
        return {**self._generate_token, "model": model, "created_at": _now(),
                "response": piece}

    def _tool_line(self, model: str, calls: list[dict[str, Any]]) -> dict[str, Any]:
        line = copy.deepcopy(self._chat_tools)
        line["model"], line["created_at"] = model, _now()
        line["message"]["tool_calls"] = [self._tool_call(c) for c in calls]
        return line

    @staticmethod
    def _tool_call(call: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "id" in call:
            out["id"] = call["id"]
        out["function"] = {"name": call["name"], "arguments": call.get("arguments", {})}
        return out

    def _final_line(self, kind: str, model: str, reply: Reply, request: dict[str, Any],
                    text: str | None = None) -> dict[str, Any]:
        if text is None:  # the last line of a stream
            template = self._chat_final if kind == "chat" else self._generate_final
        else:  # a whole reply
            template = self._chat_whole if kind == "chat" else self._generate_whole
        line = copy.deepcopy(template)
        line["model"], line["created_at"] = model, _now()
        if text is not None:
            if kind == "chat":
                line["message"]["content"] = text
                line["message"].pop("tool_calls", None)
                if reply.tool_calls:
                    line["message"]["tool_calls"] = [self._tool_call(c)
                                                     for c in reply.tool_calls]
            else:
                line["response"] = text
        line["done_reason"] = reply.done_reason
        if reply.prompt_eval_count is not None:
            line["prompt_eval_count"] = reply.prompt_eval_count
        else:
            prompt = request.get("prompt") or " ".join(
                str(m.get("content", "")) for m in request.get("messages") or [])
            line["prompt_eval_count"] = max(1, len(prompt.split()))
        line["eval_count"] = (reply.eval_count if reply.eval_count is not None
                              else len(reply.pieces()))
        return line

    # --- request handling -------------------------------------------------------------

    async def _handle(self, request: RecordedRequest, out: Responder) -> None:
        route = (request.method, request.path)
        if route in (("GET", "/"), ("HEAD", "/")):
            await out.send(200, b"Ollama is running", "text/plain; charset=utf-8")
        elif route == ("GET", "/api/version"):
            await out.send_json(200, {"version": self.version})
        elif route == ("GET", "/api/tags"):
            by_name = {m["name"]: m for m in self._tags}
            models = []
            for name in self.models:
                entry = copy.deepcopy(by_name.get(name) or self._tags[-1])
                entry["name"] = entry["model"] = name
                models.append(entry)
            await out.send_json(200, {"models": models})
        elif route in (("POST", "/api/chat"), ("POST", "/api/generate")):
            await self._generate(request, out, "chat" if request.path == "/api/chat"
                                 else "generate")
        else:
            await out.send(404, b"404 page not found", "text/plain")

    async def _generate(self, request: RecordedRequest, out: Responder, kind: str) -> None:
        try:
            body = json.loads(request.body or b"{}")
        except ValueError as exc:
            await out.send_json(400, {"error": f"invalid character in request: {exc}"})
            return
        model = body.get("model")
        if not model:
            await out.send_json(400, {"error": "model is required"})
            return
        if _normalise(model) not in self.models:
            await out.send_json(404, {"error": f"model '{model}' not found"})
            return
        reply = self._next_reply(body)
        if reply.hangup:
            out.abort()
            return
        record = StreamRecord(request.path)
        self.replies.append(record)
        try:
            record.finished = await self._answer(kind, model, reply, body, out,
                                                 request.path)
        finally:
            record.client_closed = out.client_gone and not record.finished
            record.ended_at = time.monotonic()

    async def _answer(self, kind: str, model: str, reply: Reply, body: dict[str, Any],
                      out: Responder, path: str) -> bool:
        if reply.first_delay and not await out.sleep(reply.first_delay):
            return False
        if reply.status != 200:
            return await out.send_json(reply.status, {"error": reply.error or "error"})
        if body.get("stream", True):
            return await self._stream(kind, model, reply, body, out, path)
        return await self._whole(kind, model, reply, body, out)

    async def _whole(self, kind: str, model: str, reply: Reply, body: dict[str, Any],
                     out: Responder) -> bool:
        pieces = reply.pieces()
        if reply.delay and not await out.sleep(reply.delay * len(pieces)):
            return False
        if reply.stall is not None and not await out.sleep(reply.stall):
            return False
        if reply.error is not None:
            return await out.send_json(500, {"error": reply.error})
        if reply.malformed is not None:
            return await out.send(200, reply.malformed)
        if reply.drop_after is not None:
            out.abort()
            return False
        return await out.send(200, _dumps(self._final_line(kind, model, reply, body,
                                                           "".join(pieces)))[:-1])

    async def _stream(self, kind: str, model: str, reply: Reply, body: dict[str, Any],
                      out: Responder, path: str) -> bool:
        record = StreamRecord(path)
        self.streams.append(record)
        try:
            await self._stream_lines(kind, model, reply, body, out, record)
        finally:
            record.client_closed = out.client_gone and not record.finished
            record.ended_at = time.monotonic()
        return record.finished

    async def _stream_lines(self, kind: str, model: str, reply: Reply, body: dict[str, Any],
                            out: Responder, record: StreamRecord) -> None:
        if not await out.start_stream():
            return

        async def send(line: bytes | str) -> bool:
            data = line.encode() if isinstance(line, str) else line
            if not data.endswith(b"\n"):
                data += b"\n"
            ok = await out.write(data)
            record.lines_sent += ok
            return ok

        if reply.lines is not None:
            for raw in reply.lines:
                if not await out.sleep(reply.delay) or not await send(raw):
                    return
            await out.end_stream()
            record.finished = True
            return
        pieces = reply.pieces()
        stop_at = next((n for n in (reply.after, reply.drop_after) if n is not None), None)
        for i, piece in enumerate(pieces):
            if stop_at is not None and i >= stop_at:
                break
            if reply.delay and not await out.sleep(reply.delay):
                return
            if not await send(_dumps(self._token_line(kind, model, piece))):
                return
        if reply.drop_after is not None:
            out.abort()
            return
        if reply.stall is not None and not await out.sleep(reply.stall):
            return
        if reply.error is not None:
            await send(_dumps({"error": reply.error}))
            await out.end_stream()
            record.finished = True
            return
        if reply.malformed is not None:
            await send(reply.malformed)
            await out.end_stream()
            record.finished = True
            return
        if (reply.tool_calls and kind == "chat"
                and not await send(_dumps(self._tool_line(model, reply.tool_calls)))):
            return
        if not await send(_dumps(self._final_line(kind, model, reply, body))):
            return
        await out.end_stream()
        record.finished = True


@contextlib.contextmanager
def ollama_server(*replies: Reply | str, **kwargs: Any) -> Iterator[OllamaTestServer]:
    """`with ollama_server("hi") as ollama:` — shorthand for the context manager."""
    with OllamaTestServer(script=replies, **kwargs) as server:
        yield server


if __name__ == "__main__":  # a standalone fake Ollama: python -m tests.support.ollama_server
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--tokens", type=int, default=0,
                        help="reply with this many tokens ('tok0 tok1 ...') instead of text")
    parser.add_argument("--text", default="Hello! How can I help you today?")
    parser.add_argument("--paced-delay", type=float, default=0.001,
                        help="seconds between tokens for requests naming model 'paced'")
    args = parser.parse_args()
    tokens = [f"tok{i} " for i in range(args.tokens)]
    default = Reply(tokens=tokens) if args.tokens else Reply(text=args.text)
    # model "paced": one token every --paced-delay seconds, as a fast real model would
    paced = Reply(tokens=tokens or args.text.split(" "), delay=args.paced_delay)
    server = OllamaTestServer(
        default=default, port=args.port,
        models=["llama3.2:latest", "deepseek-r1:latest", "paced:latest"],
        respond=lambda body: paced if body.get("model", "").startswith("paced") else None,
    ).start()
    print(f"fake Ollama on {server.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()
