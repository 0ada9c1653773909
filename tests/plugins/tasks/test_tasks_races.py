"""DELETE and control racing a task's start and its completion, over loopback HTTP: each
task ends exactly once, and what the API answered agrees with what the log says."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.plugins.tasks.served import Served, read_sse, tasks_server

END_TYPES = {"completed", "failed", "cancelled", "stopped", "interrupted"}


async def check(s: Served, task_id: str, answer: Any) -> None:
    events = await read_sse(s.client, f"/v1/stream/tasks/{task_id}")
    stored = await s.kernel.store.events(task_id)
    ends = [e.type for e in stored if e.type in END_TYPES]
    assert len(ends) == 1 and stored[-1].type == ends[0], [e.type for e in stored]
    assert events[-1].event == ends[0]
    status = (await s.client.get(f"/v1/tasks/{task_id}")).json()
    result = (await s.client.get(f"/v1/tasks/{task_id}/result")).json()
    if answer.status_code == 200:
        assert answer.json()["status"] == "cancelled" == status["status"] == ends[0]
        assert result["final_answer"] is None
    else:  # the task completed first: 409, and its answer stands
        assert answer.status_code == 409, answer.text
        assert answer.json()["code"] == "task_finished"
        assert answer.json()["status"] == "completed" == status["status"] == ends[0]
        assert result["final_answer"] == "done" and events[-1].data["result"] == "done"


async def test_delete_racing_the_start_ends_each_task_once(
        tmp_path: Path) -> None:
    # the SQLite store (as `armillary serve` uses) awaits a thread on every write, which is
    # where a cancel used to slip in between a run's start or end and its status writes
    config = {"kernel": {"store": f"sqlite:///{tmp_path / 'runs.db'}",
                         "max_concurrent_runs": 2}}
    async with tasks_server(["done"], config=config) as s:
        pairs = []
        for i in range(60):  # DELETE after 0…39 turns of the loop: queued, starting, running
            task_id = await s.submit(f"race {i}")
            for _ in range(i % 40):
                await asyncio.sleep(0)
            pairs.append((task_id, await s.client.delete(f"/v1/tasks/{task_id}")))
        await asyncio.sleep(0.2)  # anything still running after its cancel would log more
        for task_id, answer in pairs:
            await check(s, task_id, answer)
        assert any(a.status_code == 200 for _, a in pairs)


async def test_delete_racing_completion_is_either_a_clean_cancel_or_409(
        tmp_path: Path) -> None:
    config = {"kernel": {"store": f"sqlite:///{tmp_path / 'runs.db'}"}}
    async with tasks_server(["done"], config=config) as s:
        pairs = []
        for i in range(40):
            task_id = await s.submit(f"finish {i}")
            for _ in range(2000):  # until its last step is logged: it is returning now
                if await s.kernel.store.count_events(task_id, types=["step"]):
                    break
                await asyncio.sleep(0)
            for _ in range(i % 20):
                await asyncio.sleep(0)
            pairs.append((task_id, await s.client.delete(f"/v1/tasks/{task_id}")))
        for task_id, answer in pairs:
            await check(s, task_id, answer)
        assert any(a.status_code == 409 for _, a in pairs)


async def test_blank_tasks_and_loosely_typed_fields_are_422() -> None:
    async with tasks_server(["ok"]) as s:
        for body in ({"task": "   "}, {"task": "\n\t"}, {"task": "x", "max_steps": True},
                     {"task": "x", "stream": "yes"}, {"task": "x", "wait": 1},
                     {"task": "x", "max_steps": "5"}):
            r = await s.client.post("/v1/tasks", json=body)
            assert r.status_code == 422, (body, r.text)
            assert r.json()["code"] == "validation_error"
        ok = await s.client.post("/v1/tasks", json={"task": " go ", "max_steps": 3,
                                                    "stream": True})
        assert ok.status_code == 202
