"""The multi-agent seed's routes with its own bodies: /agents/{id}/execute through the
runner (priority, timeout), /tasks, /agents/{id}/status and /system/status, over the real
Ollama plugin and the Ollama test server on loopback sockets."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest

from tests.plugins.agents.seed_server import eventually, seed_server
from tests.support.ollama_server import OllamaTestServer, Reply

#: the seed's models, field by field
TASK_RESULT = {"task_id", "status", "result", "error", "agent_used", "timestamp",
               "execution_time_seconds"}
AGENT_STATUS = {"agent_id", "agent_type", "status", "capabilities", "task_count",
                "success_count", "error_count", "success_rate", "avg_task_duration",
                "created_at", "last_active_at"}
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
RESPONSE_TIME = re.compile(r"^\d+\.\d\dms$")


def slow(tokens: int = 400, delay: float = 0.1) -> Reply:
    return Reply(text=" ".join(["slow"] * tokens), delay=delay)


async def test_execute_runs_the_task_and_answers_with_the_seeds_task_result() -> None:
    with OllamaTestServer(["The sum is 42."]) as ollama:
        async with seed_server(ollama) as s:
            r = await s.execute(operation="add the numbers", parameters={"a": 40, "b": 2},
                                priority="high", timeout_seconds=30)
            body = r.json()
            one = (await s.client.get(f"/tasks/{body['task_id']}")).json()
            pori = (await s.client.get(f"/v1/tasks/{body['task_id']}")).json()
            done = (await s.client.get("/tasks", params={"status": "completed"})).json()
            failed = (await s.client.get("/tasks", params={"status": "failed"})).json()
    assert r.status_code == 200, r.text
    assert set(body) >= TASK_RESULT
    assert (body["status"], body["agent_used"], body["error"]) == ("completed", "default", None)
    assert body["result"]["output"] == "The sum is 42."
    assert body["result"]["operation"] == "add the numbers"
    assert body["priority"] == "high"
    assert ISO_Z.match(body["timestamp"])
    assert body["execution_time_seconds"] > 0
    assert RESPONSE_TIME.match(r.headers["x-response-time"])
    # the model got the operation and its parameters
    sent = ollama.chat_requests[0].json["messages"][-1]["content"]
    assert "add the numbers" in sent and '{"a":40,"b":2}' in sent
    # one run, seen the same by /tasks/{id}, /tasks and /v1/tasks/{id}
    assert one == body
    assert pori["status"] == "completed" and pori["agent"] == "default"
    assert [t["task_id"] for t in done["tasks"]] == [body["task_id"]]
    assert failed == {"tasks": []}


async def test_tasks_lists_runs_of_the_task_api_too_newest_first_within_limit() -> None:
    with OllamaTestServer(default="ok") as ollama:
        async with seed_server(ollama) as s:
            first = (await s.client.post("/v1/tasks", json={"task": "one", "wait": True})).json()
            second = (await s.execute(operation="two")).json()
            listed = (await s.client.get("/tasks", params={"limit": 1})).json()
            both = (await s.client.get("/tasks")).json()
    assert [t["task_id"] for t in listed["tasks"]] == [second["task_id"]]
    assert [t["task_id"] for t in both["tasks"]] == [second["task_id"], first["task_id"]]
    assert both["tasks"][1]["result"]["output"] == "ok"
    assert both["tasks"][1]["priority"] is None  # not submitted here


@pytest.mark.parametrize(("body", "field"), [
    ({"operation": "x", "priority": "asap"}, "priority"),
    ({"operation": "x", "priority": "URGENT"}, "priority"),
    ({"operation": "x", "timeout_seconds": 0}, "timeout_seconds"),
    ({"operation": "x", "timeout_seconds": 3601}, "timeout_seconds"),
    ({"operation": "x", "parameters": "not an object"}, "parameters"),
    ({"operation": "x", "timeout_seconds": True}, "timeout_seconds"),
    ({"operation": "x", "timeout_seconds": "5"}, "timeout_seconds"),
    ({"operation": "x", "deadline": 5}, "deadline"),
    ({"parameters": {}}, "operation"),
])
async def test_an_invalid_task_request_is_a_422_naming_the_field(body: dict[str, Any],
                                                                 field: str) -> None:
    with OllamaTestServer() as ollama:
        async with seed_server(ollama) as s:
            r = await s.client.post("/agents/default/execute", json=body)
            tasks = (await s.client.get("/tasks")).json()
    assert r.status_code == 422
    assert r.json()["code"] == "validation_error"
    assert field in r.json()["detail"]
    assert tasks == {"tasks": []}  # nothing was run
    assert ollama.chat_requests == []


async def test_unknown_agents_and_tasks_are_404_with_a_code() -> None:
    with OllamaTestServer() as ollama:
        async with seed_server(ollama) as s:
            execute = await s.execute("nobody", operation="x")
            status = await s.client.get("/agents/nobody/status")
            task = await s.client.get("/tasks/run_missing")
            bad_status = await s.client.get("/tasks", params={"status": "sleeping"})
            bad_limit = await s.client.get("/tasks", params={"limit": 0})
    assert (execute.status_code, execute.json()["code"]) == (404, "agent_not_found")
    assert (status.status_code, status.json()["code"]) == (404, "agent_not_found")
    assert (task.status_code, task.json()["code"]) == (404, "task_not_found")
    assert (bad_status.status_code, bad_limit.status_code) == (422, 422)


async def test_the_timeout_ends_the_run_with_task_timeout_and_hangs_up_on_the_model() -> None:
    with OllamaTestServer(default=slow()) as ollama:
        async with seed_server(ollama) as s:
            r = await s.execute(operation="write forever", timeout_seconds=1)
            body = r.json()
            stored = (await s.client.get(f"/v1/tasks/{body['task_id']}")).json()
            hung_up = await asyncio.to_thread(ollama.wait_until,
                                              lambda: ollama.open_streams == 0, 5)
    assert r.status_code == 200
    assert (body["status"], body["error_code"]) == ("failed", "task_timeout")
    assert "timeout of 1 s" in body["error"]
    assert 0.9 < body["execution_time_seconds"] < 5
    assert stored["status"] == "failed" and stored["error"]["code"] == "task_timeout"
    assert hung_up and ollama.streams[0].client_closed
    assert ollama.streams[0].lines_sent < 100  # it did not generate to the end


async def test_priority_orders_the_waiting_tasks() -> None:
    replies = [slow(10, 0.05), "urgent done", "normal done", "low done", "low2 done"]
    with OllamaTestServer(replies) as ollama:
        async with seed_server(ollama, agents={"max_concurrent_executes": 1}) as s:
            first = asyncio.create_task(s.execute(operation="first"))
            assert await eventually(lambda: len(ollama.chat_requests) == 1)
            waiting = []
            for n, priority in enumerate(["low", "normal", "urgent", "low"], start=1):
                op = f"{priority}-{n}"
                waiting.append(asyncio.create_task(s.execute(operation=op, priority=priority)))
                assert await eventually(lambda n=n: s.state.admission.waiting == n)
            results = [r.json() for r in await asyncio.gather(first, *waiting)]
    order = [r.json["messages"][-1]["content"] for r in ollama.chat_requests]
    assert order == ["first", "urgent-3", "normal-2", "low-1", "low-4"]
    assert all(r["status"] == "completed" for r in results)


async def test_a_task_that_waits_its_turn_past_its_timeout_is_a_504() -> None:
    with OllamaTestServer([slow(40, 0.05)]) as ollama:
        async with seed_server(ollama, agents={"max_concurrent_executes": 1}) as s:
            first = asyncio.create_task(s.execute(operation="first"))
            assert await eventually(lambda: len(ollama.chat_requests) == 1)
            late = await s.execute(operation="late", timeout_seconds=1)
            await first
            tasks = (await s.client.get("/tasks")).json()["tasks"]
    assert (late.status_code, late.json()["code"]) == (504, "task_timeout")
    assert len(tasks) == 1  # no run was made for it
    assert len(ollama.chat_requests) == 1


async def test_a_client_that_leaves_cancels_its_task_upstream() -> None:
    with OllamaTestServer(default=slow()) as ollama:
        async with seed_server(ollama) as s:
            with pytest.raises(httpx.ReadTimeout):  # the client gives up
                await s.client.post("/agents/default/execute", json={"operation": "x"},
                                    timeout=1)
            hung_up = await asyncio.to_thread(ollama.wait_until,
                                              lambda: ollama.open_streams == 0, 5)
            assert await eventually(lambda: s.state.admission.active == 0)
            tasks = (await s.client.get("/tasks")).json()["tasks"]
    assert hung_up and ollama.streams[0].client_closed
    assert tasks[0]["status"] == "cancelled"


async def test_agent_status_has_the_seeds_fields_with_z_timestamps() -> None:
    with OllamaTestServer(default="fine") as ollama:
        async with seed_server(ollama) as s:
            await s.execute(operation="one")
            status = (await s.client.get("/agents/default/status")).json()
            listed = (await s.client.get("/agents")).json()["agents"]
    assert set(status) >= AGENT_STATUS
    assert (status["agent_id"], status["agent_type"], status["status"]) == (
        "default", "single_agent", "available")
    assert (status["task_count"], status["success_count"], status["error_count"],
            status["success_rate"]) == (1, 1, 0, 1.0)
    assert ISO_Z.match(status["created_at"]) and ISO_Z.match(status["last_active_at"])
    # the Pi seed's fields are in the same object
    assert (status["name"], status["provider"], status["model"]) == (
        "default", "ollama", "llama3.2")
    assert listed == [status]


async def test_system_status_reports_real_request_metrics() -> None:
    with OllamaTestServer([slow(30, 0.05)]) as ollama:
        async with seed_server(ollama) as s:
            before = (await s.client.get("/system/status")).json()
            held = asyncio.create_task(s.execute(operation="hold a connection"))
            assert await eventually(lambda: len(ollama.chat_requests) == 1)
            during = (await s.client.get("/system/status")).json()
            await held
            boom = await s.client.get("/test/boom")
            nap = await s.client.get("/test/nap", params={"seconds": 0.3})
            await s.client.get("/agents")
            after = (await s.client.get("/system/status")).json()
    assert set(after) == {"system_status", "timestamp", "agents", "api_metrics"}
    assert after["system_status"] == "operational"
    assert ISO_Z.match(after["timestamp"])
    assert set(after["agents"]) == {"default"}
    assert after["agents"]["default"]["task_count"] == 1
    first, metrics = before["api_metrics"], after["api_metrics"]
    assert first["total_requests"] == 0  # the request asking is not answered yet
    assert during["api_metrics"]["current_connections"] >= 2  # it, and the held execute
    assert during["agents"]["default"]["active_tasks"] == 1
    assert after["agents"]["default"]["active_tasks"] == 0
    assert metrics["total_requests"] == 6
    assert metrics["error_count"] == 1  # the 500
    assert boom.status_code == 500
    assert metrics["peak_concurrent_connections"] >= 2
    assert metrics["current_connections"] == 1
    assert isinstance(metrics["uptime_seconds"], int)
    # the header is the real duration: the nap took 300 ms
    took = float(nap.headers["x-response-time"].removesuffix("ms"))
    assert 300 <= took < 3000
    # whole milliseconds (the seed types api_metrics Dict[str, int]), and µs alongside
    assert metrics["avg_response_time"] >= 300 // 6
    assert abs(metrics["avg_response_time_us"] / 1000 - metrics["avg_response_time"]) <= 0.5
    assert all(isinstance(v, int) for v in metrics.values())


async def test_unknown_settings_are_refused_at_startup() -> None:
    from armillary._errors import ConfigError

    with OllamaTestServer() as ollama, pytest.raises(ConfigError, match="update_every"):
        async with seed_server(ollama, agents={"update_every": 3}):
            pass
    with OllamaTestServer() as ollama, pytest.raises(ConfigError, match="must not exceed"):
        async with seed_server(ollama, agents={"update_interval_seconds": 1,
                                               "min_update_interval_seconds": 2}):
            pass


async def test_with_auth_a_key_sees_only_its_own_tasks() -> None:
    import armillary_auth

    keys = [{"name": "alice", "key": "alice-key-0123456789abcdef", "scopes": ["read", "submit"]},
            {"name": "bob", "key": "bob-key-0123456789abcdefgh", "scopes": ["read", "submit"]}]
    alice = {"X-API-Key": keys[0]["key"]}
    bob = {"X-API-Key": keys[1]["key"]}
    with OllamaTestServer(default="mine") as ollama:
        async with seed_server(ollama, config={"plugins": {
                "ollama": {"base_url": ollama.url, "model": "llama3.2"}, "agents": {},
                "auth": {"keys": keys}}}, extra={"auth": armillary_auth}) as s:
            task = (await s.client.post("/agents/default/execute", json={"operation": "x"},
                                        headers=alice)).json()
            own = (await s.client.get("/tasks", headers=alice)).json()["tasks"]
            theirs = (await s.client.get("/tasks", headers=bob)).json()["tasks"]
            peek = await s.client.get(f"/tasks/{task['task_id']}", headers=bob)
            anonymous = await s.client.get("/tasks")
    assert [t["task_id"] for t in own] == [task["task_id"]]
    assert theirs == []
    assert (peek.status_code, peek.json()["code"]) == (404, "task_not_found")
    assert anonymous.status_code == 401


async def test_avg_task_duration_is_execution_time_not_time_spent_queued() -> None:
    # one run at a time in the runner: the second task waits ~1 s queued behind the first
    with OllamaTestServer([slow(10, 0.1), "quick"]) as ollama:
        async with seed_server(ollama, agents={"max_concurrent_executes": 2},
                               config={"kernel": {"max_concurrent_runs": 1}}) as s:
            first = asyncio.create_task(s.execute(operation="slow"))
            assert await eventually(lambda: len(ollama.chat_requests) == 1)
            second = (await s.execute(operation="quick")).json()
            first_body = (await first).json()
            status = (await s.client.get("/agents/default/status")).json()
    took = [first_body["execution_time_seconds"], second["execution_time_seconds"]]
    assert took[0] > 0.8 and took[1] < 0.5  # the second's queue wait is not in it
    assert status["task_count"] == 2
    assert abs(status["avg_task_duration"] - sum(took) / 2) < 0.1
