"""A small HTTP/1.1 server on a loopback port, for testing a provider against a fake of
its model server over real sockets.

`LoopbackHTTPServer(handler)` runs in a thread of its own with its own event loop, so it
serves sync and async tests alike (and to another process it is just a server). The
handler gets each request parsed (`RecordedRequest`: method, path, query, headers, body,
`.json`) and answers through a `Responder`: a whole reply (`send`, `send_json`), or a
chunked stream (`start_stream`, `write` — one HTTP chunk, flushed at once — and
`end_stream`); `abort()` drops the connection mid-reply. Every write returns False once
the client has gone (`client_gone`), and `sleep()` wakes early when it goes, so a handler
sees a hang-up at once. The server records what a test checks: `requests`,
`connections_opened` / `connections_closed` / `open_connections` (real TCP sockets),
`streams` (a `StreamRecord` per streamed reply the handler appends: lines sent, finished,
client closed) and `open_streams`; `wait_until` / `await_until` poll a condition.

    async def handler(request: RecordedRequest, out: Responder) -> None:
        if request.path != "/v1/complete":
            await out.send_json(404, {"error": "not found"})
            return
        record = StreamRecord(request.path)
        server.streams.append(record)
        await out.start_stream(200, "application/x-ndjson")
        for word in ("Hello", " there"):
            if not await out.write(json.dumps({"text": word}).encode() + b"\n"):
                break  # the client hung up
            record.lines_sent += 1
        else:
            record.finished = await out.end_stream()
        record.client_closed = out.client_gone and not record.finished
        record.ended_at = time.monotonic()

    with LoopbackHTTPServer(handler) as server:
        provider = MyProvider(base_url=server.url)   # http://127.0.0.1:<free port>

A protocol server subclasses it and passes its own `_handle` (the project's Ollama and
OpenAI fakes in `tests/support/` do).
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import math
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Status"


@dataclass
class RecordedRequest:
    """One request as the server read it (`query` as `parse_qs` gives it, header names
    lower-case)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class StreamRecord:
    """One streamed response: how far it got and how it ended."""

    path: str
    lines_sent: int = 0
    finished: bool = False
    client_closed: bool = False
    started_at: float = field(default_factory=time.monotonic)
    ended_at: float | None = None


class Responder:
    """What a handler writes its response with. Methods return False once the client has
    gone away (the TCP connection closed), so a handler can stop."""

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn
        self.streaming = False
        self.keep_alive = True

    @property
    def client_gone(self) -> bool:
        return self._conn.closed.is_set()

    async def sleep(self, seconds: float) -> bool:
        """Sleep, waking early if the client goes away. False if it did."""
        if seconds <= 0:
            return not self.client_gone
        timeout = None if math.isinf(seconds) else seconds
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._conn.closed.wait(), timeout)
        return not self.client_gone

    def _head(self, status: int, content_type: str, extra: str) -> bytes:
        reason = _reason(status)
        date = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
        return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
                f"Date: {date}\r\n{extra}\r\n").encode()

    async def send(self, status: int, body: bytes,
                   content_type: str = "application/json; charset=utf-8") -> bool:
        """A whole response with Content-Length."""
        head = self._head(status, content_type, f"Content-Length: {len(body)}\r\n")
        return await self._conn.write(head + body)

    async def send_json(self, status: int, obj: Any) -> bool:
        return await self.send(status, json.dumps(obj, separators=(",", ":")).encode())

    async def start_stream(self, status: int = 200,
                           content_type: str = "application/x-ndjson") -> bool:
        """Status line and headers of a chunked response."""
        self.streaming = True
        return await self._conn.write(
            self._head(status, content_type, "Transfer-Encoding: chunked\r\n"))

    async def write(self, data: bytes) -> bool:
        """One HTTP chunk, flushed at once (Ollama flushes after every line)."""
        if not data:
            return not self.client_gone
        return await self._conn.write(b"%x\r\n%b\r\n" % (len(data), data))

    async def end_stream(self) -> bool:
        return await self._conn.write(b"0\r\n\r\n")

    def abort(self) -> None:
        """Close the TCP connection now, mid-response."""
        self.keep_alive = False
        self._conn.close()


Handler = Callable[[RecordedRequest, Responder], Awaitable[None]]


class _Connection(asyncio.Protocol):
    def __init__(self, server: LoopbackHTTPServer) -> None:
        self.server = server
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.Event()
        self.data = asyncio.Event()
        self.can_write = asyncio.Event()
        self.can_write.set()
        self.task: asyncio.Task[None] | None = None

    # protocol callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server._opened(self)
        self.task = asyncio.get_running_loop().create_task(self._serve())

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.data.set()

    def eof_received(self) -> bool | None:
        self.close()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.is_set():
            self.closed.set()
            self.can_write.set()
            self.server._closed(self)

    def pause_writing(self) -> None:
        self.can_write.clear()

    def resume_writing(self) -> None:
        self.can_write.set()

    # helpers
    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        # connection_lost follows from the loop; mark closed now so writers stop at once
        if not self.closed.is_set():
            self.closed.set()
            self.can_write.set()
            self.server._closed(self)

    async def write(self, data: bytes) -> bool:
        if self.closed.is_set() or self.transport is None or self.transport.is_closing():
            return False
        if not self.can_write.is_set():
            await self.can_write.wait()
            if self.closed.is_set():
                return False
        self.transport.write(data)
        return True

    async def _read_request(self) -> RecordedRequest | None:
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end >= 0:
                break
            if self.closed.is_set():
                return None
            self.data.clear()
            waiter = asyncio.ensure_future(self.data.wait())
            closer = asyncio.ensure_future(self.closed.wait())
            await asyncio.wait({waiter, closer}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            closer.cancel()
        head = bytes(self.buffer[:end]).decode("latin-1")
        del self.buffer[:end + 4]
        request_line, *header_lines = head.split("\r\n")
        method, target, _version = request_line.split(" ", 2)
        headers: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = b""
        if "content-length" in headers:
            length = int(headers["content-length"])
            while len(self.buffer) < length:
                if self.closed.is_set():
                    return None
                self.data.clear()
                await asyncio.wait_for(self.data.wait(), 30)
            body = bytes(self.buffer[:length])
            del self.buffer[:length]
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._read_chunked()
        parts = urlsplit(target)
        return RecordedRequest(method, parts.path, parse_qs(parts.query), headers, body)

    async def _read_chunked(self) -> bytes:
        out = bytearray()
        while True:
            while b"\r\n" not in self.buffer:
                self.data.clear()
                await asyncio.wait_for(self.data.wait(), 30)
            line, _, _ = bytes(self.buffer).partition(b"\r\n")
            size = int(line.split(b";")[0], 16)
            while len(self.buffer) < len(line) + 2 + size + 2:
                self.data.clear()
                await asyncio.wait_for(self.data.wait(), 30)
            start = len(line) + 2
            out += self.buffer[start:start + size]
            del self.buffer[:start + size + 2]
            if size == 0:
                return bytes(out)

    async def _serve(self) -> None:
        try:
            while not self.closed.is_set():
                request = await self._read_request()
                if request is None:
                    return
                self.server.requests.append(request)
                responder = Responder(self)
                if request.headers.get("connection", "").lower() == "close":
                    responder.keep_alive = False
                await self.server.handler(request, responder)
                if not responder.keep_alive:
                    self.close()
                    return
        except Exception:  # a broken request: drop the connection, as a server would
            self.close()
            raise


class LoopbackHTTPServer:
    """A small HTTP/1.1 server on 127.0.0.1 in its own thread and event loop.

    `handler(request, responder)` answers each request. Connection accounting
    (`connections_opened`, `connections_closed`) counts real TCP sockets."""

    def __init__(self, handler: Handler, *, port: int = 0) -> None:
        self.handler = handler
        self.port = port
        self.requests: list[RecordedRequest] = []
        self.streams: list[StreamRecord] = []
        self.connections_opened = 0
        self.connections_closed = 0
        self._conns: set[_Connection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def open_connections(self) -> int:
        return self.connections_opened - self.connections_closed

    @property
    def open_streams(self) -> int:
        return sum(1 for s in self.streams if s.ended_at is None)

    def _opened(self, conn: _Connection) -> None:
        self._conns.add(conn)
        self.connections_opened += 1

    def _closed(self, conn: _Connection) -> None:
        if conn in self._conns:
            self._conns.discard(conn)
            self.connections_closed += 1

    def start(self) -> Self:
        """Listen on 127.0.0.1 (`port`, or a free one when 0; `url` says which)."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, name=f"{type(self).__name__}",
                                        daemon=True)
        self._thread.start()
        ready.wait()

        async def listen() -> asyncio.Server:
            return await loop.create_server(lambda: _Connection(self), "127.0.0.1",
                                            self.port, backlog=512)

        self._server = asyncio.run_coroutine_threadsafe(listen(), loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for conn in list(self._conns):
                conn.close()
            tasks = [c.task for c in list(self._conns) if c.task is not None]
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        loop.close()
        self._loop = None

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the server's loop thread and return its result."""
        assert self._loop is not None

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(5)

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0,
                   interval: float = 0.005) -> bool:
        """Poll `predicate` until it is true (True) or `timeout` passes (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(interval)
        return predicate()

    async def await_until(self, predicate: Callable[[], bool], timeout: float = 5.0,
                          interval: float = 0.005) -> bool:
        """`wait_until` for async tests: sleeps without blocking the caller's loop."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            await asyncio.sleep(interval)
        return predicate()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


