"""1,000 concurrent SSE subscribers on one process following runs of a fast scripted
provider: delivered events/s and RSS per idle stream, against sse-starlette pushing the
same events (recorded from the subject's own runs) without the kernel.

    uv run --with sse-starlette python bench/bench_sse_subscribers.py \
        [--subscribers 1000] [--runs 10] [--steps 100] [--rounds 3] [--store sqlite|memory]
        [--min-interval 0.2]

Each round starts the subject (tasks + sse plugins, the scripted provider held at a gate
so every run is `running` and silent), connects every subscriber, reads RSS (idle
streams), opens the gate and times until every subscriber has its run's end event. The
baseline server does the same with sse-starlette's `EventSourceResponse` fed from
per-subscriber queues. Subscribers are raw asyncio sockets in this process, so the client
costs the same for both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import REPO, free_port, median, ratio_line, rss_kib, start_server, stop_server

END = b"event: completed"
SELF = str(Path(__file__).resolve())


# --- servers (run as `--serve subject|baseline` in a subprocess) ---------------------------

def serve_subject(port: int, steps: int, store: str, min_interval: float) -> None:
    import armillary_sse
    import armillary_tasks
    import uvicorn
    from fastapi import APIRouter

    from armillary import hookimpl, tool
    from armillary._models import ToolCall
    from armillary.testing import ScriptedProvider, Turn, make_app

    gate = asyncio.Event()

    class GatedProvider(ScriptedProvider):
        """Holds every run at the gate; then `steps` tool calls, then the answer."""

        def _turn(self, request: Any) -> Turn:
            done = sum(1 for m in request.messages if m.role == "tool")
            if done >= steps:
                return Turn(text="done")
            return Turn(text="thinking", tool_calls=[ToolCall(name="probe",
                                                              arguments={"n": done})])

        async def stream(self, request: Any) -> Any:
            await gate.wait()
            async for chunk in super().stream(request):
                yield chunk

    @tool
    def probe(n: int) -> int:
        """Echo a number."""
        return n

    class Bench:
        def __init__(self) -> None:
            self.providers: dict[str, ScriptedProvider] = {}

        @hookimpl
        def register_providers(self, register: Any) -> None:
            register(GatedProvider(), default=True)

        @hookimpl
        def register_tools(self, register: Any) -> None:
            register(probe)

        @hookimpl
        def register_routers(self, register: Any) -> None:
            router = APIRouter()

            @router.post("/bench/go")
            async def go() -> dict[str, bool]:
                gate.set()
                return {"ok": True}

            register(router)

    app = make_app({"tasks": armillary_tasks, "sse": armillary_sse, "bench": Bench()},
                   config={"kernel": {"store": store, "max_concurrent_runs": 64,
                                      "keep_finished_runs": None},
                           "plugins": {"sse": {"min_interval_seconds": min_interval}}})
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")


def serve_baseline(port: int, events_file: str) -> None:
    import uvicorn
    from fastapi import FastAPI
    from sse_starlette.sse import EventSourceResponse

    recorded: list[dict[str, Any]] = json.loads(Path(events_file).read_text())
    gate = asyncio.Event()
    queues: dict[str, list[asyncio.Queue[dict[str, Any] | None]]] = {}
    producers: list[asyncio.Task[None]] = []
    app = FastAPI()

    @app.post("/bench/go")
    async def go() -> dict[str, bool]:
        gate.set()
        producers.extend(asyncio.create_task(produce(run, subscribers))
                         for run, subscribers in queues.items())
        return {"ok": True}

    async def produce(run: str, subscribers: list[asyncio.Queue[dict[str, Any] | None]]
                      ) -> None:
        for event in recorded:
            for q in subscribers:
                q.put_nowait(event)
            await asyncio.sleep(0)
        for q in subscribers:
            q.put_nowait(None)

    @app.get("/v1/stream/tasks/{run}")
    async def stream(run: str) -> EventSourceResponse:
        q: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        queues.setdefault(run, []).append(q)

        async def events() -> Any:
            while True:
                event = await q.get()
                if event is None:
                    return
                yield {"id": str(event["seq"]), "event": event["type"],
                       "data": json.dumps(event["payload"], separators=(",", ":"))}

        return EventSourceResponse(events(), ping=3600)

    @app.post("/v1/tasks")
    async def create() -> dict[str, str]:
        return {"task_id": f"run{len(queues)}-{time.monotonic_ns()}"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")


# --- the driver ------------------------------------------------------------------------

async def subscribe(port: int, path: str, connected: asyncio.Event | None = None,
                    ) -> tuple[int, float]:
    """Open an SSE stream; count `id:` lines until the end event. Returns (events, t_end)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n"
                 .encode())
    await writer.drain()
    count, tail, body = 0, b"\n", False
    while True:
        chunk = await reader.read(1 << 16)
        if not chunk:
            break
        if not body:
            body = True
            if connected is not None:
                connected.set()
        data = tail + chunk
        count += data.count(b"\nid: ")
        if END in data:
            break
        tail = data[-4:]  # shorter than the pattern: a match is never counted twice
    writer.close()
    return count, time.perf_counter()


def start(cmd: list[str], port: int) -> subprocess.Popen[bytes]:
    return start_server(cmd, f"http://127.0.0.1:{port}/openapi.json", cwd=REPO,
                        env={"PYTHONPATH": str(REPO)})


async def one_round(kind: str, args: argparse.Namespace, events_file: Path
                    ) -> dict[str, float]:
    import httpx

    port = free_port()
    me = [sys.executable, SELF, "--serve", kind, "--port", str(port),
          "--steps", str(args.steps), "--store", args.store, "--events-file", str(events_file),
          "--min-interval", str(args.min_interval)]
    proc = start(me, port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            runs = []
            for _ in range(args.runs):
                r = await client.post("/v1/tasks", json={"task": "bench", "max_steps": 1000})
                runs.append(r.json()["task_id"])
            before = rss_kib(proc.pid)
            per_run = args.subscribers // args.runs
            flags = [asyncio.Event() for _ in range(per_run * args.runs)]
            tasks = [asyncio.create_task(subscribe(port, f"/v1/stream/tasks/{run}",
                                                   flags[i * per_run + j]))
                     for i, run in enumerate(runs) for j in range(per_run)]
            await asyncio.gather(*(f.wait() for f in flags))
            await asyncio.sleep(1.0)
            idle = rss_kib(proc.pid)
            t0 = time.perf_counter()
            await client.post("/bench/go")
            results = await asyncio.gather(*tasks)
    finally:
        stop_server(proc)
    delivered = sum(n for n, _ in results)
    elapsed = max(t for _, t in results) - t0
    return {"events_per_s": delivered / elapsed, "delivered": delivered, "elapsed": elapsed,
            "kib_per_idle_stream": (idle - before) / len(results)}


async def record_events(args: argparse.Namespace, events_file: Path) -> None:
    """Run the subject once with one run and one subscriber; save that run's events."""
    import httpx

    port = free_port()
    proc = start([sys.executable, SELF, "--serve", "subject",
                  "--port", str(port), "--steps", str(args.steps), "--store", "memory://",
                  "--events-file", str(events_file)], port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            task_id = (await client.post("/v1/tasks", json={"task": "bench",
                                                            "max_steps": 1000})).json()["task_id"]
            await client.post("/bench/go")
            events: list[dict[str, Any]] = []
            async with client.stream("GET", f"/v1/stream/tasks/{task_id}") as response:
                fields: dict[str, str] = {}
                async for line in response.aiter_lines():
                    if line and not line.startswith(":"):
                        key, _, value = line.partition(": ")
                        fields[key] = value
                    elif not line and "event" in fields:
                        events.append({"seq": int(fields["id"]), "type": fields["event"],
                                       "payload": json.loads(fields["data"])})
                        fields = {}
    finally:
        stop_server(proc)
    await asyncio.to_thread(events_file.write_text, json.dumps(events))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", choices=["subject", "baseline"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--store", default="sqlite")
    parser.add_argument("--events-file", default="")
    parser.add_argument("--min-interval", type=float, default=0.2,
                        help="the subject's [plugins.sse] min_interval_seconds (0: no batching)")
    args = parser.parse_args()
    if args.serve == "subject":
        store = args.store if "://" in args.store else (
            f"sqlite:///{tempfile.mkdtemp()}/bench.db" if args.store == "sqlite" else "memory://")
        serve_subject(args.port, args.steps, store, args.min_interval)
        return
    if args.serve == "baseline":
        serve_baseline(args.port, args.events_file)
        return

    events_file = Path(tempfile.mkdtemp()) / "events.json"
    asyncio.run(record_events(args, events_file))
    n_events = len(json.loads(events_file.read_text()))
    print(f"{args.subscribers} subscribers over {args.runs} runs, {n_events} events per run "
          f"({args.steps} tool steps each), store {args.store}, "
          f"subject min_interval {args.min_interval}s, "
          f"{args.rounds} rounds")
    subject: list[dict[str, float]] = []
    baseline: list[dict[str, float]] = []
    for _ in range(args.rounds):
        baseline.append(asyncio.run(one_round("baseline", args, events_file)))
        subject.append(asyncio.run(one_round("subject", args, events_file)))
    for name, rows in (("armillary", subject), ("sse-starlette", baseline)):
        print(f"  {name:<14} " + "  ".join(
            f"{r['events_per_s']:9.0f} ev/s ({r['delivered']:.0f} in {r['elapsed']:.2f}s, "
            f"{r['kib_per_idle_stream']:.1f} KiB/idle stream)" for r in rows))
    print(ratio_line("delivered events/s", median([r["events_per_s"] for r in subject]),
                     median([r["events_per_s"] for r in baseline]), "ev/s", "≥ 0.8x"))
    print(ratio_line("RSS per idle stream", median([r["kib_per_idle_stream"] for r in subject]),
                     median([r["kib_per_idle_stream"] for r in baseline]), "KiB",
                     "subject ≤ 64 KiB"))


if __name__ == "__main__":
    main()
