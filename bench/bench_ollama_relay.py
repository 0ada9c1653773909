"""Streaming relay: POST /ollama/chat against a bare httpx → StreamingResponse relay.

    uv run python bench/bench_ollama_relay.py [--tokens 5000] [--rounds 15] [--ttft-rounds 60]

Three processes besides this one: the Ollama test server (`tests/support/ollama_server.py`)
replying with `--tokens` token lines as fast as it can; `armillary serve` with only the
ollama plugin (the subject, POST /ollama/chat with `"stream": true`); and the baseline, the
same relay written bare: FastAPI + uvicorn, one route that opens the upstream stream with
httpx and returns a StreamingResponse yielding each NDJSON line as it arrives. Both use the
same uvicorn, loop and HTTP parser, and one upstream connection per request.

The client (this process) posts, then reads raw bytes, counting lines (events):
- throughput: events / (last byte - request sent), the upstream sending its 5,000 lines
  as fast as it can;
- time to first token (TTFT): request sent until the first token line arrives, with the
  5,000-token reply paced at one token per ms (a fast real model) and the client leaving
  after the first token. Measured apart because at full speed the upstream, relay and
  client saturate a 2-core machine and TTFT becomes scheduler noise.
Rounds alternate subject and baseline (order flipped every round); medians are reported.
Two more rows, for scale only: `byte-pipe`, the baseline app relaying raw bytes as they
arrive (no per-event work at all), and `upstream`, the Ollama test server read directly.
CPU µs/event is the relay process's user+system time per event (10 ms clock ticks), which
the machine's noise disturbs far less than wall-clock rates.

Targets: subject throughput >= 0.9x the baseline; subject median TTFT <= baseline + 1 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from armillary.testing import free_port  # noqa: E402

MODEL = "llama3.2"

BASELINE_APP = '''
import sys

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

OLLAMA = sys.argv[2]
app = FastAPI()
client = httpx.AsyncClient(base_url=OLLAMA, timeout=60)


@app.get("/health")
async def health():
    return {"status": "ok"}


@app.post("/relay")
async def relay(request: Request):
    body = await request.json()
    upstream = {"model": body["model"], "stream": True,
                "messages": [{"role": "user", "content": body["message"]}]}

    async def lines():
        async with client.stream("POST", "/api/chat", json=upstream) as r:
            async for line in r.aiter_lines():
                yield line + "\\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@app.post("/raw")
async def raw(request: Request):
    """Not the target's baseline: a byte pipe, for scale (no per-event work at all)."""
    body = await request.json()
    upstream = {"model": body["model"], "stream": True,
                "messages": [{"role": "user", "content": body["message"]}]}

    async def chunks():
        async with client.stream("POST", "/api/chat", json=upstream) as r:
            async for data in r.aiter_raw():
                yield data

    return StreamingResponse(chunks(), media_type="application/x-ndjson")


uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
'''


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Samples:
    ttft_ms: list[float] = field(default_factory=list)
    events_per_s: list[float] = field(default_factory=list)
    cpu_us_per_event: list[float] = field(default_factory=list)
    events: int = 0

    def median_ttft(self) -> float:
        return statistics.median(self.ttft_ms)

    def median_rate(self) -> float:
        return statistics.median(self.events_per_s)


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer in {timeout}s")


def first_token_ms(client: httpx.Client, url: str, body: dict[str, object]) -> float:
    """Request sent until the first line arrives; then the client hangs up."""
    start = time.perf_counter()
    with client.stream("POST", url, json=body) as response:
        response.raise_for_status()
        for data in response.iter_raw():
            if b"\n" in data:
                return (time.perf_counter() - start) * 1000
    raise RuntimeError(f"{url}: no line")


def one_stream(client: httpx.Client, url: str, body: dict[str, object]) -> tuple[float, float,
                                                                                int]:
    """(TTFT ms, events/s, events) for one streamed request."""
    start = time.perf_counter()
    first: float | None = None
    lines = 0
    with client.stream("POST", url, json=body) as response:
        response.raise_for_status()
        for data in response.iter_raw():
            n = data.count(b"\n")
            if n and first is None:
                first = time.perf_counter()
            lines += n
    end = time.perf_counter()
    assert first is not None
    return (first - start) * 1000, lines / (end - start), lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--ttft-rounds", type=int, default=60)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            ollama_port, subject_port, base_port = free_port(), free_port(), free_port()
            ollama_url = f"http://127.0.0.1:{ollama_port}"
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "tests.support.ollama_server", "--port",
                 str(ollama_port), "--tokens", str(args.tokens)], env=env, cwd=REPO,
                stdout=subprocess.DEVNULL))
            wait_ready(ollama_url + "/", procs[-1])

            config = Path(tmp) / "plugins.toml"
            config.write_text(f'[kernel]\nenable = ["ollama"]\nstore = "memory://"\n'
                              f'log_level = "warning"\n\n[plugins.ollama]\n'
                              f'base_url = "{ollama_url}"\nmodel = "{MODEL}"\n')
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "armillary", "serve", "--config", str(config),
                 "--port", str(subject_port)], env=env, cwd=tmp))
            subject_url = f"http://127.0.0.1:{subject_port}"
            wait_ready(subject_url + "/health", procs[-1])

            app = Path(tmp) / "baseline_relay.py"
            app.write_text(BASELINE_APP)
            procs.append(subprocess.Popen([sys.executable, str(app), str(base_port),
                                           ollama_url], env=env, cwd=tmp))
            base_url = f"http://127.0.0.1:{base_port}"
            wait_ready(base_url + "/health", procs[-1])

            targets = {
                "subject": (subject_url + "/ollama/chat",
                            {"model": MODEL, "message": "hi", "stream": True}),
                "baseline": (base_url + "/relay", {"model": MODEL, "message": "hi"}),
                "byte-pipe": (base_url + "/raw", {"model": MODEL, "message": "hi"}),
                "upstream": (ollama_url + "/api/chat",
                             {"model": MODEL, "stream": True,
                              "messages": [{"role": "user", "content": "hi"}]}),
            }
            pids = {"subject": procs[1].pid, "baseline": procs[2].pid,
                    "byte-pipe": procs[2].pid, "upstream": procs[0].pid}
            samples = {name: Samples() for name in targets}
            with httpx.Client(timeout=60) as client:
                for url, body in targets.values():  # warm up
                    for _ in range(2):
                        one_stream(client, url, body)
                order = ["subject", "baseline", "byte-pipe", "upstream"]
                for i in range(args.rounds):
                    for name in order if i % 2 == 0 else order[1::-1] + order[2:]:
                        url, body = targets[name]
                        cpu = cpu_seconds(pids[name])
                        _, rate, events = one_stream(client, url, body)
                        cpu = cpu_seconds(pids[name]) - cpu
                        samples[name].cpu_us_per_event.append(cpu / events * 1e6)
                        samples[name].events_per_s.append(rate)
                        samples[name].events = events
                paced = {"subject": (subject_url + "/ollama/chat",
                                     {"model": "paced", "message": "hi", "stream": True}),
                         "baseline": (base_url + "/relay", {"model": "paced",
                                                            "message": "hi"})}
                ttft: dict[str, list[float]] = {"subject": [], "baseline": []}
                for i in range(args.ttft_rounds):
                    for name in ("subject", "baseline") if i % 2 == 0 else \
                            ("baseline", "subject"):
                        ttft[name].append(first_token_ms(client, *paced[name]))
                for name, values in ttft.items():
                    samples[name].ttft_ms = values
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()

    s, b = samples["subject"], samples["baseline"]
    result = {
        "tokens": args.tokens, "rounds": args.rounds, "ttft_rounds": args.ttft_rounds,
        "events_per_stream": {k: v.events for k, v in samples.items()},
        "throughput_events_per_s": {k: round(v.median_rate()) for k, v in samples.items()},
        "ttft_median_ms": {k: round(v.median_ttft(), 3) for k, v in samples.items()
                           if k in ("subject", "baseline")},
        "relay_cpu_us_per_event": {k: round(statistics.median(v.cpu_us_per_event), 2)
                                   for k, v in samples.items()},
        "throughput_ratio": round(s.median_rate() / b.median_rate(), 3),
        "added_ttft_ms": round(s.median_ttft() - b.median_ttft(), 3),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.tokens} tokens per stream; medians of {args.rounds} throughput rounds and "
          f"{args.ttft_rounds} TTFT rounds")
    print(f"{'':<10} {'events/s':>10} {'events':>7} {'CPU µs/event':>13} {'TTFT ms':>9}")
    for name, v in samples.items():
        first = f"{v.median_ttft():9.3f}" if v.ttft_ms else f"{'-':>9}"
        print(f"{name:<10} {v.median_rate():10.0f} {v.events:7d} "
              f"{statistics.median(v.cpu_us_per_event):13.2f} {first}")
    print(f"throughput ratio subject/baseline {result['throughput_ratio']:.3f}x "
          f"(target >= 0.9x)")
    print(f"added median TTFT {result['added_ttft_ms']:+.3f} ms (target <= 1 ms)")


if __name__ == "__main__":
    main()
