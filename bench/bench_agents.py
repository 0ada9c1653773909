"""What the agents plugin's request-metrics middleware (`X-Response-Time` and the
`api_metrics` of GET /system/status) adds per request: the same app with and without it,
in one run, alternating batches.

    uv run python bench/bench_agents.py [--batches 60] [--batch 300]

Both subjects are the kernel (memory store) with one plugin route,
`GET /bench/items/{item_id}`, and the agents plugin started (its firehose follower, its
update hub, its routes); "on" is the plugin as shipped, "off" the same plugin without its
`register_middleware` hook, so the only difference is the middleware. Both apps' ASGI
callables are called directly in one event loop, no sockets, timed with this thread's CPU
clock (time this machine spends on other processes is not counted): the min and the
median of the batches, as bench_metrics.py does. Each batch also checks its answers: 200,
and on "on" an `X-Response-Time` header and the request counted in `api_metrics`.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from harness import median, ratio_line

SUBJECTS = ("off", "on")


class AgentsWithoutMiddleware:
    """The agents plugin's hooks, minus `register_middleware`."""

    def __init__(self) -> None:
        import armillary_agents

        from armillary import hookimpl

        self.settings_model = hookimpl(armillary_agents.settings_model)
        self.register_routers = hookimpl(armillary_agents.register_routers)
        self.register_strategies = hookimpl(armillary_agents.register_strategies)
        self.startup = hookimpl(armillary_agents.startup)
        self.shutdown = hookimpl(armillary_agents.shutdown)


def build_app(kind: str) -> Any:
    import armillary_agents
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

    agents: Any = armillary_agents if kind == "on" else AgentsWithoutMiddleware()
    return make_app({"bench": Bench(), "agents": agents},
                    config={"kernel": {"store": "memory://"}})


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


async def asgi_batch(app: Any, n: int, offset: int, *, timed: bool) -> float:
    """CPU seconds (this thread's) per request over `n` GETs of the item route, called
    as ASGI."""
    statuses: list[int] = []
    headed = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal headed
        if message["type"] == "http.response.start":
            statuses.append(message["status"])
            headed += any(k == b"x-response-time" for k, _ in message["headers"])

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
    assert headed == (n if timed else 0), (headed, n)
    return elapsed


async def in_process(batches: int, batch: int) -> dict[str, list[float]]:
    apps = {kind: build_app(kind) for kind in SUBJECTS}
    queues = {kind: await lifespan(app, "startup") for kind, app in apps.items()}
    times: dict[str, list[float]] = {kind: [] for kind in SUBJECTS}
    try:
        for kind, app in apps.items():  # warm up
            await asgi_batch(app, 500, 0, timed=kind == "on")
        for b in range(batches):
            for kind, app in apps.items():
                times[kind].append(await asgi_batch(app, batch, b * batch,
                                                    timed=kind == "on"))
        counted = apps["on"].state.kernel.state["agents"].metrics.total_requests
        assert counted == 500 + batches * batch, counted  # every request was counted
    finally:
        for kind, app in apps.items():
            await lifespan(app, "shutdown", queues[kind])
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--batch", type=int, default=300)
    args = parser.parse_args()
    import logging

    logging.disable(logging.WARNING)  # the apps' startup lines
    times = asyncio.run(in_process(args.batches, args.batch))
    print(f"in process: {args.batches} alternating batches of {args.batch} requests "
          f"called as ASGI; agents plugin with vs without its request-metrics middleware")
    for stat in ("min", "median"):
        pick = min if stat == "min" else median
        on_us, off_us = pick(times["on"]) * 1e6, pick(times["off"]) * 1e6
        print(ratio_line(f"CPU per request ({stat} of batches)", on_us, off_us, "µs",
                         "recorded") + f"  added {on_us - off_us:+.1f} µs")


if __name__ == "__main__":
    main()
