"""Streaming relay: POST /ollama/chat against a bare httpx → StreamingResponse relay.

    uv run python bench/bench_ollama_relay.py [--tokens 5000] [--rounds 15] [--ttft-rounds 60]

Four processes besides this one: the Ollama test server (`tests/support/ollama_server.py`)
replying with `--tokens` token lines as fast as it can; `armillary serve` with only the
ollama plugin (the subject, POST /ollama/chat with `"stream": true`); `guarded`, the same
app with a redacting incremental safety check on (`armillary.testing.checks.PII()`, SSNs
and e-mail addresses, hold-back window 96 characters), served by uvicorn from a script
(`make_app`: a check needs a plugin object, and `armillary serve` loads only entry
points); and the baseline, the same relay written bare: FastAPI + uvicorn, one route that
opens the upstream stream with httpx and returns a StreamingResponse yielding each NDJSON
line as it arrives. All use the same uvicorn, loop and HTTP parser, and one upstream
connection per request.

The client (this process) posts, then reads raw bytes, counting lines:
- throughput: the reply's events (its 5,001 upstream lines: 5,000 tokens and the done
  line) / (last byte - request sent), the upstream sending them as fast as it can. The
  unguarded relays send one line per event; the guarded one sends the text its check
  released, a batch of tokens per line when they arrive faster than it checks them, so
  its line count (`lines`) is lower while the events relayed are the same;
- time to first token (TTFT): request sent until the first token line arrives, with the
  5,000-token reply paced at one token per ms (a fast real model) and the client leaving
  after the first token. Measured apart because at full speed the upstream, relay and
  client saturate a 2-core machine and TTFT becomes scheduler noise.
Rounds rotate the order of subject, guarded and baseline; medians are reported.
Two more rows, for scale only: `byte-pipe`, the baseline app relaying raw bytes as they
arrive (no per-event work at all), and `upstream`, the Ollama test server read directly.
CPU µs/event is the relay process's user+system time per event (10 ms clock ticks), which
the machine's noise disturbs far less than wall-clock rates.

The guarded relay holds back the check's window (96 characters) so a match split across
tokens is redacted before any of it leaves: its first token goes out once the window is
full. `window` is what that costs at the paced reply's rate, measured on the upstream
itself in the same run: the time from its first token line to the line that fills the
window.

Targets: subject throughput >= 0.9x the baseline; subject median TTFT <= baseline + 1 ms;
guarded throughput >= 1.0x the baseline; guarded median TTFT <= baseline + window + 1 ms.
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
from harness import cpu_seconds  # noqa: E402

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


GUARDED_APP = '''
import sys

import armillary_ollama
import uvicorn

from armillary import hookimpl
from armillary.testing import make_app
from armillary.testing.checks import PII


class Checks:
    @hookimpl
    def register_safety_checks(self, register):
        register(PII())


app = make_app({"ollama": armillary_ollama, "pii": Checks()},
               config={"plugins": {"ollama": {"base_url": sys.argv[2], "model": sys.argv[3]}}})
uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=int(sys.argv[1]),
                              log_level="warning", lifespan="on")).run()
'''

#: `PII().span`: the guarded relay's hold-back window, in characters
WINDOW_CHARS = 96


@dataclass
class Samples:
    ttft_ms: list[float] = field(default_factory=list)
    events_per_s: list[float] = field(default_factory=list)
    cpu_us_per_event: list[float] = field(default_factory=list)
    lines: int = 0

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


def window_ms(client: httpx.Client, url: str, body: dict[str, object]) -> float:
    """On the upstream's own stream: first token line until the line that makes the text
    longer than the window (when the guarded relay may release its first token)."""
    first: float | None = None
    chars = 0
    pending = b""
    with client.stream("POST", url, json=body) as response:
        response.raise_for_status()
        for data in response.iter_raw():
            now = time.perf_counter()
            *lines, pending = (pending + data).split(b"\n")
            for line in lines:
                chars += len(json.loads(line)["message"]["content"])
                first = now if first is None else first
                if chars > WINDOW_CHARS:
                    return (now - first) * 1000
    raise RuntimeError(f"{url}: the reply is shorter than the window")


def one_stream(client: httpx.Client, url: str, body: dict[str, object]) -> tuple[float, float,
                                                                                int]:
    """(TTFT ms, seconds to the last byte, lines) for one streamed request."""
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
    return (first - start) * 1000, (end - start), lines


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
            ollama_port, subject_port, base_port, guarded_port = (free_port(), free_port(),
                                                                  free_port(), free_port())
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

            guarded_app = Path(tmp) / "guarded_relay.py"
            guarded_app.write_text(GUARDED_APP)
            procs.append(subprocess.Popen([sys.executable, str(guarded_app), str(guarded_port),
                                           ollama_url, MODEL], env=env, cwd=tmp))
            guarded_url = f"http://127.0.0.1:{guarded_port}"
            wait_ready(guarded_url + "/health", procs[-1])

            targets = {
                "subject": (subject_url + "/ollama/chat",
                            {"model": MODEL, "message": "hi", "stream": True}),
                "guarded": (guarded_url + "/ollama/chat",
                            {"model": MODEL, "message": "hi", "stream": True}),
                "baseline": (base_url + "/relay", {"model": MODEL, "message": "hi"}),
                "byte-pipe": (base_url + "/raw", {"model": MODEL, "message": "hi"}),
                "upstream": (ollama_url + "/api/chat",
                             {"model": MODEL, "stream": True,
                              "messages": [{"role": "user", "content": "hi"}]}),
            }
            pids = {"subject": procs[1].pid, "guarded": procs[3].pid, "baseline": procs[2].pid,
                    "byte-pipe": procs[2].pid, "upstream": procs[0].pid}
            samples = {name: Samples() for name in targets}
            with httpx.Client(timeout=60) as client:
                for url, body in targets.values():  # warm up
                    for _ in range(2):
                        one_stream(client, url, body)
                main_three = ["subject", "guarded", "baseline"]
                events = args.tokens + 1  # the token lines and the done line
                for i in range(args.rounds):
                    turn = main_three[i % 3:] + main_three[:i % 3]
                    for name in [*turn, "byte-pipe", "upstream"]:
                        url, body = targets[name]
                        cpu = cpu_seconds(pids[name])
                        _, seconds, lines = one_stream(client, url, body)
                        cpu = cpu_seconds(pids[name]) - cpu
                        samples[name].cpu_us_per_event.append(cpu / events * 1e6)
                        samples[name].events_per_s.append(events / seconds)
                        samples[name].lines = lines
                paced_chat = {"model": "paced", "message": "hi", "stream": True}
                paced = {"subject": (subject_url + "/ollama/chat", paced_chat),
                         "guarded": (guarded_url + "/ollama/chat", paced_chat),
                         "baseline": (base_url + "/relay", {"model": "paced",
                                                            "message": "hi"})}
                ttft: dict[str, list[float]] = {name: [] for name in main_three}
                windows: list[float] = []
                upstream_paced = (ollama_url + "/api/chat", {
                    "model": "paced", "stream": True,
                    "messages": [{"role": "user", "content": "hi"}]})
                for i in range(args.ttft_rounds):
                    for name in main_three[i % 3:] + main_three[:i % 3]:
                        ttft[name].append(first_token_ms(client, *paced[name]))
                    if i % 3 == 0:
                        windows.append(window_ms(client, *upstream_paced))
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

    s, g, b = samples["subject"], samples["guarded"], samples["baseline"]
    window = statistics.median(windows)
    result = {
        "tokens": args.tokens, "rounds": args.rounds, "ttft_rounds": args.ttft_rounds,
        "lines_per_stream": {k: v.lines for k, v in samples.items()},
        "throughput_events_per_s": {k: round(v.median_rate()) for k, v in samples.items()},
        "ttft_median_ms": {k: round(v.median_ttft(), 3) for k, v in samples.items()
                           if v.ttft_ms},
        "relay_cpu_us_per_event": {k: round(statistics.median(v.cpu_us_per_event), 2)
                                   for k, v in samples.items()},
        "throughput_ratio": round(s.median_rate() / b.median_rate(), 3),
        "added_ttft_ms": round(s.median_ttft() - b.median_ttft(), 3),
        "guarded_throughput_ratio": round(g.median_rate() / b.median_rate(), 3),
        "guarded_vs_subject_throughput_ratio": round(g.median_rate() / s.median_rate(), 3),
        "window_chars": WINDOW_CHARS,
        "window_ms": round(window, 3),
        "guarded_added_ttft_ms": round(g.median_ttft() - b.median_ttft(), 3),
        "guarded_added_ttft_beyond_window_ms": round(g.median_ttft() - b.median_ttft()
                                                     - window, 3),
        "guarded_vs_subject_ttft_beyond_window_ms": round(g.median_ttft() - s.median_ttft()
                                                          - window, 3),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.tokens} tokens per stream; medians of {args.rounds} throughput rounds and "
          f"{args.ttft_rounds} TTFT rounds")
    print(f"{'':<10} {'events/s':>10} {'lines':>7} {'CPU µs/event':>13} {'TTFT ms':>9}")
    for name, v in samples.items():
        first = f"{v.median_ttft():9.3f}" if v.ttft_ms else f"{'-':>9}"
        print(f"{name:<10} {v.median_rate():10.0f} {v.lines:7d} "
              f"{statistics.median(v.cpu_us_per_event):13.2f} {first}")
    print(f"throughput ratio subject/baseline {result['throughput_ratio']:.3f}x "
          f"(target >= 0.9x)")
    print(f"added median TTFT {result['added_ttft_ms']:+.3f} ms (target <= 1 ms)")
    print(f"guarded throughput ratio guarded/baseline {result['guarded_throughput_ratio']:.3f}x "
          f"(target >= 1.0x); guarded/subject "
          f"{result['guarded_vs_subject_throughput_ratio']:.3f}x")
    print(f"window {WINDOW_CHARS} chars = {window:.3f} ms at the paced reply's rate; guarded "
          f"added median TTFT {result['guarded_added_ttft_ms']:+.3f} ms, "
          f"{result['guarded_added_ttft_beyond_window_ms']:+.3f} ms beyond the window "
          f"(target <= window + 1 ms); against the unguarded subject "
          f"{result['guarded_vs_subject_ttft_beyond_window_ms']:+.3f} ms beyond it")


if __name__ == "__main__":
    main()
