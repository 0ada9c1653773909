"""Built-ins lose to real plugins: a plugin's strategy, route or event type under a
built-in's name replaces it; two real plugins claiming one name still stop startup."""

from __future__ import annotations

import logging
from typing import Any

import armillary_tasks
import httpx
import pytest
from fastapi import APIRouter
from pydantic import BaseModel

from armillary import RunContext, Strategy, hookimpl
from armillary._errors import RegistrationError
from armillary.testing import make_app, make_kernel, serve_app


class ReplacementAgent(Strategy):
    """Registered as `single_agent`: answers without any provider, so only it can."""

    name = "single_agent"

    async def execute(self, ctx: RunContext) -> str | None:
        await ctx.checkpoint()
        await ctx.emit("step", {"step_number": 1, "success": True})
        return f"replacement says: {ctx.run.goal}"


class ReplacesSingleAgent:
    @hookimpl
    def register_strategies(self, register: Any) -> None:
        register(ReplacementAgent())


async def run_task(url: str, goal: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        created = await client.post("/v1/tasks", json={"task": goal, "wait": True})
        assert created.status_code == 200, created.text
        return created.json()  # type: ignore[no-any-return]


async def test_a_plugin_strategy_named_single_agent_runs_the_task_apis_runs(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="armillary")
    app = make_app({"tasks": armillary_tasks, "mine": ReplacesSingleAgent()})
    assert "strategy 'single_agent' of plugin 'mine' replaces the built-in one of " \
           "'builtin:single_agent'" in caplog.text
    async with serve_app(app) as url:
        result = await run_task(url, "hello")
        assert result["status"] == "completed"
        assert result["final_answer"] == "replacement says: hello"
        async with httpx.AsyncClient(base_url=url) as client:
            plugins = {p["name"]: p for p in (await client.get("/v1/plugins")).json()["plugins"]}
    assert plugins["mine"]["registered"]["strategies"] == ["single_agent"]
    assert "strategies" not in plugins["builtin:single_agent"]["registered"]


class PluginHealth:
    def __init__(self) -> None:
        self.router = APIRouter()
        self.router.add_api_route("/health", self.health, methods=["GET"])

    async def health(self) -> dict[str, str]:
        return {"status": "mine"}

    @hookimpl
    def register_routers(self, register: Any) -> None:
        register(self.router)


async def test_a_plugins_health_route_replaces_the_builtin_one_only_on_that_path(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="armillary")
    async with serve_app(make_app({"prober": PluginHealth()})) as url, \
            httpx.AsyncClient(base_url=url) as client:
        mine = await client.get("/health")
        builtin = await client.get("/v1/health")
        plugins = {p["name"]: p for p in (await client.get("/v1/plugins")).json()["plugins"]}
        paths = (await client.get("/openapi.json")).json()["paths"]
    assert mine.json() == {"status": "mine"}
    assert builtin.status_code == 200 and builtin.json()["ready"] is True  # still built in
    assert plugins["prober"]["registered"]["routes"] == ["GET /health"]
    assert plugins["builtin:health"]["registered"]["routes"] == ["GET /v1/health"]
    assert set(paths["/health"]) == {"get"}
    assert "route GET /health of plugin 'prober' replaces the built-in one of " \
           "'builtin:health'" in caplog.text


async def test_another_kernel_still_has_the_builtin_health_route() -> None:
    """Replacing a built-in route never changes the built-in's shared router."""
    make_app({"prober": PluginHealth()})
    async with serve_app(make_app()) as url, httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/health")).json()["ready"] is True


class StrictStep(BaseModel):
    step_number: int
    note: str


class DeclaresStep:
    @hookimpl
    def register_event_types(self, register: Any) -> None:
        register("step", StrictStep)


async def test_a_plugins_event_type_replaces_the_builtin_declaration() -> None:
    """The replacement's payload model is the one a run's events are checked against:
    `ReplacementAgent` emits a `step` without the `note` this model requires."""
    app = make_app({"tasks": armillary_tasks, "mine": ReplacesSingleAgent(),
                    "steps": DeclaresStep()})
    assert app.state.kernel.registry.event_types["step"].plugin == "steps"
    async with serve_app(app) as url:
        result = await run_task(url, "hello")
    assert result["status"] == "failed"
    assert result["error"]["code"] == "invalid_event_payload"
    assert "StrictStep" in result["error"]["detail"] and "'steps'" in result["error"]["detail"]
    assert "note" in result["error"]["detail"]


def test_two_real_plugins_registering_one_strategy_are_refused_naming_both() -> None:
    with pytest.raises(RegistrationError) as info:
        make_kernel({"first": ReplacesSingleAgent(), "second": ReplacesSingleAgent()})
    assert "strategy 'single_agent' is registered by both plugin 'first' and plugin " \
           "'second'" in str(info.value)
    assert "builtin" not in str(info.value)


def test_two_real_plugins_claiming_the_builtins_route_are_refused_naming_both() -> None:
    with pytest.raises(RegistrationError) as info:
        make_app({"one": PluginHealth(), "two": PluginHealth()})
    assert "route GET /health is claimed by both plugin 'one' and plugin 'two'" \
        in str(info.value)


def test_a_plugin_registering_one_name_twice_is_told_so() -> None:
    class Twice:
        @hookimpl
        def register_strategies(self, register: Any) -> None:
            register(ReplacementAgent())
            register(ReplacementAgent())

    with pytest.raises(RegistrationError, match="plugin 'twice' registered strategy "
                                                "'single_agent' twice"):
        make_kernel({"twice": Twice()})
