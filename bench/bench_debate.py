"""A debate's overhead per argument: 3 agents x 5 rounds against a paced provider,
against the provider time alone.

    uv run python bench/bench_debate.py [--rounds 5] [--tokens 40] [--token-ms 2.5]
                                        [--repeats 5] [--store sqlite|memory]

Three processes besides nothing else, so no two share a GIL:

- the model: the Ollama test server (`tests/support/ollama_server.py`, real loopback
  sockets), every reply `--tokens` token lines paced `--token-ms` apart (40 x 2.5 ms =
  100 ms an argument: a fast real model); it writes each request body to a file;
- the subject: the debate plugin in the real app (ollama + tasks + debate, SQLite store)
  on uvicorn: `POST /debate/initialize`, `POST /debate/{id}/control {"action": "start"}`,
  then a structured debate of 3 x `--rounds` arguments and the synthesis (16 provider
  calls), every argument through the safety guard, stored as events and published;
  timed here from the start request until this process's `/ws/debate-updates` client
  gets `debate_complete`;
- this process, the driver and the baseline: the same 16 request bodies the model server
  saw from the subject (so prompts and transcripts are the same size) replayed one after
  another with the Ollama provider alone (`OllamaProvider.stream`: no kernel, no guard,
  no store).

Overhead per argument = (subject - baseline) / provider calls. One warm-up debate, then
`--repeats` rounds alternating subject and baseline; medians, and the fastest round of
each (the least disturbed by a busy machine).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from harness import free_port, start_server, stop_server  # noqa: E402

AGENTS = ("alice", "bob", "carol")
SELF = Path(__file__).resolve()


def serve_model(port: int, tokens: int, delay: float, log: Path) -> None:
    from tests.support.ollama_server import OllamaTestServer, Reply

    def respond(body: dict[str, Any]) -> Reply:
        with log.open("a", encoding="utf-8") as f:
            f.write(json.dumps(body) + "\n")
        agent = body["messages"][0]["content"].removeprefix("You are ").rstrip(".")
        words = [f"w{i} " for i in range(tokens - 1)]
        return Reply(tokens=[*words, f"\nPOSITION: {agent} is right"], delay=delay)

    with OllamaTestServer(respond=respond, port=port):
        while True:
            time.sleep(3600)


def serve_subject(port: int, model_url: str, store: str) -> None:
    import armillary_debate
    import armillary_ollama
    import armillary_tasks
    import uvicorn

    from armillary.testing import make_app

    app = make_app({"ollama": armillary_ollama, "tasks": armillary_tasks,
                    "debate": armillary_debate},
                   config={"kernel": {"store": store},
                           "plugins": {"ollama": {"base_url": model_url, "model": "llama3.2"},
                                       "debate": {}},
                           "agents": {a: {"instructions": f"You are {a}."} for a in AGENTS}})
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                ws="websockets-sansio")


async def run_subject(url: str, rounds: int) -> float:
    import httpx
    from websockets.asyncio.client import connect

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        r = await client.post("/debate/initialize", json={
            "debate_topic": "Rust or Go?", "problem_statement": "Pick a language.",
            "debate_mode": "structured", "max_rounds": rounds, "consensus_threshold": 1.0,
            "time_limit_per_argument": 60, "selected_agents": list(AGENTS)})
        debate_id = r.json()["debate_id"]
        async with connect(url.replace("http://", "ws://") + "/ws/debate-updates") as ws:
            await ws.send(json.dumps({"type": "subscribe", "debate_id": debate_id}))
            await ws.recv()
            started = time.perf_counter()
            r = await client.post(f"/debate/{debate_id}/control", json={"action": "start"})
            assert r.status_code == 200, r.text
            while True:
                message = json.loads(await ws.recv())
                if message["type"] == "debate_complete":
                    break
                assert message["type"] not in ("debate_failed", "debate_stopped"), message
            elapsed = time.perf_counter() - started
        body = (await client.get(f"/debates/{debate_id}")).json()
        assert body["status"] == "completed", body["status"]
    return elapsed


async def run_baseline(model_url: str, bodies: list[dict[str, Any]]) -> float:
    from armillary_ollama.provider import OllamaProvider

    from armillary import ChatRequest, Message

    provider = OllamaProvider(base_url=model_url, model="llama3.2")
    requests = [ChatRequest(model=b["model"], messages=[
        Message(role=m["role"], content=m["content"]) for m in b["messages"]]) for b in bodies]
    try:
        started = time.perf_counter()
        for request in requests:
            async for _chunk in provider.stream(request):
                pass
        return time.perf_counter() - started
    finally:
        await provider.aclose()


def read_new(log: Path, seen: int) -> list[dict[str, Any]]:
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    return [json.loads(line) for line in lines[seen:]]


async def drive(args: argparse.Namespace, tmp: Path) -> None:
    log = tmp / "requests.jsonl"
    model_port, subject_port = free_port(), free_port()
    model_url = f"http://127.0.0.1:{model_port}"
    subject_url = f"http://127.0.0.1:{subject_port}"
    store = f"sqlite:///{tmp}/runs.db" if args.store == "sqlite" else "memory://"
    me = [sys.executable, str(SELF)]
    model = start_server([*me, "--serve-model", str(model_port), "--tokens", str(args.tokens),
                          "--token-ms", str(args.token_ms), "--log", str(log)],
                         f"{model_url}/api/version", cwd=REPO)
    try:
        subject = start_server([*me, "--serve-subject", str(subject_port), "--model-url",
                                model_url, "--store", store], f"{subject_url}/health",
                               cwd=REPO)
        try:
            subject_times: list[float] = []
            baseline_times: list[float] = []
            calls = 0
            for i in range(args.repeats + 1):  # round 0 warms up and is not counted
                seen = len(read_new(log, 0))
                took = await run_subject(subject_url, args.rounds)
                bodies = read_new(log, seen)
                calls = len(bodies)
                alone = await run_baseline(model_url, bodies)
                if i:
                    subject_times.append(took)
                    baseline_times.append(alone)
        finally:
            stop_server(subject)
    finally:
        stop_server(model)
    debate = statistics.median(subject_times)
    baseline = statistics.median(baseline_times)
    per_call = (debate - baseline) / calls * 1000
    print(f"{len(AGENTS)} agents x {args.rounds} rounds: {calls} provider calls "
          f"({args.tokens} tokens x {args.token_ms:g} ms each), store {args.store}, "
          f"medians of {args.repeats}")
    print(f"debate (subject)        {debate * 1000:9.1f} ms   "
          f"(rounds: {', '.join(f'{t * 1000:.0f}' for t in subject_times)})")
    print(f"provider alone          {baseline * 1000:9.1f} ms   "
          f"(rounds: {', '.join(f'{t * 1000:.0f}' for t in baseline_times)})")
    print(f"ratio                   {debate / baseline:9.3f}x")
    print(f"overhead per argument   {per_call:9.2f} ms  "
          f"({per_call / (baseline / calls * 1000) * 100:.1f}% of one provider call, "
          f"{baseline / calls * 1000:.1f} ms)")
    # the fastest round of each is the least disturbed by a busy machine
    fastest = (min(subject_times) - min(baseline_times)) / calls * 1000
    print(f"  fastest rounds         {min(subject_times) * 1000:9.1f} ms vs "
          f"{min(baseline_times) * 1000:.1f} ms: {fastest:.2f} ms per argument")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=40)
    parser.add_argument("--token-ms", type=float, default=2.5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--store", default="sqlite",
                        help="sqlite or memory (a store URL in the subject process)")
    parser.add_argument("--serve-model", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-subject", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--model-url", help=argparse.SUPPRESS)
    parser.add_argument("--log", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_model:
        serve_model(args.serve_model, args.tokens, args.token_ms / 1000, args.log)
    elif args.serve_subject:
        serve_subject(args.serve_subject, args.model_url, args.store)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(drive(args, Path(tmp)))


if __name__ == "__main__":
    main()
