"""WebSocket /ws/agent-updates: `system_status` at once, `status_update` on every change
(coalesced) and on a timer; many clients, none able to slow the others."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any
from urllib.parse import urlparse

from websockets.asyncio.client import connect

from tests.plugins.agents.seed_server import eventually, seed_server
from tests.support.ollama_server import OllamaTestServer


async def next_message(ws: Any, timeout: float = 10.0) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    return message


async def test_a_client_gets_the_status_at_once_then_an_update_when_a_task_runs() -> None:
    # the timer is far off: what arrives is driven by the run's events
    settings = {"update_interval_seconds": 600, "min_update_interval_seconds": 0.05}
    with OllamaTestServer(default="done") as ollama:
        async with seed_server(ollama, agents=settings) as s, connect(s.ws_url()) as ws:
            first = await next_message(ws)
            result = (await s.execute(operation="do it")).json()
            seen: list[dict[str, Any]] = []
            while not seen or seen[-1]["data"]["agents"]["default"]["task_count"] < 1:
                seen.append(await next_message(ws))
    assert first["event_type"] == "system_status"
    assert set(first["data"]) == {"system_status", "timestamp", "agents", "api_metrics"}
    assert first["data"]["agents"]["default"]["task_count"] == 0
    assert {m["event_type"] for m in seen} == {"status_update"}
    # queued, running and completed in quick succession: coalesced into a few updates
    assert len(seen) <= 3
    last = seen[-1]["data"]["agents"]["default"]
    assert (last["success_count"], last["active_tasks"]) == (1, 0)
    assert result["status"] == "completed"


async def test_updates_come_on_the_timer_when_nothing_changes() -> None:
    settings = {"update_interval_seconds": 0.3, "min_update_interval_seconds": 0.25}
    with OllamaTestServer() as ollama:
        async with seed_server(ollama, agents=settings) as s, connect(s.ws_url()) as ws:
            await next_message(ws)
            start = time.monotonic()
            ticks = [await next_message(ws, 5) for _ in range(3)]
            took = time.monotonic() - start
            uptime = ticks[-1]["data"]["api_metrics"]["uptime_seconds"]
    assert [t["event_type"] for t in ticks] == ["status_update"] * 3
    # the first tick comes within one interval of connecting, then one per interval
    assert 0.55 < took < 0.9 + 1.0
    assert isinstance(uptime, int)


async def test_many_clients_each_get_every_update() -> None:
    settings = {"update_interval_seconds": 600, "min_update_interval_seconds": 0.05}
    with OllamaTestServer(default="ok") as ollama:
        async with seed_server(ollama, agents=settings) as s:
            clients = [await connect(s.ws_url()).__aenter__() for _ in range(20)]
            try:
                firsts = [await next_message(c) for c in clients]
                await s.execute(operation="x")
                lasts = []
                for c in clients:
                    while True:
                        m = await next_message(c)
                        if m["data"]["agents"]["default"]["task_count"] == 1:
                            break
                    lasts.append(m)
                count = s.state.updates.clients
                assert len(count) == 20
            finally:
                for c in clients:
                    await c.close()
            assert await eventually(lambda: not s.state.updates.clients)
    assert {f["event_type"] for f in firsts} == {"system_status"}
    assert len(lasts) == 20


def stalled_websocket(url: str) -> socket.socket:
    """A client that completes the handshake and then never reads (a tiny receive buffer,
    no compression offered), so the server's writes to it back up."""
    parsed = urlparse(url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((parsed.hostname, parsed.port))
    sock.sendall((f"GET {parsed.path} HTTP/1.1\r\nHost: {parsed.netloc}\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


async def test_a_client_that_stops_reading_does_not_slow_the_others() -> None:
    # big snapshots (many agents, incompressible descriptions) sent every 50 ms fill the
    # stalled client's socket buffers within seconds
    import secrets

    agents = {f"agent{i}": {"description": secrets.token_hex(400)} for i in range(100)}
    settings = {"update_interval_seconds": 0.05, "min_update_interval_seconds": 0,
                "client_queue_size": 2}
    with OllamaTestServer() as ollama:
        async with seed_server(ollama, agents=settings, config={"agents": agents}) as s:
            stalled = await asyncio.to_thread(stalled_websocket, s.ws_url())
            try:
                async with connect(s.ws_url(), max_size=None) as fast:
                    arrivals: list[float] = []

                    async def read() -> None:
                        while True:
                            message = await next_message(fast)
                            assert message["event_type"] in ("system_status", "status_update")
                            arrivals.append(time.monotonic())

                    reader = asyncio.create_task(read())

                    def stuck() -> Any:
                        return next((c for c in s.state.updates.clients if c.dropped > 5),
                                    None)

                    assert await eventually(lambda: stuck() is not None, 30), \
                        "the stalled client never backed up"
                    blocked = stuck()
                    sent_before, broadcasts_before = blocked.sent, s.state.updates.broadcasts
                    window_start = time.monotonic()
                    await asyncio.sleep(1.0)
                    received = [t for t in arrivals if t >= window_start]
                    broadcasts = s.state.updates.broadcasts - broadcasts_before
                    fast_client = next(c for c in s.state.updates.clients if c is not blocked)
                    reader.cancel()
            finally:
                stalled.close()
    assert blocked.sent == sent_before  # still stuck on the same write
    # the hub kept its pace (20 a second) and the reading client got them all
    assert broadcasts >= 10
    assert len(received) >= broadcasts - 2
    assert fast_client.dropped <= 2
