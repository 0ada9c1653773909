"""The built-in store (memory, SQLite), local event bus and local asyncio runner, and the
run lifecycle event types every runner emits.

The factories are asked last (after every real plugin), so a plugin that handles the same
store scheme or provides a bus or runner (Redis, say) wins.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from armillary import hookimpl
from armillary._config import Config
from armillary._events import EventBus
from armillary._hookspecs import RegisterEventType
from armillary._kernel import Kernel
from armillary._models import ErrorInfo, RunStatus
from armillary._runner import Runner
from armillary._store import RunStore


class LifecyclePayload(BaseModel):
    """A lifecycle event (`queued`, `running`, `paused`, and the ends `completed`,
    `failed`, `cancelled`, `stopped`, `interrupted`): the status the run entered. `queued`
    adds the goal, agent, strategy and max_steps; an end adds the result, the error and
    `steps_taken`; `paused` a detail, a resume `resumed`."""

    model_config = ConfigDict(extra="allow")

    status: RunStatus
    result: str | None = None
    error: ErrorInfo | None = None
    steps_taken: int | None = None


@hookimpl(trylast=True)
def register_event_types(register: RegisterEventType) -> None:
    for status in RunStatus:
        register(status.value, LifecyclePayload)


@hookimpl(trylast=True)
def make_store(url: str, config: Config, settings: Any) -> RunStore | None:
    if url.startswith("memory://"):
        from armillary._memory_store import MemoryRunStore

        return MemoryRunStore()
    if url.startswith("sqlite://"):
        from armillary._sqlite_store import SQLiteRunStore

        return SQLiteRunStore(url)
    return None


@hookimpl(trylast=True)
def make_event_bus(config: Config, settings: Any) -> EventBus:
    from armillary._local_bus import LocalEventBus

    return LocalEventBus()


@hookimpl(trylast=True)
def make_runner(kernel: Kernel, settings: Any) -> Runner:
    from armillary._local_runner import LocalRunner

    return LocalRunner(kernel)
