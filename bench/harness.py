"""What the benchmarks share: start a server process, time it to its first 200, read RSS.

Every benchmark prints ratios against a baseline measured in the same run, alternating
baseline and subject so a noisy neighbour hurts both alike.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int) -> int:
    """Resident set size of a process, in KiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for measured processes: bytecode caching on (some machines set
    PYTHONDONTWRITEBYTECODE, which makes every start compile from source and hides what
    a real install pays), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, **(extra or {})}


@dataclass
class Started:
    seconds_to_first_200: float
    rss_kib: int


def start_and_measure(cmd: Sequence[str], url: str, *, env: dict[str, str] | None = None,
                      cwd: Path | None = None, timeout: float = 60.0,
                      settle: float = 0.3) -> Started:
    """Spawn `cmd`, poll `url` until it answers 200, then read RSS and stop the process."""
    start = time.perf_counter()
    proc = subprocess.Popen(list(cmd), env=bench_env(env), cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        with httpx.Client(timeout=1.0) as client:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{cmd} exited: {proc.stderr.read().decode()[-2000:]}"
                                       if proc.stderr else f"{cmd} exited")
                try:
                    if client.get(url).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.perf_counter() - start > timeout:
                    raise RuntimeError(f"{cmd} did not answer in {timeout}s")
                time.sleep(0.005)
        elapsed = time.perf_counter() - start
        time.sleep(settle)
        return Started(elapsed, rss_kib(proc.pid))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_server(cmd: Sequence[str], ready_url: str, *, env: dict[str, str] | None = None,
                 cwd: Path | None = None, timeout: float = 60.0) -> subprocess.Popen[bytes]:
    """Spawn a server and return once `ready_url` answers (any status). Its stderr goes
    to a temporary file, not a pipe nobody reads (a chatty server would block once the
    pipe's 64 KiB filled), and is shown if it exits before answering."""
    log = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the server)
    proc = subprocess.Popen(list(cmd), cwd=cwd, stdout=subprocess.DEVNULL, stderr=log,
                            env=bench_env(env))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(log.read().decode(errors="replace")[-3000:] or "exit")
        try:
            httpx.get(ready_url, timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    stop_server(proc)
    raise RuntimeError(f"{cmd} did not answer {ready_url} in {timeout}s")


def stop_server(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after `timeout`."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def ratio_line(name: str, subject: float, baseline: float, unit: str, target: str) -> str:
    return (f"{name:<38} {subject:10.3f} {unit:<4} vs baseline {baseline:10.3f} {unit:<4} "
            f"ratio {subject / baseline:5.2f}x  (target {target})")
