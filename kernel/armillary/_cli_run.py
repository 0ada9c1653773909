"""`armillary run "goal"`: run a goal in-process (no server) and show its steps live.

Progress goes to stderr (a live status line on a terminal, plain lines when piped); the
final answer goes to stdout, so `armillary run "…" > answer.txt` works. The run uses an
in-memory store: it is not kept after the command ends. Exit code 0 when the run
completed, 1 when it did not, 130 on Ctrl-C (the run is cancelled first).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any, TextIO

from armillary._config import Config
from armillary._events import END_EVENT_TYPES, follow_run
from armillary._models import Event, Run, RunStatus

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


def _short(value: Any, width: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[:width - 1] + "…"


class ProgressPrinter:
    """Turns run events into lines. `live=True` keeps a redrawn status line at the bottom."""

    def __init__(self, out: TextIO, *, live: bool) -> None:
        self.out = out
        self.live = live
        self.status = "queued"
        self.tail = ""
        self.frame = 0
        self.started = time.monotonic()
        self.answer: str | None = None
        self.error: dict[str, Any] | None = None
        self.final: str | None = None

    def _line(self, text: str) -> None:
        if self.live:
            self.out.write("\r\x1b[K")
        self.out.write(text + "\n")
        self._draw()

    def _draw(self) -> None:
        if not self.live:
            self.out.flush()
            return
        self.frame = (self.frame + 1) % len(SPINNER)
        elapsed = time.monotonic() - self.started
        tail = f" · {self.tail[-50:]}" if self.tail else ""
        self.out.write(f"\r\x1b[K{SPINNER[self.frame]} {self.status} {elapsed:5.1f}s{tail}")
        self.out.flush()

    def tick(self) -> None:
        if self.live and self.final is None:
            self._draw()

    def event(self, event: Event) -> None:
        p = event.payload
        kind = event.type
        if kind == "token":
            self.tail = (self.tail + str(p.get("delta", ""))).replace("\n", " ")[-200:]
            if self.live:
                self._draw()
        elif kind == "running":
            self.status = "running"
            self._line("▶ running")
        elif kind == "paused":
            self.status = "paused"
            self._line("⏸ paused")
        elif kind == "tool_call":
            mark = "✓" if p.get("success") else "✗"
            shown = p.get("result") if p.get("success") else (p.get("error") or {}).get("detail")
            self._line(f"  {mark} {p.get('tool_name')}({_short(p.get('parameters', {}), 60)})"
                       f" → {_short(shown, 60)}")
        elif kind == "plan_update":
            self._line("  plan: " + " → ".join(str(s) for s in p.get("current_plan", [])))
        elif kind == "step":
            self.tail = ""
            mark = "✓" if p.get("success") else "✗"
            self.status = f"step {p.get('step_number')} done"
            self._line(f"step {p.get('step_number')} {mark} "
                       f"{float(p.get('duration_seconds', 0)):.2f}s")
        elif kind == "log":
            self._line(f"  [{p.get('level', 'info')}] {p.get('message', '')}")
        elif kind in END_EVENT_TYPES:
            self.final = kind
            self.answer = p.get("result")
            self.error = p.get("error")
            if self.live:
                self.out.write("\r\x1b[K")
            detail = f": {self.error['detail']} ({self.error['code']})" if self.error else ""
            self.out.write(f"■ {kind} after {p.get('steps_taken', '?')} steps{detail}\n")
            self.out.flush()


async def _run(config: Config, goal: str, agent: str | None, max_steps: int | None,
               err: TextIO, out: TextIO) -> int:
    from armillary._kernel import build_kernel

    kernel = build_kernel(config)
    await kernel.start()
    printer = ProgressPrinter(err, live=err.isatty())
    run_id: str | None = None
    try:
        spec = kernel.agent(agent)
        # no strategy named: the runner takes the agent's, else [kernel] default_strategy
        run = await kernel.runner.submit(Run(
            goal=goal, agent=spec.name, max_steps=max_steps or spec.max_steps or 50))
        run_id = run.id

        async def ticker() -> None:
            while True:
                await asyncio.sleep(0.1)
                printer.tick()

        ticking = asyncio.create_task(ticker())
        try:
            async for batch in follow_run(kernel.store, kernel.bus, run.id, idle_timeout=1.0):
                for event in batch:
                    printer.event(event)
        finally:
            ticking.cancel()
        if printer.answer is not None:
            out.write(printer.answer.rstrip("\n") + "\n")
            out.flush()
        return 0 if printer.final == RunStatus.COMPLETED.value else 1
    except asyncio.CancelledError:
        if run_id is not None:
            await kernel.runner.cancel(run_id)
        raise
    finally:
        await kernel.stop()


def run_goal(config: Config, goal: str, *, agent: str | None = None,
             max_steps: int | None = None) -> int:
    """Run `goal` to the end in this process; return the exit code."""
    from armillary._errors import ArmillaryError

    config.kernel = config.kernel.model_copy(update={"store": "memory://"})
    try:
        return asyncio.run(_run(config, goal, agent, max_steps, sys.stderr, sys.stdout))
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted: the run was cancelled\n")
        return 130
    except ArmillaryError as exc:
        sys.stderr.write(f"armillary: {exc.detail} ({exc.code})\n")
        return 1
