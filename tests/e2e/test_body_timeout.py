"""A request body that stalls is answered 408 `request_timeout` and its connection closed.

Raw sockets against a real uvicorn: headers announce more body than is sent, then the
client waits. Before `[kernel] body_read_timeout_seconds` existed the server waited for
ever; now it answers within the timeout and closes the connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from armillary import hookimpl
from armillary.testing import ArmillaryServer, free_port, make_app, serve_app

TIMEOUT = 0.5

router = APIRouter()
seen: list[str] = []


@router.post("/echo")
async def echo(request: Request) -> dict[str, Any]:
    body = await request.body()
    seen.append("read")
    return {"length": len(body)}


@router.get("/slow-stream")
async def slow_stream() -> StreamingResponse:
    async def pieces() -> AsyncIterator[bytes]:
        for i in range(4):
            await asyncio.sleep(TIMEOUT / 2)
            yield f"piece {i}\n".encode()

    return StreamingResponse(pieces(), media_type="text/plain")


class EchoPlugin:
    @hookimpl
    def register_routers(self, register: Any) -> None:
        register(router)


def app(timeout: float | None = TIMEOUT) -> Any:
    return make_app({"echo": EchoPlugin()},
                    config={"kernel": {"body_read_timeout_seconds": timeout}})


def request_head(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: test", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def read_until_closed(reader: asyncio.StreamReader, limit: float = 5.0) -> bytes:
    """Everything the server sends until it closes the connection; fails after `limit`."""
    return await asyncio.wait_for(reader.read(), limit)


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in
               (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, body


async def open_to(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def test_a_body_shorter_than_its_content_length_gets_408_and_a_closed_connection(
        caplog: pytest.LogCaptureFixture) -> None:
    seen.clear()
    async with serve_app(app()) as url:
        reader, writer = await open_to(url)
        start = time.monotonic()
        writer.write(request_head("/echo", {"Content-Type": "application/octet-stream",
                                            "Content-Length": "100"}) + b"0123456789")
        await writer.drain()
        raw = await read_until_closed(reader)  # EOF: the server closed the connection
        waited = time.monotonic() - start
        writer.close()
    status, headers, body = parse(raw)
    assert status == 408
    assert headers["connection"] == "close"
    assert json.loads(body) == {"code": "request_timeout", "detail":
                                "the request body stalled: nothing arrived for 0.5s"}
    assert TIMEOUT * 0.9 <= waited < TIMEOUT + 3
    assert seen == []  # the route never got a body: it was told the client is gone
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_headers_alone_and_a_stalled_chunked_body_time_out_too() -> None:
    async with serve_app(app()) as url:
        reader, writer = await open_to(url)
        writer.write(request_head("/echo", {"Content-Length": "5"}))
        await writer.drain()
        first = parse(await read_until_closed(reader))
        writer.close()

        reader, writer = await open_to(url)
        writer.write(request_head("/echo", {"Transfer-Encoding": "chunked"}) + b"4\r\nabcd\r\n")
        await writer.drain()
        second = parse(await read_until_closed(reader))
        writer.close()
    assert first[0] == second[0] == 408
    assert json.loads(second[2])["code"] == "request_timeout"


async def test_a_slow_body_that_keeps_coming_and_a_long_stream_are_not_cut() -> None:
    seen.clear()
    async with serve_app(app()) as url:
        reader, writer = await open_to(url)
        writer.write(request_head("/echo", {"Content-Length": "40"}))
        for _ in range(4):  # 4 pieces, each within the timeout, all of it longer than it
            await asyncio.sleep(TIMEOUT * 0.6)
            writer.write(b"x" * 10)
            await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        assert json.loads(await reader.readexactly(length)) == {"length": 40}

        # the same connection is still usable, and a response that streams for longer
        # than the timeout is not cut: only the request body is timed
        writer.write(b"GET /slow-stream HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        await writer.drain()
        raw = await read_until_closed(reader)
        writer.close()
    assert raw.startswith(b"HTTP/1.1 200")
    assert b"piece 3" in raw
    assert seen == ["read"]


async def test_none_turns_the_timeout_off() -> None:
    async with serve_app(app(timeout=None)) as url:
        reader, writer = await open_to(url)
        writer.write(request_head("/echo", {"Content-Length": "20"}) + b"0123456789")
        await writer.drain()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(1), TIMEOUT * 3)
        writer.write(b"0123456789")  # the rest arrives late, and is read
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        writer.close()
    assert head.startswith(b"HTTP/1.1 200")


def test_armillary_serve_reads_the_setting_from_plugins_toml(tmp_path: Path) -> None:
    config = tmp_path / "plugins.toml"
    config.write_text(f"""
[kernel]
enable = ["ollama", "tasks"]
store = "memory://"
body_read_timeout_seconds = {TIMEOUT}

[plugins.ollama]
base_url = "http://127.0.0.1:{free_port()}"
""")
    with ArmillaryServer(config, log_path=tmp_path / "serve.log") as server, \
            socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(request_head("/v1/tasks", {"Content-Type": "application/json",
                                                "Content-Length": "100"}) + b'{"task": ')
        raw = b""
        while chunk := sock.recv(65536):  # until the server closes the connection
            raw += chunk
    status, headers, body = parse(raw)
    assert (status, headers["connection"]) == (408, "close")
    assert json.loads(body)["code"] == "request_timeout"
    assert "Traceback" not in server.output()


async def test_a_client_that_hangs_up_mid_body_is_no_server_error(
        caplog: pytest.LogCaptureFixture) -> None:
    """The client sends half its body and closes: the route's `request.body()` is told the
    client went away; that is logged as information, never as an unhandled traceback."""
    seen.clear()
    async with serve_app(app(timeout=None)) as url:
        with caplog.at_level(logging.INFO):
            _reader, writer = await open_to(url)
            writer.write(request_head("/echo", {"Content-Type": "application/octet-stream",
                                                "Content-Length": "100"}) + b"0123456789")
            await writer.drain()
            await asyncio.sleep(0.1)
            writer.close()
            await writer.wait_closed()
            for _ in range(100):
                if "client went away" in caplog.text:
                    break
                await asyncio.sleep(0.02)
    assert "client went away before the body of POST /echo was read" in caplog.text
    assert "unhandled error" not in caplog.text
    assert "Traceback" not in caplog.text
    assert seen == []
