"""10,000 queued runs: submit rate (POST /v1/tasks) and memory per queued run, against a
bare FastAPI endpoint that validates the same body and keeps the task in a dict.

    uv run python bench/bench_submit.py [--tasks 10000] [--concurrency 64] [--rounds 3]
                                        [--store sqlite|memory]

The subject is the tasks plugin on the kernel (SQLite store by default) with one worker
whose provider never answers, so every run after the first stays queued, as they would
behind a busy model. RSS is read before and after the submissions.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import REPO, free_port, median, ratio_line, rss_kib, start_server, stop_server
from pydantic import BaseModel, Field


def serve_subject(port: int, store: str) -> None:
    import armillary_tasks
    import uvicorn

    from armillary import hookimpl
    from armillary.testing import ScriptedProvider, make_app

    class NeverAnswers(ScriptedProvider):
        async def stream(self, request: Any) -> Any:
            await asyncio.Event().wait()
            yield  # pragma: no cover

    class Bench:
        @hookimpl
        def register_providers(self, register: Any) -> None:
            register(NeverAnswers(), default=True)

    app = make_app({"tasks": armillary_tasks, "bench": Bench()},
                   config={"kernel": {"store": store, "max_concurrent_runs": 1}})
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")


class Body(BaseModel):
    """The baseline's copy of TaskCreateRequest."""

    task: str = Field(min_length=1)
    max_steps: int | None = Field(default=None, ge=1, le=1000)
    stream: bool = False
    agent: str | None = None


def serve_baseline(port: int) -> None:
    import uuid

    import uvicorn
    from fastapi import FastAPI

    tasks: dict[str, dict[str, Any]] = {}
    app = FastAPI()

    @app.post("/v1/tasks", status_code=202)
    async def create(body: Body) -> dict[str, Any]:
        task_id = uuid.uuid4().hex
        tasks[task_id] = {"goal": body.task, "status": "queued", "created": time.time()}
        return {"task_id": task_id, "status": "queued"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")


def start(cmd: list[str], port: int) -> subprocess.Popen[bytes]:
    return start_server(cmd, f"http://127.0.0.1:{port}/openapi.json", cwd=REPO,
                        env={"PYTHONPATH": str(REPO)})


async def submit_all(port: int, n: int, concurrency: int) -> float:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits,
                                 timeout=60) as client:
        await client.post("/v1/tasks", json={"task": "warm up"})
        counter = iter(range(n))
        t0 = time.perf_counter()

        async def worker() -> None:
            for i in counter:
                r = await client.post("/v1/tasks", json={"task": f"goal {i}", "max_steps": 10})
                assert r.status_code == 202, r.text

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return n / (time.perf_counter() - t0)


def one_round(kind: str, args: argparse.Namespace) -> dict[str, float]:
    port = free_port()
    proc = start([sys.executable, str(Path(__file__).resolve()), "--serve", kind,
                  "--port", str(port), "--store", args.store], port)
    try:
        time.sleep(0.3)
        before = rss_kib(proc.pid)
        rate = asyncio.run(submit_all(port, args.tasks, args.concurrency))
        time.sleep(0.5)
        after = rss_kib(proc.pid)
    finally:
        stop_server(proc, 30)
    return {"rate": rate, "kib_per_run": (after - before) / args.tasks,
            "rss_mib": after / 1024}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", choices=["subject", "baseline"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--store", default="sqlite")
    args = parser.parse_args()
    if args.serve == "subject":
        store = f"sqlite:///{tempfile.mkdtemp()}/bench.db" if args.store == "sqlite" \
            else "memory://"
        serve_subject(args.port, store)
        return
    if args.serve == "baseline":
        serve_baseline(args.port)
        return

    print(f"{args.tasks} submissions, {args.concurrency} at a time, store {args.store}, "
          f"{args.rounds} rounds")
    subject, baseline = [], []
    for _ in range(args.rounds):
        baseline.append(one_round("baseline", args))
        subject.append(one_round("subject", args))
    for name, rows in (("armillary", subject), ("bare FastAPI", baseline)):
        print(f"  {name:<13} " + "  ".join(
            f"{r['rate']:7.0f}/s ({r['kib_per_run']:.2f} KiB/run, RSS {r['rss_mib']:.0f} MiB)"
            for r in rows))
    print(ratio_line("submit rate", median([r["rate"] for r in subject]),
                     median([r["rate"] for r in baseline]), "/s", "recorded"))
    print(ratio_line("memory per queued run", median([r["kib_per_run"] for r in subject]),
                     median([r["kib_per_run"] for r in baseline]), "KiB", "recorded"))


if __name__ == "__main__":
    main()
