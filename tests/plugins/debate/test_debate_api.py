"""The seed's debate routes over a real server: initialize, control, the debate view."""

from __future__ import annotations

import pytest

from tests.plugins.debate.served import Agents, config, debate_server
from tests.support.ollama_server import Reply


async def test_initialize_stores_the_debate_and_start_runs_it() -> None:
    async with debate_server() as s:
        debate_id = await s.initialize()
        body = await s.debate(debate_id)
        assert body["status"] == "initialized" and body["current_round"] == 0
        assert body["rounds"] == [] and body["final_outcome"] is None
        assert s.ollama.chat_requests == []  # nothing runs before start
        r = await s.control(debate_id, "start")
        assert r.status_code == 200
        assert r.json()["debate_id"] == debate_id and r.json()["action"] == "start"
        assert r.json()["status"] in {"queued", "running"}
        body = await s.finished(debate_id)
        assert body["status"] == "completed"


async def test_unknown_agents_are_refused_with_422_naming_them() -> None:
    async with debate_server() as s:
        r = await s.client.post("/debate/initialize", json=config(
            selected_agents=["alice", "zed", "yan"]))
        assert r.status_code == 422
        assert r.json()["code"] == "unknown_agents"
        assert r.json()["unknown_agents"] == ["zed", "yan"]
        assert "zed, yan" in r.json()["detail"]
        r = await s.client.post("/debate/initialize", json=config(
            debate_mode="autonomous", debate_rules={"moderator": "judge"}))
        assert r.status_code == 422 and r.json()["unknown_agents"] == ["judge"]
        r = await s.client.post("/debate/initialize", json=config(selected_agents=[]))
        assert r.status_code == 422 and r.json()["code"] == "no_agents"
        r = await s.client.post("/debate/initialize", json=config(
            selected_agents=["alice", "alice"]))
        assert r.status_code == 422 and r.json()["code"] == "duplicate_agents"


@pytest.mark.parametrize(("field", "value"), [
    ("debate_mode", "chaos"), ("max_rounds", 0), ("max_rounds", 21),
    ("max_iterations_per_round", 11), ("consensus_threshold", 1.5),
    ("time_limit_per_argument", 9), ("time_limit_per_argument", 301),
    ("max_rounds", "5"), ("max_rounds", True), ("selected_agents", "alice"),
    ("debate_rules", []), ("moderator", "alice")])
async def test_the_seed_patterns_and_ranges_are_enforced(field: str, value: object) -> None:
    async with debate_server() as s:
        r = await s.client.post("/debate/initialize", json=config(**{field: value}))
        assert r.status_code == 422 and r.json()["code"] == "validation_error"
        assert field in r.text


async def test_control_refuses_impossible_transitions_with_409() -> None:
    async with debate_server() as s:
        r = await s.control("debate_nope", "start")
        assert r.status_code == 404 and r.json()["code"] == "debate_not_found"
        assert (await s.client.get("/debates/debate_nope")).status_code == 404
        r = await s.client.post("/debate/x/control", json={"action": "explode"})
        assert r.status_code == 422
        debate_id = await s.initialize(max_rounds=1)
        for action in ("pause", "resume", "stop"):
            r = await s.control(debate_id, action)
            assert r.status_code == 409 and r.json()["code"] == "debate_not_started"
        assert (await s.control(debate_id, "start")).status_code == 200
        r = await s.control(debate_id, "start")
        assert r.status_code == 409 and r.json()["code"] == "debate_already_started"
        await s.finished(debate_id)
        for action in ("pause", "resume", "stop"):
            r = await s.control(debate_id, action)
            assert r.status_code == 409 and r.json()["code"] == "debate_finished"
            assert r.json()["status"] == "completed"


async def test_a_task_run_is_not_a_debate() -> None:
    async with debate_server() as s:
        r = await s.client.post("/v1/tasks", json={"task": "hello", "agent": "alice"})
        task_id = r.json()["task_id"]
        assert (await s.client.get(f"/debates/{task_id}")).status_code == 404
        assert (await s.control(task_id, "stop")).status_code == 404


async def test_the_debate_is_a_run_visible_on_the_task_api_and_its_stream() -> None:
    async with debate_server() as s:
        debate_id = await s.start(max_rounds=1)
        await s.finished(debate_id)
        task = (await s.client.get(f"/v1/tasks/{debate_id}")).json()
        assert task["status"] == "completed"
        result = (await s.client.get(f"/v1/tasks/{debate_id}/result")).json()
        assert result["final_answer"] == "Synthesis by alice."
        async with s.client.stream("GET", f"/v1/stream/tasks/{debate_id}",
                                   headers={"Accept": "text/event-stream"}) as response:
            text = (await response.aread()).decode()
        for kind in ("debate.started", "debate.round_started", "debate.argument",
                     "debate.consensus", "debate.synthesis", "debate.concluded", "completed"):
            assert f"event: {kind}" in text, kind


async def test_a_debate_nobody_can_argue_in_fails_with_the_providers_code() -> None:
    agents = Agents(replies={a: [Reply(status=500, error="boom")] * 3
                             for a in ("alice", "bob", "carol")})
    async with debate_server(agents) as s:
        debate_id = await s.start()
        body = await s.finished(debate_id)
        assert body["status"] == "failed"
        assert body["error"]["code"] == "provider_error"
        assert [a["status"] for a in body["rounds"][0]["arguments"]] == ["error"] * 3
        assert len(body["rounds"]) == 1 and body["final_outcome"] is None


async def test_initialized_debates_never_started_are_kept_within_bounds() -> None:
    async with debate_server(settings={"max_initialized": 2}) as s:
        first, second, third = [await s.initialize() for _ in range(3)]
        assert (await s.client.get(f"/debates/{first}")).status_code == 404
        for kept in (second, third):
            assert (await s.debate(kept))["status"] == "initialized"
        assert (await s.control(first, "start")).json()["code"] == "debate_not_found"
