"""Twelve heads in parallel: is a Dvādaśa prompt as fast as its critical path?

    uv run python bench/bench_dvadasa.py [--rounds 7] [--tokens 40] [--delay 0.01]

Two processes: this one (the client, and the Ollama test server from
`tests/support/ollama_server.py` in a thread of its own, paced: every reply streams
`--tokens` token lines, one every `--delay` seconds, after a `--first-delay` "model load")
and `armillary serve` with the ollama, tasks and dvadasa plugins (SQLite store). Eleven
heads stream `--tokens` tokens; the slowest head (`skeptic`) streams twice as many; the
Witness streams `--tokens`.

- subject: `POST /v1/sessions/{id}/prompt` with `use_all_heads`, wall time from request
  to reply (heads in parallel, then the Witness, every event in SQLite, the guard on every
  call, the post-check and the session history).
- baseline, measured in the same run, rounds alternating with the subject: the critical
  path with no server in between — the twelve heads' calls made straight to the Ollama
  test server at once with httpx (a thread each; the slowest one's time, so the upstream
  serves as many streams as it does for the subject), plus the Witness's call streamed
  straight from it. For scale, also the slowest head's call streamed alone (the upstream
  serving one stream) + the Witness's.

Reported (medians): wall time / (slowest head + Witness) — target <= 1.15 — and the
heads' TTFT spread: max - min over the twelve heads of the time to their first token as
the strategy measured it (every head is scripted with the same first delay, so the spread
is how unevenly the parallel calls start and are served), with the heads' TTFT median
against the upstream's own first delay.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
from armillary_dvadasa.heads import DEFAULT_HEADS  # noqa: E402

from armillary.testing import ArmillaryServer  # noqa: E402
from tests.plugins.dvadasa.conftest import who  # noqa: E402
from tests.support.ollama_server import OllamaTestServer, Reply  # noqa: E402

SLOWEST = "skeptic"


def make_ollama(tokens: int, delay: float, first_delay: float) -> OllamaTestServer:
    def respond(body: dict[str, object]) -> Reply:
        name = who(body)  # type: ignore[arg-type]
        n = 2 * tokens if name == SLOWEST else tokens
        return Reply(tokens=[f"{name}{i} " for i in range(n)], delay=delay,
                     first_delay=first_delay)

    return OllamaTestServer(respond=respond)


def stream_direct(client: httpx.Client, url: str, system: str) -> float:
    """One streamed /api/chat straight from the test server; seconds to its last line."""
    body = {"model": "llama3.2", "stream": True,
            "messages": [{"role": "system", "content": system},
                         {"role": "user", "content": "six times seven?"}]}
    start = time.perf_counter()
    with client.stream("POST", url + "/api/chat", json=body) as r:
        for _ in r.iter_lines():
            pass
    return time.perf_counter() - start


def parallel_direct(url: str, systems: list[str]) -> list[tuple[float, float]]:
    """The twelve heads' calls straight to the test server at once (a thread each): each
    one's (seconds to its first token line, seconds to its last), from the moment all
    were released."""
    barrier = threading.Barrier(len(systems))

    def one(system: str) -> tuple[float, float]:
        body = {"model": "llama3.2", "stream": True,
                "messages": [{"role": "system", "content": system},
                             {"role": "user", "content": "six times seven?"}]}
        with httpx.Client(timeout=60) as client:
            barrier.wait()
            start = time.perf_counter()
            first = None
            with client.stream("POST", url + "/api/chat", json=body) as r:
                for _ in r.iter_lines():
                    if first is None:
                        first = time.perf_counter() - start
            return first or 0.0, time.perf_counter() - start

    with ThreadPoolExecutor(len(systems)) as pool:
        return list(pool.map(one, systems))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--tokens", type=int, default=40)
    parser.add_argument("--delay", type=float, default=0.01)
    parser.add_argument("--first-delay", type=float, default=0.2)
    args = parser.parse_args()

    ollama = make_ollama(args.tokens, args.delay, args.first_delay).start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "plugins.toml"
            config.write_text(f"""
[kernel]
enable = ["ollama", "tasks", "dvadasa"]
store = "sqlite:///runs.db"
max_concurrent_runs = 4

[plugins.ollama]
base_url = "{ollama.url}"
model = "llama3.2"
""")
            with ArmillaryServer(config, log_path=Path(tmp) / "serve.log") as server, \
                    httpx.Client(timeout=120) as client:
                session = client.post(server.url + "/v1/sessions").json()["session_id"]
                prompt = f"{server.url}/v1/sessions/{session}/prompt"
                body = {"prompt": "six times seven?", "use_all_heads": True}
                client.post(prompt, json=body).raise_for_status()  # warm up
                subject, baseline, serial, spreads, ttfts = [], [], [], [], []
                direct_spreads, direct_ttfts = [], []
                systems = [f"You are the {h.name} head" for h in DEFAULT_HEADS]
                for i in range(args.rounds):
                    for which in (("subject", "baseline") if i % 2 else
                                  ("baseline", "subject")):
                        if which == "baseline":
                            witness = stream_direct(client, ollama.url, "You are the Witness")
                            serial.append(witness + stream_direct(
                                client, ollama.url, "You are the Skeptic head"))
                            calls = parallel_direct(ollama.url, systems)
                            baseline.append(max(total for _, total in calls) + witness)
                            direct = [first * 1000 for first, _ in calls]
                            direct_spreads.append(max(direct) - min(direct))
                            direct_ttfts.append(statistics.median(direct))
                            continue
                        start = time.perf_counter()
                        r = client.post(prompt, json=body)
                        subject.append(time.perf_counter() - start)
                        r.raise_for_status()
                        heads = r.json()["head_contributions"]
                        assert len(heads) == 12 and all(h["status"] == "ok" for h in heads)
                        ttft = [h["ttft_ms"] for h in heads]
                        spreads.append(max(ttft) - min(ttft))
                        ttfts.append(statistics.median(ttft))
    finally:
        ollama.stop()
    wall, critical = statistics.median(subject), statistics.median(baseline)
    print(f"rounds={args.rounds} tokens={args.tokens} delay={args.delay}s "
          f"first_delay={args.first_delay}s (slowest head: {2 * args.tokens} tokens)")
    print(f"{'measure':<40} {'value':>12}")
    print(f"{'wall time, 12 heads + Witness (median)':<40} {wall * 1000:>10.1f} ms")
    print(f"{'slowest head + Witness, direct (median)':<40} {critical * 1000:>10.1f} ms")
    print(f"{'ratio (target <= 1.15)':<40} {wall / critical:>11.3f}x")
    alone = statistics.median(serial)
    print(f"{'  the slowest head streamed alone + Witness':<40} {alone * 1000:>10.1f} ms "
          f"({wall / alone:.3f}x)")
    print(f"{'heads TTFT spread, max-min (median)':<40} {statistics.median(spreads):>10.1f} ms")
    print(f"{'  the same 12 calls direct, in parallel':<40} "
          f"{statistics.median(direct_spreads):>10.1f} ms")
    print(f"{'heads TTFT, median of 12 (median)':<40} {statistics.median(ttfts):>10.1f} ms")
    print(f"{'  the same 12 calls direct, in parallel':<40} "
          f"{statistics.median(direct_ttfts):>10.1f} ms "
          f"(scripted first delay {args.first_delay * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
