"""The runner interface: executes strategies for runs as background work.

Lifecycle: queued → running ⇄ paused → completed | failed | cancelled | stopped
(and interrupted, for runs found running after a crash).
"""

from __future__ import annotations

import abc

from armillary._models import ErrorInfo, Run


class Runner(abc.ABC):
    async def start(self) -> None:  # noqa: B027 - optional
        """Begin accepting work (and recover runs a previous process left behind)."""

    async def stop(self) -> None:  # noqa: B027 - optional
        """Stop accepting work; in-flight runs are ended (`interrupted`) or left for another
        worker. May be called more than once: `Kernel.request_shutdown()` calls it as soon as
        a signal arrives, and `Kernel.stop()` again at the end."""

    @abc.abstractmethod
    async def submit(self, run: Run) -> Run:
        """Store the run as queued and schedule it. Returns the stored run."""

    @abc.abstractmethod
    async def cancel(self, run_id: str, *, error: ErrorInfo | None = None) -> Run:
        """Cancel a run now, stopping in-flight provider streams and tool calls. `error`
        is recorded as why (its `code`, e.g. a caller's `task_timeout`); by default
        `cancelled`."""

    @abc.abstractmethod
    async def stop_run(self, run_id: str, *, error: ErrorInfo | None = None) -> Run:
        """The seed's "stop" control: end the run now with status `stopped` (`error` as
        for `cancel`)."""

    @abc.abstractmethod
    async def pause(self, run_id: str) -> Run:
        """Pause at the next step boundary."""

    @abc.abstractmethod
    async def resume(self, run_id: str) -> Run: ...

    @abc.abstractmethod
    async def wait(self, run_id: str, timeout: float | None = None) -> Run:
        """Wait until the run is finished (or `timeout` passes) and return it."""
