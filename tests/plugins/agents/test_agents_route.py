"""GET /agents: every agent with provider, model, tools and status counters."""

from __future__ import annotations

from typing import Any

import armillary_agents
import armillary_chat
import httpx
from armillary_agents.activity import CHAT_TURN_EVENT, AgentActivity
from armillary_agents.routes import describe

from armillary import AgentSpec, Event, ProviderUnavailable, hookimpl, tool
from armillary.testing import ScriptedProvider, Turn, make_app, serve_app
from tests.plugins.chat.conftest import ChatServer
from tests.plugins.chat.test_chat_stream import eventually


@tool
def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


@tool
def shout(text: str) -> str:
    """Upper-case text."""
    return text.upper()


class ToolsPlugin:
    @hookimpl
    def register_tools(self, register):  # type: ignore[no-untyped-def]
        register(add)
        register(shout)


def by_name(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["name"]: a for a in body["agents"]}


async def test_lists_every_agent_with_provider_model_and_tools(chat_server: ChatServer) -> None:
    config = {"agents": {"calc": {"description": "Does sums", "tools": ["add"],
                                  "model": "tiny-1"}}}
    async with chat_server(config=config, extra={"tools": ToolsPlugin()}) as s:
        r = await s.client.get("/agents")
    assert r.status_code == 200
    agents = by_name(r.json())
    assert set(agents) == {"general", "default", "calc"}
    calc = agents["calc"]
    assert calc["description"] == "Does sums"
    assert (calc["provider"], calc["model"], calc["tools"]) == ("scripted", "tiny-1", ["add"])
    assert calc["registered_by"] == "plugins.toml"
    general = agents["general"]
    assert (general["provider"], general["model"]) == ("scripted", "scripted-1")
    # /chat sends no tools, so the chat plugin's general claims none (capabilities neither)
    assert (general["tools"], general["capabilities"]) == ([], [])
    assert sorted(agents["default"]["tools"]) == ["add", "shout"]  # tools unset = every tool
    assert general["registered_by"] == "chat"
    assert general["agent_id"] == "general"
    assert general["status"] == "available"


async def test_counters_follow_chat_turns(chat_server: ChatServer) -> None:
    turns = [Turn(text="ok"), Turn(text="ok"), Turn(error=ProviderUnavailable("down")),
             Turn(text="a b c", fail_after=1)]
    async with chat_server(turns) as s:
        await s.client.post("/chat", json={"message": "1"})
        await s.client.post("/chat", json={"message": "2", "stream": True})
        await s.client.post("/chat", json={"message": "3"})
        await s.client.post("/chat", json={"message": "4", "stream": True})
        agents = by_name((await s.client.get("/agents")).json())
    general, default = agents["general"], agents["default"]
    assert (general["task_count"], general["success_count"], general["error_count"],
            general["partial_count"]) == (4, 2, 2, 1)
    assert general["success_rate"] == 0.5
    assert general["avg_task_duration"] is not None
    assert general["last_active_at"] is not None
    assert general["last_error_code"] == "provider_error"
    assert (default["task_count"], default["last_active_at"]) == (0, None)


async def test_an_agent_whose_provider_is_missing_is_listed_as_unavailable(
        chat_server: ChatServer) -> None:
    # the kernel refuses such an agent in plugins.toml at startup, so describe it directly
    async with chat_server() as s:
        remote = describe(s.kernel, "x", AgentSpec(name="remote", provider="elsewhere",
                                                   model="m"), None)
    assert (remote["status"], remote["provider"], remote["model"]) == (
        "unavailable", "elsewhere", "m")


async def test_agents_work_without_the_chat_plugin() -> None:
    class Providers:
        @hookimpl
        def register_providers(self, register):  # type: ignore[no-untyped-def]
            register(ScriptedProvider(), default=True)

    app = make_app({"agents": armillary_agents, "p": Providers()})
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url) as client:
        agents = by_name((await client.get("/agents")).json())
    assert set(agents) == {"default"}


async def test_a_plugins_toml_agent_overrides_the_chat_plugins_general() -> None:
    app = make_app({"chat": armillary_chat, "agents": armillary_agents},
                   config={"agents": {"general": {"description": "mine",
                                                  "instructions": "Be terse."}}})
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url) as client:
        general = by_name((await client.get("/agents")).json())["general"]
    assert (general["description"], general["registered_by"]) == ("mine", "plugins.toml")
    assert general["status"] == "unavailable"  # no provider enabled at all


def test_an_error_without_a_code_does_not_blank_last_error_code() -> None:
    activity = AgentActivity()

    def event(**payload: Any) -> Event:
        return Event(id="e", run_id="r", seq=2, type=CHAT_TURN_EVENT,
                     payload={"agent": "a", "duration_s": 0.1, **payload})

    activity.record(event(ok=False, code="provider_timeout"))
    activity.record(event(ok=False, partial=True, disconnected=True,
                          code="client_closed_request"))
    assert activity.of("a").last_error_code == "provider_timeout"
    activity.record(event(ok=False, code=None))
    counters = activity.of("a")
    assert (counters.task_count, counters.error_count, counters.partial_count) == (3, 2, 1)
    assert counters.last_error_code == "unknown_error"


async def test_counters_follow_runs_from_the_firehose(chat_server: ChatServer) -> None:
    # runs submitted to the kernel (what the tasks and agents routes do) are counted by
    # their agent from the runner's events on the firehose: no plugin tells /agents
    from armillary import Run

    turns = [Turn(text="done"), Turn(error=ProviderUnavailable("down")),
             Turn(text="slow " * 50, delay=0.2)]
    async with chat_server(turns) as s:
        runner = s.kernel.runner
        ok = await runner.submit(Run(goal="one", agent="default"))
        await runner.wait(ok.id, timeout=10)
        failed = await runner.submit(Run(goal="two", agent="default"))
        await runner.wait(failed.id, timeout=10)
        slow = await runner.submit(Run(goal="three", agent="default"))

        async def started() -> bool:
            return len(s.provider.requests) == 3

        await eventually(started)
        await runner.cancel(slow.id)
        await runner.wait(slow.id, timeout=10)
        agents = by_name((await s.client.get("/agents")).json())
    default, general = agents["default"], agents["general"]
    assert (default["task_count"], default["success_count"], default["error_count"],
            default["partial_count"]) == (3, 1, 1, 1)
    assert default["last_error_code"] == "provider_unavailable"
    assert default["avg_task_duration"] is not None
    assert general["task_count"] == 0


def test_run_end_events_without_a_queued_event_are_not_counted_and_open_runs_are_bounded(
        ) -> None:
    from armillary_agents import activity as module

    activity = AgentActivity()

    def event(run_id: str, type: str, **payload: Any) -> Event:
        return Event(id=f"e-{run_id}-{type}", run_id=run_id, seq=1, type=type, payload=payload)

    activity.record(event("stranger", "completed"))
    assert activity.of("default").task_count == 0
    for i in range(module.MAX_OPEN_RUNS + 5):
        activity.record(event(f"r{i}", "queued", agent="default"))
    assert len(activity.open_runs) == module.MAX_OPEN_RUNS
    activity.record(event("r0", "completed"))  # dropped: its end goes uncounted
    activity.record(event(f"r{module.MAX_OPEN_RUNS}", "failed",
                          error={"detail": "x", "code": "provider_timeout"}))
    counters = activity.of("default")
    assert (counters.task_count, counters.error_count) == (1, 1)
    assert counters.last_error_code == "provider_timeout"
