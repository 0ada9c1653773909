"""`register_services` (one plugin offers, another's route uses it through
`kernel.service`) and the lifecycle hooks `startup` / `shutdown`, on a served app."""

from __future__ import annotations

import abc
import asyncio
from typing import Any

import armillary_tasks
import httpx
import pytest
from fastapi import APIRouter

from armillary import RunContext, Strategy, hookimpl
from armillary._deps import KernelDep
from armillary._errors import RegistrationError
from armillary.testing import make_app, make_kernel, serve_app


class Clock(abc.ABC):
    """A service interface (the kernel defines real ones, e.g. `EventStreams`)."""

    @abc.abstractmethod
    def now(self) -> str: ...


class FixedClock(Clock):
    def __init__(self, at: str) -> None:
        self.at = at

    def now(self) -> str:
        return self.at


class ClockPlugin:
    def __init__(self, at: str = "noon") -> None:
        self.at = at

    @hookimpl
    def register_services(self, register: Any) -> None:
        register(Clock, FixedClock(self.at))


time_router = APIRouter()


@time_router.get("/time")
async def what_time(kernel: KernelDep) -> dict[str, str]:
    return {"now": kernel.service(Clock).now()}


class TimeRoutes:
    """Uses the service without knowing which plugin offers it."""

    @hookimpl
    def register_routers(self, register: Any) -> None:
        register(time_router)


async def test_a_route_uses_the_service_another_plugin_offers() -> None:
    app = make_app({"time": TimeRoutes(), "clock": ClockPlugin("noon")})
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url) as client:
        answer = await client.get("/time")
        plugins = {p["name"]: p for p in (await client.get("/v1/plugins")).json()["plugins"]}
    assert answer.status_code == 200 and answer.json() == {"now": "noon"}
    assert plugins["clock"]["registered"]["services"] == ["Clock"]


async def test_without_a_plugin_offering_it_the_route_answers_503_naming_the_service() -> None:
    async with serve_app(make_app({"time": TimeRoutes()})) as url, \
            httpx.AsyncClient(base_url=url) as client:
        answer = await client.get("/time")
    assert answer.status_code == 503
    assert answer.json()["code"] == "service_unavailable"
    assert answer.json()["service"] == "Clock"


def test_two_plugins_offering_one_service_are_refused_naming_both() -> None:
    with pytest.raises(RegistrationError, match="service Clock is registered by both "
                                                "plugin 'a' and plugin 'b'"):
        make_kernel({"a": ClockPlugin(), "b": ClockPlugin()})


class Forever(Strategy):
    name = "forever"

    async def execute(self, ctx: RunContext) -> str | None:
        await asyncio.Event().wait()
        return None


class Lifecycle:
    """Keeps state from `startup` and, in `shutdown`, records what it could still see."""

    def __init__(self) -> None:
        self.seen: dict[str, Any] = {}

    @hookimpl
    def register_strategies(self, register: Any) -> None:
        register(Forever())

    @hookimpl
    async def startup(self, kernel: Any) -> None:
        kernel.state["lifecycle"] = {"started": kernel.store is not None}

    @hookimpl
    async def shutdown(self, kernel: Any) -> None:
        runs = await kernel.store.list_runs(limit=10)  # the store is still open
        self.seen = {"state": kernel.state.get("lifecycle"),
                     "statuses": [r.status.value for r in runs]}


async def test_startup_state_is_there_and_shutdown_sees_runs_ended_with_the_store_open() -> None:
    plugin = Lifecycle()
    app = make_app({"tasks": armillary_tasks, "life": plugin},
                   {"agents": {"default": {"strategy": "forever"}}})
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        created = await client.post("/v1/tasks", json={"task": "never ends"})
        task_id = created.json()["task_id"]
        for _ in range(200):
            if (await client.get(f"/v1/tasks/{task_id}")).json()["status"] == "running":
                break
            await asyncio.sleep(0.02)
    assert plugin.seen == {"state": {"started": True}, "statuses": ["interrupted"]}


class Ordered:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    @hookimpl
    async def startup(self, kernel: Any) -> None:
        self.log.append(f"start {self.name}")

    @hookimpl
    async def shutdown(self, kernel: Any) -> None:
        self.log.append(f"stop {self.name}")


async def test_plugins_shut_down_in_the_reverse_of_their_startup_order() -> None:
    log: list[str] = []
    app = make_app({"first": Ordered("first", log), "second": Ordered("second", log),
                    "third": Ordered("third", log)})
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/health")).status_code == 200
    assert log == ["start first", "start second", "start third",
                   "stop third", "stop second", "stop first"]
