"""A client of the multi-agent seed, unchanged: it validates every answer with the seed's
own Pydantic models (copied verbatim below, pydantic v2 defaults), over the real app on
uvicorn, the real Ollama plugin and the Ollama test server on loopback sockets."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Dict, List, Optional  # noqa: UP035 (the seed's own spelling)

from pydantic import BaseModel, Field
from websockets.asyncio.client import connect

from tests.plugins.agents.seed_server import seed_server
from tests.support.ollama_server import OllamaTestServer

# --- the seed's models (backend/app/agents/api/fastapi_app.py), as written -------------

class TaskRequest(BaseModel):
    """Task execution request model."""
    operation: str = Field(..., description="Operation to perform")
    parameters: Dict[str, Any] = Field(default_factory=dict, description="Task parameters")  # noqa: UP006
    priority: Optional[str] = Field("normal", description="Task priority", pattern="^(low|normal|high|urgent)$")  # noqa: E501, UP045
    timeout_seconds: Optional[int] = Field(None, description="Task timeout in seconds", ge=1, le=3600)  # noqa: E501, UP045


class AgentStatusResponse(BaseModel):
    """Agent status response model."""
    agent_id: str
    agent_type: str
    status: str
    capabilities: List[str]  # noqa: UP006
    task_count: int
    success_count: int
    error_count: int
    success_rate: float
    avg_task_duration: Optional[float]  # noqa: UP045
    created_at: str
    last_active_at: Optional[str]  # noqa: UP045


class SystemStatusResponse(BaseModel):
    """System status response model."""
    system_status: str
    timestamp: str
    agents: Dict[str, Dict[str, Any]]  # noqa: UP006
    api_metrics: Dict[str, int]  # noqa: UP006


class TaskResult(BaseModel):
    """Task execution result model."""
    task_id: str
    status: str
    result: Optional[Dict[str, Any]] = None  # noqa: UP006, UP045
    error: Optional[str] = None  # noqa: UP045
    agent_used: Optional[str] = None  # noqa: UP045
    timestamp: str
    execution_time_seconds: Optional[float] = None  # noqa: UP045


async def next_message(ws: Any, timeout: float = 10.0) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    return message


async def test_every_answer_validates_with_the_seeds_models() -> None:
    settings = {"update_interval_seconds": 600, "min_update_interval_seconds": 0.05}
    with OllamaTestServer(["The sum is 42.", "Paris."]) as ollama:
        async with seed_server(ollama, agents=settings) as s, connect(s.ws_url()) as ws:
            first = await next_message(ws)
            await ws.send("hello")  # the seed reads client frames and ignores them
            # slow and fast requests: their mean is no whole number of seconds
            await s.client.get("/test/nap", params={"seconds": 0.0123})
            await s.client.get("/agents")
            request = TaskRequest(operation="add", parameters={"a": 40, "b": 2},
                                  priority="urgent", timeout_seconds=30)
            executed = await s.client.post("/agents/default/execute",
                                           json=request.model_dump())
            task = TaskResult.model_validate(executed.json())
            v1 = (await s.client.post("/v1/tasks", json={"task": "capital?",
                                                         "wait": True})).json()
            one = TaskResult.model_validate((await s.client.get(f"/tasks/{task.task_id}")).json())
            other = TaskResult.model_validate(
                (await s.client.get(f"/tasks/{v1['task_id']}")).json())
            listed = [TaskResult.model_validate(t)
                      for t in (await s.client.get("/tasks")).json()["tasks"]]
            agents = [AgentStatusResponse.model_validate(a)
                      for a in (await s.client.get("/agents")).json()["agents"]]
            agent = AgentStatusResponse.model_validate(
                (await s.client.get("/agents/default/status")).json())
            status = SystemStatusResponse.model_validate(
                (await s.client.get("/system/status")).json())
            updates = []
            while not updates or updates[-1]["data"]["agents"]["default"]["task_count"] < 2:
                updates.append(await next_message(ws))
    assert first["event_type"] == "system_status"
    SystemStatusResponse.model_validate(first["data"])
    assert {u["event_type"] for u in updates} == {"status_update"}
    for update in updates:
        SystemStatusResponse.model_validate(update["data"])
    assert (task.status, task.agent_used, task.error) == ("completed", "default", None)
    assert task.result is not None and task.result["output"] == "The sum is 42."
    assert one == task
    assert (other.status, other.result and other.result["output"]) == ("completed", "Paris.")
    assert [t.task_id for t in listed] == [v1["task_id"], task.task_id]
    assert {a.agent_id for a in agents} == {"default"}
    assert (agent.task_count, agent.success_count, agent.success_rate) == (2, 2, 1.0)
    metrics = status.api_metrics
    assert metrics["total_requests"] == 9
    assert metrics["avg_response_time"] >= 1  # whole milliseconds: the nap alone is 12
    assert set(status.agents) == {"default"}


async def test_a_handler_that_raises_is_a_timed_500_counted_as_an_error() -> None:
    with OllamaTestServer() as ollama:
        async with seed_server(ollama) as s:
            boom = await s.client.get("/test/boom")
            missing = await s.client.get("/no/such/route")
            metrics = (await s.client.get("/system/status")).json()["api_metrics"]
    assert boom.status_code == 500
    assert boom.json() == {"detail": "internal error: RuntimeError", "code": "internal_error"}
    assert boom.headers["x-response-time"].endswith("ms")
    assert missing.status_code == 404 and missing.headers["x-response-time"].endswith("ms")
    assert (metrics["total_requests"], metrics["error_count"]) == (2, 1)


async def test_a_limit_above_the_largest_page_is_the_largest_page() -> None:
    # the seed's `limit: int = 50` has no upper bound: a client asking for "all" gets 1000
    with OllamaTestServer(default="ok") as ollama:
        async with seed_server(ollama) as s:
            done = (await s.execute(operation="one")).json()
            many = await s.client.get("/tasks", params={"limit": 5000})
            zero = await s.client.get("/tasks", params={"limit": 0})
    assert many.status_code == 200
    assert [t["task_id"] for t in many.json()["tasks"]] == [done["task_id"]]
    assert (zero.status_code, zero.json()["code"]) == (422, "validation_error")
