"""The task API over HTTP (§5 and §5.3 of the Pori roadmap), served on a loopback port."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from armillary._errors import ProviderUnavailable
from armillary._models import ToolCall
from armillary.testing import Turn
from tests.plugins.tasks.served import tasks_server

SLOW = Turn(text=" ".join(["word"] * 400), delay=0.02)


def calc(expression: str) -> ToolCall:
    return ToolCall(name="calculator", arguments={"expression": expression})


async def test_submit_then_poll_status_and_result_until_done() -> None:
    async with tasks_server([Turn(text="four", delay=0.05)]) as s:
        r = await s.client.post("/v1/tasks", json={"task": "2+2?"})
        assert r.status_code == 202
        body = r.json()
        assert body["status"] == "queued" and body["stream_url"].endswith(body["task_id"])
        early = await s.client.get(f"/v1/tasks/{body['task_id']}/result")
        assert early.status_code == 202 and early.json()["success"] is None
        status = await s.finished(body["task_id"])
        assert status["status"] == "completed" and status["success"] is True
        assert status["steps_taken"] == 1 and status["started_at"] is not None
        result = await s.client.get(f"/v1/tasks/{body['task_id']}/result")
        assert result.status_code == 200
        assert result.json()["final_answer"] == "four" and result.json()["success"] is True


async def test_submit_with_wait_answers_with_the_result() -> None:
    async with tasks_server(["done and dusted"]) as s:
        r = await s.client.post("/v1/tasks", json={"task": "go", "wait": True})
        assert r.status_code == 200
        assert r.json()["final_answer"] == "done and dusted"


async def test_a_run_with_tool_calls_fills_steps_tools_plan_and_memory() -> None:
    turns = [
        Turn(text="Let me plan.", tool_calls=[ToolCall(
            name="update_plan", arguments={"steps": ["compute", "answer"],
                                           "reflection": "simple arithmetic"})]),
        Turn(tool_calls=[calc("6*7"), calc("2**10")]),
        Turn(text="42 and 1024"),
    ]
    async with tasks_server(turns) as s:
        task_id = await s.submit("compute things")
        await s.finished(task_id)
        steps = (await s.client.get(f"/v1/tasks/{task_id}/steps")).json()
        assert steps["total"] == 3
        assert [i["step_number"] for i in steps["items"]] == [1, 2, 3]
        assert steps["items"][1]["tool_calls"] == [{"tool_name": "calculator", "success": True}] * 2
        page = (await s.client.get(f"/v1/tasks/{task_id}/steps?limit=1&offset=2")).json()
        assert [i["step_number"] for i in page["items"]] == [3]

        tools = (await s.client.get(f"/v1/tasks/{task_id}/tools")).json()
        assert tools["total"] == 3
        results = {i["parameters"].get("expression"): i["result"] for i in tools["items"]}
        assert results["6*7"]["result"] == 42 and results["2**10"]["result"] == 1024
        latest = (await s.client.get(f"/v1/tasks/{task_id}/tools?limit=1")).json()
        assert len(latest["items"]) == 1 and latest["items"][0]["tool_name"] == "calculator"

        plan = (await s.client.get(f"/v1/tasks/{task_id}/plan")).json()
        assert plan["current_plan"] == ["compute", "answer"]
        assert plan["last_reflection"] == "simple arithmetic"

        memory = (await s.client.get(f"/v1/tasks/{task_id}/memory")).json()
        roles = [m["role"] for m in memory["working_messages"]]
        assert roles[0] == "system" and roles[1] == "user" and roles[-1] == "assistant"
        assert "calculator" in memory["summary"]

        result = (await s.client.get(f"/v1/tasks/{task_id}/result")).json()
        assert result["reasoning"] == "Let me plan."


async def test_failing_unknown_and_malformed_tool_calls_go_back_to_the_model() -> None:
    turns = [
        Turn(tool_calls=[ToolCall(name="explode", arguments={"reason": "kaboom"}),
                         ToolCall(name="no_such_tool", arguments={}),
                         ToolCall(name="calculator", arguments={"expr": 1})]),
        Turn(text="recovered"),
    ]
    async with tasks_server(turns) as s:
        task_id = await s.submit()
        status = await s.finished(task_id)
        assert status["status"] == "completed"
        items = (await s.client.get(f"/v1/tasks/{task_id}/tools")).json()["items"]
        by_name = {i["tool_name"]: i for i in items}
        assert not any(i["success"] for i in items)
        assert "kaboom" in by_name["explode"]["error"]["detail"]
        assert by_name["no_such_tool"]["error"]["code"] == "unknown_tool"
        assert by_name["calculator"]["error"]["code"] == "invalid_tool_arguments"
        tool_messages = [m for m in s.provider.requests[1].messages if m.role == "tool"]
        assert len(tool_messages) == 3 and all("error" in m.content for m in tool_messages)


async def test_unknown_task_is_404_task_not_found_everywhere() -> None:
    async with tasks_server() as s:
        for method, path in [("GET", ""), ("GET", "/result"), ("DELETE", ""),
                             ("GET", "/steps"), ("GET", "/plan"), ("GET", "/tools"),
                             ("GET", "/memory")]:
            r = await s.client.request(method, f"/v1/tasks/nope{path}")
            assert r.status_code == 404, path
            assert r.json() == {"detail": "no task 'nope'", "code": "task_not_found"}
        r = await s.client.post("/v1/tasks/nope/control", json={"action": "pause"})
        assert r.status_code == 404 and r.json()["code"] == "task_not_found"


@pytest.mark.parametrize("max_steps", [0, -1, 1001, "many"])
async def test_max_steps_out_of_range_is_422(max_steps: object) -> None:
    async with tasks_server() as s:
        r = await s.client.post("/v1/tasks", json={"task": "x", "max_steps": max_steps})
        assert r.status_code == 422 and r.json()["code"] == "validation_error"


async def test_an_empty_task_and_an_unknown_agent_are_refused() -> None:
    async with tasks_server() as s:
        assert (await s.client.post("/v1/tasks", json={"task": ""})).status_code == 422
        r = await s.client.post("/v1/tasks", json={"task": "x", "agent": "ghost"})
        assert r.status_code == 404 and r.json()["code"] == "agent_not_found"


async def test_agents_from_plugins_toml_are_used_by_name() -> None:
    config = {"agents": {"terse": {"instructions": "Be terse.", "tools": ["calculator"],
                                   "max_steps": 3}}}
    async with tasks_server(["ok"], config=config) as s:
        task_id = await s.submit(agent="terse")
        status = await s.finished(task_id)
        assert status["agent"] == "terse" and status["max_steps"] == 3
        request = s.provider.requests[0]
        assert request.messages[0].content == "Be terse."
        assert [t.name for t in request.tools or []] == ["calculator", "update_plan"]


async def test_pause_resume_and_stop_through_control() -> None:
    nap = Turn(tool_calls=[ToolCall(name="nap", arguments={"seconds": 0.2})])
    async with tasks_server([nap] * 6 + ["finished"]) as s:
        task_id = await s.submit()
        for _ in range(500):  # running: the first step's tool call is in flight
            if s.provider.requests:
                break
            await asyncio.sleep(0.01)
        r = await s.client.post(f"/v1/tasks/{task_id}/control", json={"action": "pause"})
        assert r.status_code == 200 and r.json()["new_status"] == "paused"
        for _ in range(500):  # the step in flight finishes, then the run holds
            if await steps(s, task_id) >= 1:
                break
            await asyncio.sleep(0.01)
        held_steps, held_requests = await steps(s, task_id), len(s.provider.requests)
        await asyncio.sleep(0.6)  # three naps' worth: a run that did not hold would move on
        assert await steps(s, task_id) == held_steps
        assert len(s.provider.requests) == held_requests
        assert (await s.client.get(f"/v1/tasks/{task_id}")).json()["status"] == "paused"

        r = await s.client.post(f"/v1/tasks/{task_id}/control", json={"action": "resume"})
        assert r.json()["new_status"] == "running"
        for _ in range(500):  # it goes on
            if await steps(s, task_id) > held_steps:
                break
            await asyncio.sleep(0.01)
        assert await steps(s, task_id) > held_steps
        r = await s.client.post(f"/v1/tasks/{task_id}/control", json={"action": "stop"})
        assert r.json()["new_status"] == "stopped"
        r = await s.client.post(f"/v1/tasks/{task_id}/control", json={"action": "resume"})
        assert r.status_code == 409
        assert r.json()["code"] == "task_finished" and r.json()["status"] == "stopped"
        bad = await s.client.post(f"/v1/tasks/{task_id}/control", json={"action": "explode"})
        assert bad.status_code == 422


async def steps(s: Any, task_id: str) -> int:
    total: int = (await s.client.get(f"/v1/tasks/{task_id}/steps")).json()["total"]
    return total


async def test_delete_cancels_a_running_task_and_then_conflicts() -> None:
    async with tasks_server([SLOW]) as s:
        task_id = await s.submit()
        r = await s.client.delete(f"/v1/tasks/{task_id}")
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        assert r.json()["success"] is False
        assert s.provider.open_streams == 0
        again = await s.client.delete(f"/v1/tasks/{task_id}")
        assert again.status_code == 409 and again.json()["status"] == "cancelled"


async def test_provider_down_fails_the_task_with_the_providers_code() -> None:
    async with tasks_server([Turn(error=ProviderUnavailable("connection refused"))]) as s:
        task_id = await s.submit()
        status = await s.finished(task_id)
        assert status["status"] == "failed"
        assert status["error"] == {"detail": "connection refused",
                                   "code": "provider_unavailable"}
        result = (await s.client.get(f"/v1/tasks/{task_id}/result")).json()
        assert result["success"] is False and result["error"]["code"] == "provider_unavailable"


async def test_a_client_leaving_a_waiting_request_cancels_its_task() -> None:
    async with tasks_server([SLOW]) as s:
        with pytest.raises(httpx.ReadTimeout):
            async with httpx.AsyncClient(base_url=s.url, timeout=0.3) as impatient:
                await impatient.post("/v1/tasks", json={"task": "slow", "wait": True})
        runs = await s.kernel.store.list_runs()
        run = await s.kernel.runner.wait(runs[0].id, timeout=5)
        assert run.status.value == "cancelled"


async def test_a_client_leaving_a_stream_does_not_cancel_the_task() -> None:
    async with tasks_server([Turn(text="a b c d e f", delay=0.05)]) as s:
        task_id = await s.submit()
        async with s.client.stream("GET", f"/v1/stream/tasks/{task_id}") as response:
            async for _ in response.aiter_lines():
                break
        status = await s.finished(task_id)
        assert status["status"] == "completed"


async def test_tools_are_listed_with_pagination() -> None:
    async with tasks_server() as s:
        body = (await s.client.get("/v1/tools")).json()
        names = [t["name"] for t in body["items"]]
        assert body["total"] == 5 and names == sorted(names)
        assert {"calculator", "current_time"} <= set(names)
        page = (await s.client.get("/v1/tools?limit=1&offset=1")).json()
        assert [t["name"] for t in page["items"]] == [names[1]]
        assert (await s.client.get("/v1/tools?limit=0")).status_code == 422


async def test_tasks_are_listed_newest_first() -> None:
    async with tasks_server(["ok"]) as s:
        first, second = await s.submit("one"), await s.submit("two")
        await s.finished(first)
        await s.finished(second)
        body = (await s.client.get("/v1/tasks?status=completed")).json()
        assert [t["task_id"] for t in body["items"]] == [second, first]
