"""The factory hooks (`make_store`, `make_event_bus`, `make_runner`): each plugin is asked
in hook order with its own settings, until one answers; the built-ins answer last."""

from __future__ import annotations

from typing import Any

import armillary_tasks
import httpx
import pytest
from pydantic import BaseModel

from armillary import Event, RunContext, Strategy, hookimpl
from armillary._errors import StartupError
from armillary._events import FIREHOSE
from armillary._local_bus import LocalEventBus
from armillary._local_runner import LocalRunner
from armillary._memory_store import MemoryRunStore
from armillary.testing import make_app, make_kernel, serve_app


class Echo(Strategy):
    name = "echo"

    async def execute(self, ctx: RunContext) -> str | None:
        return ctx.run.goal


class VaultSettings(BaseModel):
    label: str


class VaultStore(MemoryRunStore):
    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label


class CountingBus(LocalEventBus):
    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label
        self.published: list[tuple[str, Event]] = []

    async def publish(self, topic: str, event: Event) -> None:
        self.published.append((topic, event))
        await super().publish(topic, event)


class LabelledRunner(LocalRunner):
    def __init__(self, kernel: Any, label: str) -> None:
        super().__init__(kernel)
        self.label = label


class Vault:
    """Handles `vault://` stores, and provides a bus and a runner, all labelled with
    this plugin's own `label` setting."""

    @hookimpl
    def settings_model(self) -> type[VaultSettings]:
        return VaultSettings

    @hookimpl
    def register_strategies(self, register: Any) -> None:
        register(Echo())

    @hookimpl
    def make_store(self, url: str, settings: VaultSettings) -> VaultStore | None:
        return VaultStore(settings.label) if url.startswith("vault://") else None

    @hookimpl
    def make_event_bus(self, settings: VaultSettings) -> CountingBus:
        return CountingBus(settings.label)

    @hookimpl
    def make_runner(self, kernel: Any, settings: VaultSettings) -> LabelledRunner:
        return LabelledRunner(kernel, settings.label)


class OtherSettings(BaseModel):
    label: str = "other"


class Other:
    """Another plugin with settings: it must never be handed the vault's."""

    @hookimpl
    def settings_model(self) -> type[OtherSettings]:
        return OtherSettings

    @hookimpl
    def make_store(self, url: str, settings: OtherSettings) -> None:
        assert isinstance(settings, OtherSettings)
        return None

    @hookimpl
    def make_event_bus(self, settings: OtherSettings) -> None:
        assert isinstance(settings, OtherSettings)
        return None


CONFIG = {"kernel": {"store": "vault://runs"}, "plugins": {"vault": {"label": "blue"}},
          "agents": {"default": {"strategy": "echo"}}}


async def test_a_plugins_store_bus_and_runner_are_built_with_its_settings_and_used() -> None:
    app = make_app({"tasks": armillary_tasks, "other": Other(), "vault": Vault()}, CONFIG)
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        kernel = app.state.kernel
        done = await client.post("/v1/tasks", json={"task": "kept", "wait": True})
        assert done.json()["final_answer"] == "kept"
        task_id = done.json()["task_id"]
        assert isinstance(kernel.store, VaultStore) and kernel.store.label == "blue"
        assert isinstance(kernel.bus, CountingBus) and kernel.bus.label == "blue"
        assert isinstance(kernel.runner, LabelledRunner) and kernel.runner.label == "blue"
        # the run went through them: stored in the vault, published on its bus
        assert (await kernel.store.get_run(task_id)).result == "kept"
        topics = {t for t, e in kernel.bus.published if e.run_id == task_id}
        assert topics == {task_id, FIREHOSE}


class EagerBus:
    @hookimpl(tryfirst=True)
    def make_event_bus(self) -> CountingBus:
        return CountingBus("eager")


async def test_a_tryfirst_factory_is_asked_before_plugins_loaded_earlier() -> None:
    app = make_app({"tasks": armillary_tasks, "vault": Vault(), "eager": EagerBus()}, CONFIG)
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        done = await client.post("/v1/tasks", json={"task": "hi", "wait": True})
        assert done.json()["status"] == "completed"
        bus = app.state.kernel.bus
        assert bus.label == "eager"
        assert any(e.run_id == done.json()["task_id"] for _, e in bus.published)


async def test_a_plugin_answering_none_leaves_it_to_the_builtins() -> None:
    app = make_app({"tasks": armillary_tasks, "other": Other(), "vault": Vault()},
                   {**CONFIG, "kernel": {"store": "memory://"}})
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        done = await client.post("/v1/tasks", json={"task": "hi", "wait": True})
        assert done.json()["status"] == "completed"
        store = app.state.kernel.store
        assert type(store) is MemoryRunStore  # vault and other declined memory://


async def test_a_factory_that_raises_stops_startup_naming_its_plugin() -> None:
    class Broken:
        @hookimpl
        def make_runner(self) -> None:
            raise RuntimeError("no queue")

    kernel = make_kernel({"broken": Broken()})
    with pytest.raises(StartupError, match="plugin 'broken' failed in make_runner: "
                                           "RuntimeError: no queue"):
        await kernel.start()
    await kernel.stop()
