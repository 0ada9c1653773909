"""What the metrics plugin adds per request: the same app with and without it, in the
same run, alternating rounds.

    uv run python bench/bench_metrics.py [--batches 40] [--batch 500]
                                         [--requests 4000] [--concurrency 32] [--rounds 5]

First in process — both apps' ASGI callables called directly in one event loop,
alternating batches, no sockets, timed with this thread's CPU clock — which isolates the
CPU the plugin adds per request from the machine's noise (the min and the median of the
batches); then over real sockets:

Both subjects are the kernel (memory store) with one plugin route,
`GET /bench/items/{item_id}` (a path parameter, as most routes have), served by uvicorn
with access logs off; "on" adds the metrics plugin (request id, HTTP counter and
histogram by route template, in-progress gauge). Per round and subject:

- latency: `--requests` sequential requests on one keep-alive connection (median and
  mean round trip);
- server CPU per request: the server process's user+system time (/proc) over those
  requests, divided by their number — the cost the plugin adds whatever the client;
- throughput: `--requests` more with `--concurrency` at a time (req/s).

Every `--scrape-every` requests the "on" subject is scraped too (`GET /metrics`), as
Prometheus would, so the cost of the exposition is in its figures.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time
from pathlib import Path
from typing import Any

from harness import (
    REPO,
    cpu_seconds,
    free_port,
    median,
    ratio_line,
    start_server,
    stop_server,
)

SUBJECTS = ("off", "on")


def build_app(kind: str) -> Any:
    from fastapi import APIRouter

    from armillary import hookimpl
    from armillary.testing import make_app

    router = APIRouter()

    @router.get("/bench/items/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        return {"id": item_id}

    class Bench:
        @hookimpl
        def register_routers(self, register: Any) -> None:
            register(router)

    plugins: dict[str, Any] = {"bench": Bench()}
    if kind == "on":
        import armillary_metrics

        plugins["metrics"] = armillary_metrics
    return make_app(plugins, config={"kernel": {"store": "memory://"}})


def serve(kind: str, port: int) -> None:
    import uvicorn

    uvicorn.run(build_app(kind), host="127.0.0.1", port=port, log_level="warning",
                access_log=False, lifespan="on")


# --- in process: the ASGI app called directly, no sockets, no other process ----------

async def lifespan(app: Any, event: str, queues: tuple[Any, Any] | None = None) -> Any:
    """Send `lifespan.<event>` to the app and wait for its answer."""
    if queues is None:
        queues = (asyncio.Queue(), asyncio.Queue())
        asyncio.get_running_loop().create_task(
            app({"type": "lifespan", "asgi": {"version": "3.0"}}, queues[0].get,
                queues[1].put))
    await queues[0].put({"type": f"lifespan.{event}"})
    answer = await queues[1].get()
    assert answer["type"] == f"lifespan.{event}.complete", answer
    return queues


async def asgi_batch(app: Any, n: int, offset: int) -> float:
    """CPU seconds (this thread's: time spent waiting for a core on a busy machine is not
    counted) per request over `n` GETs of the item route, called as ASGI."""
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    t0 = time.thread_time()
    for i in range(offset, offset + n):
        path = f"/bench/items/{i}"
        await app({"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                   "method": "GET", "scheme": "http", "path": path,
                   "raw_path": path.encode(), "query_string": b"", "root_path": "",
                   "headers": [(b"host", b"bench")], "client": ("127.0.0.1", 5000),
                   "server": ("127.0.0.1", 80)}, receive, send)
    elapsed = (time.thread_time() - t0) / n
    assert statuses == [200] * n
    return elapsed


async def in_process(batches: int, batch: int) -> dict[str, list[float]]:
    """Alternating batches on the two apps, in one process and one event loop."""
    apps = {kind: build_app(kind) for kind in SUBJECTS}
    queues = {kind: await lifespan(app, "startup") for kind, app in apps.items()}
    times: dict[str, list[float]] = {kind: [] for kind in SUBJECTS}
    try:
        for app in apps.values():  # warm up
            await asgi_batch(app, 500, 0)
        for b in range(batches):
            for kind, app in apps.items():
                times[kind].append(await asgi_batch(app, batch, b * batch))
    finally:
        for kind, app in apps.items():
            await lifespan(app, "shutdown", queues[kind])
    return times


class Connection:
    """One keep-alive HTTP/1.1 connection with the least client work per request, so
    the round trip is mostly the server's."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")

    def get(self, path: str) -> int:
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        status = int(self.file.readline().split()[1])
        length = 0
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        self.file.read(length)
        return status

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def sequential(port: int, n: int, scrape_every: int, pid: int, scrape: bool
               ) -> tuple[list[float], float]:
    conn = Connection(port)
    try:
        for i in range(200):  # warm up
            conn.get(f"/bench/items/warm{i}")
        times = []
        cpu0 = cpu_seconds(pid)
        for i in range(n):
            t0 = time.perf_counter()
            assert conn.get(f"/bench/items/{i}") == 200
            times.append(time.perf_counter() - t0)
            if scrape and scrape_every and i % scrape_every == 0:
                assert conn.get("/metrics") == 200
        cpu = (cpu_seconds(pid) - cpu0) / n
    finally:
        conn.close()
    return times, cpu


async def concurrent(port: int, n: int, concurrency: int) -> float:
    """`n` requests over `concurrency` keep-alive connections (asyncio streams: httpx's
    pool costs more client CPU than the server spends)."""
    counter = iter(range(n))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in counter:
                writer.write(f"GET /bench/items/{i} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200"), head
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - t0)


def one_round(kind: str, args: argparse.Namespace) -> dict[str, float]:
    port = free_port()
    proc = start_server([sys.executable, str(Path(__file__).resolve()), "--serve", kind,
                         "--port", str(port)], f"http://127.0.0.1:{port}/health", cwd=REPO,
                        env={"PYTHONPATH": str(REPO)})
    try:
        times, cpu = sequential(port, args.requests, args.scrape_every, proc.pid,
                                scrape=kind == "on")
        rate = asyncio.run(concurrent(port, args.requests, args.concurrency))
    finally:
        stop_server(proc)
    return {"median_ms": median(times) * 1000, "mean_ms": sum(times) / len(times) * 1000,
            "cpu_ms": cpu * 1000, "rate": rate}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", choices=SUBJECTS)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scrape-every", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    import logging

    logging.disable(logging.WARNING)  # the apps' startup lines
    times = asyncio.run(in_process(args.batches, args.batch))
    print(f"in process: {args.batches} alternating batches of {args.batch} requests "
          f"called as ASGI")
    for stat in ("min", "median"):
        pick = min if stat == "min" else median
        on_us, off_us = pick(times["on"]) * 1e6, pick(times["off"]) * 1e6
        print(ratio_line(f"CPU per request ({stat} of batches)", on_us, off_us, "µs",
                         "recorded") + f"  added {on_us - off_us:+.1f} µs")
    if not args.rounds:
        return
    print(f"{args.requests} sequential + {args.requests} at {args.concurrency} at a time, "
          f"{args.rounds} alternating rounds")
    rows: dict[str, list[dict[str, float]]] = {k: [] for k in SUBJECTS}
    for _ in range(args.rounds):
        for kind in SUBJECTS:
            rows[kind].append(one_round(kind, args))
    for kind in SUBJECTS:
        print(f"  metrics {kind:<3} " + "  ".join(
            f"{r['median_ms']:.3f}/{r['cpu_ms']:.3f} ms {r['rate']:6.0f}/s"
            for r in rows[kind]))
    on, off = rows["on"], rows["off"]

    def med(rs: list[dict[str, float]], key: str) -> float:
        return median([r[key] for r in rs])

    print(ratio_line("latency per request (median)", med(on, "median_ms"),
                     med(off, "median_ms"), "ms", "recorded"))
    print(ratio_line("server CPU per request", med(on, "cpu_ms"), med(off, "cpu_ms"), "ms",
                     "recorded"))
    print(ratio_line("throughput", med(on, "rate"), med(off, "rate"), "/s", "recorded"))
    print(f"added: {1000 * (med(on, 'median_ms') - med(off, 'median_ms')):+.1f} µs latency, "
          f"{1000 * (med(on, 'cpu_ms') - med(off, 'cpu_ms')):+.1f} µs CPU per request")


if __name__ == "__main__":
    main()
