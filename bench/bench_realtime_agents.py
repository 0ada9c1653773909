"""The realtime agents side: what an SDK session turn and a root-agent decision cost.

    uv run python bench/bench_realtime_agents.py [--turns 100] [--rounds 3]

The Ollama test server (`tests/support/ollama_server.py`, in this process's threads)
answers every chat with a short reply; `armillary serve` runs the ollama, tools and
realtime plugins on a SQLite store. Measured, sequentially, medians over alternating
rounds:

- `sdk turn`: POST /api/sdk/session/message on one session (a `handoff` strategy run:
  submit, the provider call, three transcript writes, the run's events) against the
  baseline, the same model call made directly (POST /api/chat, streamed, read to the end);
  the difference is the turn's overhead over the upstream call. `sdk turn vs relay`: the
  same turn against POST /ollama/chat on the same server (the kernel's guarded provider
  path with no run, no store writes).
- `handoff turn`: a turn with one `transfer_to_<agent>` handoff (two model calls) against
  two direct calls.
- `orchestrate`: POST /api/orchestrate against GET /health on the same server (the
  scoring's cost over the HTTP round trip).

Targets: turn overhead <= 25 ms on a 2-core machine; orchestrate <= 1.5x /health.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from bench.harness import free_port, median, start_server, stop_server  # noqa: E402
from tests.plugins.realtime.agents_harness import write_config  # noqa: E402
from tests.support.ollama_server import OllamaTestServer, Reply  # noqa: E402


def timed(call: object) -> float:
    start = time.perf_counter()
    call()  # type: ignore[operator]
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--store", default="sqlite:///bench.db",
                        help="the server's [kernel] store (memory:// to see the store's share)")
    args = parser.parse_args()

    def respond(body: dict) -> Reply | None:
        # a handoff while the supervisor speaks and the last message is the user's
        system = body["messages"][0]["content"]
        if system.startswith("You greet") and body["messages"][-1]["role"] == "user" \
                and body["messages"][-1]["content"] == "hand off":
            return Reply(tool_calls=[{"name": "transfer_to_returns", "arguments": {}}])
        return None

    with OllamaTestServer(default="Fine, thanks.", respond=respond) as ollama, \
            tempfile.TemporaryDirectory() as tmp:
        config = write_config(Path(tmp), ollama.url, store=args.store)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = start_server([sys.executable, "-m", "armillary", "serve", "--config",
                             str(config), "--port", str(port), "--log-level", "warning"],
                            url + "/health", cwd=Path(tmp))
        try:
            with httpx.Client(base_url=url, timeout=30) as client, \
                    httpx.Client(base_url=ollama.url, timeout=30) as upstream:
                body = {"model": "llama3.2", "stream": True,
                        "messages": [{"role": "user", "content": "hi"}]}

                def direct() -> None:
                    with upstream.stream("POST", "/api/chat", json=body) as r:
                        for _ in r.iter_bytes():
                            pass

                def relay() -> None:
                    with client.stream("POST", "/ollama/chat", json=body) as r:
                        for _ in r.iter_bytes():
                            pass

                rows: dict[str, list[tuple[float, float]]] = {
                    "sdk turn": [], "sdk turn vs relay": [], "handoff turn": [], "orchestrate": []}
                for round_ in range(args.rounds):
                    plain = f"b-plain-{round_}"
                    client.post("/api/sdk/session/create", json={
                        "session_id": plain, "agent_name": "a", "instructions": "Be brief."})
                    subject = [timed(lambda plain=plain: client.post(
                        "/api/sdk/session/message",
                        json={"session_id": plain, "user_input": "hi"}).raise_for_status())
                        for _ in range(args.turns)]
                    base = [timed(direct) for _ in range(args.turns)]
                    rows["sdk turn"].append((median(subject), median(base)))
                    relayed = [timed(relay) for _ in range(args.turns)]
                    rows["sdk turn vs relay"].append((median(subject), median(relayed)))

                    handoff = []
                    for i in range(args.turns // 4):
                        sid = f"b-hand-{round_}-{i}"
                        client.post("/api/sdk/session/create", json={
                            "session_id": sid, "agent_name": "supervisor",
                            "instructions": "", "scenario_id": "retail"})
                        handoff.append(timed(lambda sid=sid: client.post(
                            "/api/sdk/session/message",
                            json={"session_id": sid, "user_input": "hand off"}
                        ).raise_for_status()))
                    two = [timed(direct) + timed(direct) for _ in range(args.turns // 4)]
                    rows["handoff turn"].append((median(handoff), median(two)))

                    decide = {"scenario_id": "retail", "current_agent": "supervisor",
                              "user_message": "my order arrived broken, refund please"}
                    orch = [timed(lambda decide=decide: client.post("/api/orchestrate",
                                                                   json=decide))
                            for _ in range(args.turns)]
                    health = [timed(lambda: client.get("/health"))
                              for _ in range(args.turns)]
                    rows["orchestrate"].append((median(orch), median(health)))
        finally:
            stop_server(proc)

    print(f"{args.turns} turns x {args.rounds} rounds (medians of per-round medians)")
    for name, values in rows.items():
        subject = median([s for s, _ in values])
        base = median([b for _, b in values])
        print(f"{name:<18} {subject:8.2f} ms   baseline {base:8.2f} ms   "
              f"ratio {subject / base:5.2f}x   added {subject - base:+7.2f} ms")


if __name__ == "__main__":
    main()
