"""The Pi profile against a bare FastAPI + uvicorn app, measured in one run.

    uv run python bench/bench_pi.py [--turns 1000] [--conversations 100] [--repeats 7]

Builds the Pi wheels (kernel, ollama, chat, agents) into one fresh venv and installs only
fastapi + uvicorn (same versions) into another. The baseline app is what the Pi seed
would be written bare: GET /health, and POST /chat forwarding to Ollama's /api/chat with
httpx and a dict of per-conversation deques. Both talk to the same Ollama test server.

Measured (ratios are Pi / bare):
- time to first 200: process start until GET /health answers 200 (median of --repeats)
- RSS after startup, and after --turns chat turns spread over --conversations
- installed size: site-packages of the Pi venv against one holding just fastapi+uvicorn
- memory flat once the conversation cap is reached: RSS after each further block of
  turns that each start a new conversation (the Pi profile caps them at 200)

Targets: time and RSS ratios <= 1.15; RSS flat (within noise) across the capped blocks.
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from armillary.testing import free_port  # noqa: E402
from tests.support.ollama_server import OllamaTestServer  # noqa: E402
from tests.support.wheels import build_wheels, fresh_venv, uv  # noqa: E402

PI_PACKAGES = ("armillary", "armillary-ollama", "armillary-chat", "armillary-agents")
MODEL = "llama3.2:1b"

BARE_APP = '''
import collections
import httpx
from fastapi import FastAPI
from pydantic import BaseModel

OLLAMA = "{ollama}"
app = FastAPI()
client = httpx.AsyncClient(base_url=OLLAMA, timeout=60)
memory = collections.defaultdict(lambda: collections.deque(maxlen=16))
SYSTEM = "You are a helpful, friendly general-purpose assistant."


class ChatRequest(BaseModel):
    message: str
    agent: str = "general"
    stream: bool = False
    conversation_id: str | None = None


@app.get("/health")
async def health():
    return {{"status": "ok"}}


@app.post("/chat")
async def chat(req: ChatRequest):
    cid = req.conversation_id or "default"
    history = memory[cid]
    messages = [{{"role": "system", "content": SYSTEM}}, *history,
                {{"role": "user", "content": req.message}}]
    r = await client.post("/api/chat", json={{"model": "{model}", "messages": messages,
                                             "stream": False}})
    r.raise_for_status()
    reply = r.json()["message"]["content"]
    history.append({{"role": "user", "content": req.message}})
    history.append({{"role": "assistant", "content": reply}})
    return {{"conversation_id": cid, "agent": req.agent, "reply": reply, "model": "{model}"}}
'''


def pip_install(python: Path, *requirements: str | Path) -> None:
    """Install as pip does on a Pi: with .pyc files written at install time (uv skips
    that unless asked, and this environment may set PYTHONDONTWRITEBYTECODE)."""
    subprocess.run([uv(), "pip", "install", "--quiet", "--compile-bytecode", "--python",
                    str(python), *map(str, requirements)], check=True, capture_output=True)


def site_packages_bytes(venv: Path) -> int:
    (site,) = venv.glob("lib/python*/site-packages")
    total = 0
    for root, _dirs, files in os.walk(site):
        for name in files:
            path = Path(root) / name
            if not path.is_symlink():
                total += path.stat().st_size
    return total


def versions(python: Path, *names: str) -> dict[str, str]:
    code = ("import importlib.metadata as m, json, sys; "
            "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))")
    out = subprocess.run([str(python), "-c", code, *names], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Server:
    """A server process; `start()` returns seconds from spawn to the first 200."""

    def __init__(self, command: list[str], port: int, cwd: Path) -> None:
        self.command, self.port, self.cwd = command, port, cwd
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        t0 = time.perf_counter()
        self.process = subprocess.Popen(self.command, cwd=self.cwd, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        with httpx.Client(timeout=1.0) as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(self.process.stderr.read().decode())  # type: ignore[union-attr]
                try:
                    if client.get(self.url + "/health").status_code == 200:
                        return time.perf_counter() - t0
                except httpx.HTTPError:
                    pass
                time.sleep(0.002)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid


def chat_turns(url: str, turns: int, conversation: callable) -> float:  # type: ignore[valid-type]
    t0 = time.perf_counter()
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in range(turns):
            r = client.post("/chat", json={"message": f"message number {i}",
                                           "conversation_id": conversation(i)})
            r.raise_for_status()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=1000)
    parser.add_argument("--conversations", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--blocks", type=int, default=4, help="capped blocks for flatness")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-pi-"))
    print(f"# work dir {work}", file=sys.stderr)
    wheels = build_wheels(work / "wheels", *PI_PACKAGES)
    pi_python = fresh_venv(work / "pi")
    pip_install(pi_python, *wheels)
    pinned = versions(pi_python, "fastapi", "uvicorn", "httpx")
    bare_python = fresh_venv(work / "bare")
    pip_install(bare_python, f"fastapi=={pinned['fastapi']}", f"uvicorn=={pinned['uvicorn']}")
    size_pi = site_packages_bytes(work / "pi")
    size_bare = site_packages_bytes(work / "bare")
    # the bare chat app needs an HTTP client to reach Ollama; not counted in its size
    pip_install(bare_python, f"httpx=={pinned['httpx']}")

    results: dict[str, object] = {"versions": pinned, "python": sys.version.split()[0]}
    with OllamaTestServer(models=[MODEL], default="Sure, here is a short answer.") as ollama:
        (work / "bare_app.py").write_text(BARE_APP.format(ollama=ollama.url, model=MODEL))
        profile = (REPO / "plugins.pi.toml").read_text()
        (work / "plugins.pi.toml").write_text(profile.replace(
            'base_url = "http://127.0.0.1:11434"', f'base_url = "{ollama.url}"'))

        def bare() -> Server:
            port = free_port()
            return Server([str(bare_python), "-m", "uvicorn", "bare_app:app", "--host",
                           "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                          port, work)

        def pi() -> Server:
            port = free_port()
            return Server([str(pi_python), "-m", "armillary", "serve", "--config",
                           str(work / "plugins.pi.toml"), "--port", str(port)], port, work)

        # time to first 200, alternating so drift hits both alike; the first start of
        # each (writing .pyc files) is a warm-up and not counted
        times: dict[str, list[float]] = {"bare": [], "pi": []}
        for _ in range(args.repeats + 1):
            for name, make in (("bare", bare), ("pi", pi)):
                server = make()
                try:
                    times[name].append(server.start())
                finally:
                    server.stop()
        times = {name: t[1:] for name, t in times.items()}

        runs = {}
        for name, make in (("bare", bare), ("pi", pi)):
            server = make()
            try:
                server.start()
                time.sleep(0.5)
                after_start = rss_kib(server.pid)
                elapsed = chat_turns(server.url, args.turns,
                                     lambda i: f"conv-{i % args.conversations}")
                after_turns = rss_kib(server.pid)
                blocks = []
                if name == "pi":
                    for b in range(args.blocks):
                        chat_turns(server.url, args.turns,
                                   lambda i, b=b: f"block{b}-conv-{i}")
                        blocks.append(rss_kib(server.pid))
                runs[name] = {"rss_start_kib": after_start, "rss_turns_kib": after_turns,
                              "turns_s": elapsed, "capped_blocks_rss_kib": blocks}
            finally:
                server.stop()

    t_bare, t_pi = statistics.median(times["bare"]), statistics.median(times["pi"])
    results.update({
        "first_200_s": {"bare": t_bare, "pi": t_pi, "ratio": t_pi / t_bare},
        "rss_start_kib": {"bare": runs["bare"]["rss_start_kib"],
                          "pi": runs["pi"]["rss_start_kib"],
                          "ratio": runs["pi"]["rss_start_kib"] / runs["bare"]["rss_start_kib"]},
        "rss_after_turns_kib": {"bare": runs["bare"]["rss_turns_kib"],
                                "pi": runs["pi"]["rss_turns_kib"],
                                "ratio": runs["pi"]["rss_turns_kib"]
                                / runs["bare"]["rss_turns_kib"]},
        "turns_s": {"bare": runs["bare"]["turns_s"], "pi": runs["pi"]["turns_s"],
                    "ratio": runs["pi"]["turns_s"] / runs["bare"]["turns_s"]},
        "site_packages_bytes": {"bare": size_bare, "pi": size_pi,
                                "ratio": size_pi / size_bare},
        "pi_capped_blocks_rss_kib": runs["pi"]["capped_blocks_rss_kib"],
    })
    if args.json:
        print(json.dumps(results, indent=2))
        return
    blocks = results["pi_capped_blocks_rss_kib"]
    print(f"Pi profile vs bare FastAPI+uvicorn (python {results['python']}, "
          f"fastapi {pinned['fastapi']}, uvicorn {pinned['uvicorn']}); ratio = pi / bare")
    print(f"{'measure':38} {'bare':>12} {'pi':>12} {'ratio':>7}")
    rows = [
        ("time to first 200 (median, s)", "first_200_s", "{:.3f}"),
        ("RSS after startup (MiB)", "rss_start_kib", "kib"),
        (f"RSS after {args.turns} turns / {args.conversations} convs (MiB)",
         "rss_after_turns_kib", "kib"),
        (f"{args.turns} sequential turns (s)", "turns_s", "{:.2f}"),
        ("site-packages (MiB)", "site_packages_bytes", "bytes"),
    ]
    for label, key, fmt in rows:
        row = results[key]
        assert isinstance(row, dict)

        def show(v: float, fmt: str = fmt) -> str:
            if fmt == "kib":
                return f"{v / 1024:.1f}"
            if fmt == "bytes":
                return f"{v / 2**20:.1f}"
            return fmt.format(v)

        print(f"{label:38} {show(row['bare']):>12} {show(row['pi']):>12} "
              f"{row['ratio']:>6.2f}x")
    assert isinstance(blocks, list)
    print(f"Pi RSS after each further block of {args.turns} new conversations (cap 200), "
          f"MiB: {', '.join(f'{b / 1024:.1f}' for b in blocks)}")
    if blocks:
        print(f"growth from the first capped block to the last: "
              f"{(blocks[-1] - blocks[0]) / 1024:+.2f} MiB")


if __name__ == "__main__":
    main()
