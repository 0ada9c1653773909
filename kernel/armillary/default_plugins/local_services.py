"""The built-in store (memory, SQLite), local event bus and local asyncio runner.

Each is `trylast`, so a plugin that handles the same store scheme or provides a bus or
runner (Redis, say) wins.
"""

from __future__ import annotations

from armillary import hookimpl
from armillary.config import Config
from armillary.events import EventBus
from armillary.kernel import Kernel
from armillary.runner import Runner
from armillary.store import RunStore


@hookimpl(trylast=True)
def make_store(url: str) -> RunStore | None:
    if url.startswith("memory://"):
        from armillary.memory_store import MemoryRunStore

        return MemoryRunStore()
    if url.startswith("sqlite://"):
        from armillary.sqlite_store import SQLiteRunStore

        return SQLiteRunStore(url)
    return None


@hookimpl(trylast=True)
def make_event_bus(config: Config) -> EventBus:
    from armillary.local_bus import LocalEventBus

    return LocalEventBus()


@hookimpl(trylast=True)
def make_runner(kernel: Kernel) -> Runner:
    from armillary.local_runner import LocalRunner

    return LocalRunner(kernel)
