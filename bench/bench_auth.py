"""What auth + rate limits (+ metrics, when it loads) cost per request: throughput and
server CPU per request on one cheap route, against bare FastAPI and against the kernel
without them, measured in the same run.

    uv run python bench/bench_auth.py [--requests 5000] [--concurrency 32] [--rounds 3]

Subjects, each its own uvicorn process (alternated each round):
  bare     FastAPI with one `GET /bench/ping`
  kernel   Armillary with a plugin serving the same route (no auth, no limits)
  secured  the same plus `auth` (X-API-Key) and `ratelimit` (memory storage, a limit
           high enough never to refuse) and `metrics` when that plugin loads
CPU per request is the server process's user+system time over the run divided by the
requests (from /proc): the number that does not depend on the load generator. Requests/s
is bounded by the Python client too, so its ratios understate differences.
"""

from __future__ import annotations

import argparse
import asyncio
import os
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

KEY = "bench-key-0123456789abcdef"


def metrics_plugin() -> object | None:
    try:
        import armillary_metrics

        from armillary.testing import make_kernel

        make_kernel({"metrics": armillary_metrics})
        return armillary_metrics
    except Exception:  # not ready: measured without it (said so in the output)
        return None


def build_app(kind: str, *, ratelimit: bool = True, metrics: bool = True) -> Any:
    from fastapi import APIRouter, FastAPI

    router = APIRouter()

    @router.get("/bench/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    if kind == "bare":
        app = FastAPI()
        app.include_router(router)
    else:
        from armillary import hookimpl
        from armillary.testing import make_app

        class Bench:
            @hookimpl
            def register_routers(self, register: Any) -> None:
                register(router)

        plugins: dict[str, object] = {"bench": Bench()}
        config: dict[str, Any] = {"kernel": {"strict_events": False}, "plugins": {}}
        if kind == "secured":
            import armillary_auth
            import armillary_ratelimit

            plugins["auth"] = armillary_auth
            config["plugins"]["auth"] = {"keys": [{"name": "bench", "key": KEY}]}
            if ratelimit:
                plugins["ratelimit"] = armillary_ratelimit
                config["plugins"]["ratelimit"] = {
                    "strategy": os.environ.get("BENCH_RATELIMIT_STRATEGY", "moving-window"),
                    "classes": {"all": {"limit": "100000000/minute"}}}
            found = metrics_plugin() if metrics else None
            if found is not None:
                plugins["metrics"] = found
        app = make_app(plugins, config=config)
    return app


def serve(kind: str, port: int) -> None:
    import uvicorn

    uvicorn.run(build_app(kind), host="127.0.0.1", port=port, log_level="warning",
                lifespan="on", access_log=False)


async def in_process_us(app: Any, n: int) -> float:
    """CPU microseconds per request calling the ASGI app directly (no sockets, no
    client): what each layer costs, steady even on a busy machine."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/bench/ping",
             "raw_path": b"/bench/ping", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"bench"), (b"x-api-key", KEY.encode())],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80)}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[Any] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    life = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}},
                                   inbox.get, outbox.put))
    await outbox.get()
    for _ in range(500):
        await app(dict(scope), receive, send)
    t0 = time.process_time()
    for _ in range(n):
        await app(dict(scope), receive, send)
    per = (time.process_time() - t0) / n * 1e6
    await inbox.put({"type": "lifespan.shutdown"})
    await outbox.get()
    await life
    return per


def layers(rounds: int, n: int) -> None:
    subjects = [("bare FastAPI", "bare", {}), ("kernel", "kernel", {}),
                ("+ auth", "secured", {"ratelimit": False, "metrics": False}),
                ("+ auth + ratelimit", "secured", {"metrics": False})]
    if metrics_plugin() is not None:
        subjects.append(("+ auth + ratelimit + metrics", "secured", {}))
    print(f"in process, {n} requests x {rounds} rounds (median), CPU per request:")
    results: dict[str, float] = {}
    for label, kind, options in subjects:
        results[label] = median([asyncio.run(in_process_us(build_app(kind, **options), n))
                                 for _ in range(rounds)])
        print(f"  {label:<30} {results[label]:7.1f} us")
    secured = list(results)[-1]
    added = results[secured] - results["kernel"]
    print(f"{'added CPU/request (' + secured.strip('+ ') + ')':<50} {added / 1000:+.4f} ms "
          f"vs kernel, {(results[secured] - results['bare FastAPI']) / 1000:+.4f} ms vs bare "
          f"(target <= 0.1 ms)")


async def load(port: int, n: int, concurrency: int) -> float:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits,
                                 headers={"X-API-Key": KEY}, timeout=30) as client:
        for _ in range(200):  # warm up
            assert (await client.get("/bench/ping")).status_code == 200
        counter = iter(range(n))
        t0 = time.perf_counter()

        async def worker() -> None:
            for _ in counter:
                r = await client.get("/bench/ping")
                assert r.status_code == 200, r.text

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return n / (time.perf_counter() - t0)


def one_round(kind: str, args: argparse.Namespace) -> dict[str, float]:
    port = free_port()
    proc = start_server([sys.executable, str(Path(__file__).resolve()), "--serve", kind,
                         "--port", str(port)], f"http://127.0.0.1:{port}/openapi.json",
                        cwd=REPO, env={"PYTHONPATH": str(REPO)})
    try:
        time.sleep(0.2)
        rate = asyncio.run(load(port, 50, 4))  # warm the server's code paths
        before = cpu_seconds(proc.pid)
        rate = asyncio.run(load(port, args.requests, args.concurrency))
        cpu = cpu_seconds(proc.pid) - before
    finally:
        stop_server(proc)
    return {"rate": rate, "cpu_ms": cpu * 1000 / (args.requests + 200)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", choices=["bare", "kernel", "secured"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--in-process-only", action="store_true")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    layers(args.rounds, args.requests)
    if args.in_process_only:
        return
    with_metrics = metrics_plugin() is not None
    print(f"{args.requests} GET /bench/ping, {args.concurrency} at a time, {args.rounds} "
          f"rounds; secured = auth + ratelimit{' + metrics' if with_metrics else ''}"
          f"{'' if with_metrics else ' (metrics plugin did not load)'}")
    rows: dict[str, list[dict[str, float]]] = {"bare": [], "kernel": [], "secured": []}
    for _ in range(args.rounds):
        for kind in rows:
            rows[kind].append(one_round(kind, args))
    rate = {k: median([r["rate"] for r in v]) for k, v in rows.items()}
    cpu = {k: median([r["cpu_ms"] for r in v]) for k, v in rows.items()}
    for kind in rows:
        print(f"  {kind:<8} {rate[kind]:8.0f} req/s   {cpu[kind]:.3f} ms CPU/request")
    print(ratio_line("secured vs bare FastAPI req/s", rate["secured"], rate["bare"],
                     "r/s", ">= 0.75x"))
    print(ratio_line("kernel vs bare FastAPI req/s", rate["kernel"], rate["bare"],
                     "r/s", "-"))
    print(f"{'added CPU/request, secured vs kernel':<38} "
          f"{cpu['secured'] - cpu['kernel']:+.3f} ms  (target <= 0.1 ms)")
    print(f"{'added CPU/request, secured vs bare':<38} "
          f"{cpu['secured'] - cpu['bare']:+.3f} ms")


if __name__ == "__main__":
    main()
