"""A real `armillary serve` in a subprocess, on a free loopback port."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from fastapi import FastAPI


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@asynccontextmanager
async def serve_app(app: FastAPI, **uvicorn_options: Any) -> AsyncIterator[str]:
    """Serve `app` with uvicorn in this event loop on a free loopback port; yields its URL.

    Real sockets, so streaming, disconnects and WebSockets behave as they do in
    production, with the app's objects still at hand (`app.state.kernel`)."""
    import uvicorn

    port = free_port()
    options = {"lifespan": "on", "log_level": "warning", **uvicorn_options}
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **options))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn stopped before it started")
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


class ArmillaryServer:
    """`with ArmillaryServer(config_path) as server: httpx.get(server.url + "/health")`.

    Waits until /health answers (any status) or the process exits; on exit it sends
    SIGTERM, then SIGKILL after `stop_timeout`. Output goes to `log_path`."""

    def __init__(self, config: str | Path | None = None, *, env: dict[str, str] | None = None,
                 port: int | None = None, python: str | None = None,
                 cwd: str | Path | None = None, start_timeout: float = 30.0,
                 stop_timeout: float = 10.0, log_path: str | Path | None = None) -> None:
        self.config = Path(config) if config else None
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.python = python or sys.executable
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.log_path = Path(log_path) if log_path else None
        self.process: subprocess.Popen[bytes] | None = None
        self._log: object = None

    def command(self) -> list[str]:
        cmd = [self.python, "-m", "armillary", "serve", "--host", "127.0.0.1",
               "--port", str(self.port)]
        if self.config:
            cmd += ["--config", str(self.config)]
        return cmd

    def start(self) -> ArmillaryServer:
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._log = log
        self.process = subprocess.Popen(self.command(), env=self.env, cwd=self.cwd,
                                        stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"armillary serve exited with {self.process.returncode}"
                                   + self._tail())
            try:
                httpx.get(self.url + "/health", timeout=1.0)
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"armillary serve did not answer in {self.start_timeout}s"
                           + self._tail())

    def _tail(self) -> str:
        if self.log_path and self.log_path.exists():
            return ":\n" + self.log_path.read_text(errors="replace")[-3000:]
        return ""

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if hasattr(self._log, "close"):
            self._log.close()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: a crash, for restart tests."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> ArmillaryServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
