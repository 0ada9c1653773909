"""Pause, resume and stop a debate mid-round, an argument that runs out of time, and the
safety checks every argument goes through — checked on what the model server saw."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

from armillary import hookimpl
from armillary.testing.checks import PatternCheck
from tests.plugins.debate.served import Agents, debate_server, slow, until
from tests.support.ollama_server import Reply


async def test_pause_mid_round_holds_the_next_argument_until_resume() -> None:
    agents = Agents(replies={"bob": [slow("bob")]})
    async with debate_server(agents) as s:
        debate_id = await s.start(max_rounds=2)
        await until(lambda: agents.speakers() == ["alice", "bob"])
        r = await s.control(debate_id, "pause")
        assert r.status_code == 200 and r.json()["status"] == "paused"
        assert (await s.control(debate_id, "pause")).json()["status"] == "paused"
        # bob's argument finishes; carol's is not asked for while paused
        await until(lambda: len(s.ollama.replies) == 2 and s.ollama.replies[1].finished)
        await asyncio.sleep(0.4)
        assert agents.speakers() == ["alice", "bob"]
        body = await s.debate(debate_id)
        assert body["status"] == "paused" and body["current_round"] == 1
        assert [a["agent"] for a in body["rounds"][0]["arguments"]] == ["alice", "bob"]
        r = await s.control(debate_id, "resume")
        assert r.status_code == 200 and r.json()["status"] == "running"
        body = await s.finished(debate_id)
    assert body["status"] == "completed"
    assert agents.speakers() == ["alice", "bob", "carol"] * 2


async def test_stop_ends_the_debate_at_once_and_hangs_up_on_the_model() -> None:
    agents = Agents(replies={"bob": [Reply(text="I will never finish", stall=math.inf,
                                           after=1)]})
    async with debate_server(agents) as s:
        debate_id = await s.start(max_rounds=3)
        await until(lambda: agents.speakers() == ["alice", "bob"])
        r = await s.control(debate_id, "stop")
        assert r.status_code == 200 and r.json()["status"] == "stopped"
        await until(lambda: len(s.ollama.replies) == 2 and s.ollama.replies[1].client_closed)
        body = await s.debate(debate_id)
        assert body["status"] == "stopped" and body["final_outcome"] is None
        assert body["error"]["code"] == "stopped"
        assert [a["agent"] for a in body["rounds"][0]["arguments"]] == ["alice"]
        await asyncio.sleep(0.2)
        assert len(s.ollama.chat_requests) == 2  # nothing after the stop


async def test_an_argument_that_runs_out_of_time_is_recorded_and_the_debate_goes_on(
        ) -> None:
    agents = Agents(replies={"bob": [Reply(text="half a thought", stall=math.inf, after=1)]})
    async with debate_server(agents, settings={"max_time_per_argument": 0.5}) as s:
        debate_id = await s.start(max_rounds=2)
        body = await s.finished(debate_id)
        assert s.ollama.replies[1].client_closed  # the model server saw the hang-up
    assert body["status"] == "completed"
    first = body["rounds"][0]["arguments"]
    assert [(a["agent"], a["status"]) for a in first] == [
        ("alice", "ok"), ("bob", "timeout"), ("carol", "ok")]
    bob = first[1]
    assert bob["code"] == "argument_timeout" and bob["text"] == "half"
    assert bob["position"] is None and 0.45 <= bob["duration_seconds"] < 5
    assert [a["status"] for a in body["rounds"][1]["arguments"]] == ["ok"] * 3
    assert body["rounds"][0]["consensus"]["positions"]["bob"] is None
    assert body["final_outcome"]["synthesis"] == "Synthesis by alice."


class BlockWord:
    def __init__(self) -> None:
        self.check = PatternCheck({"secret": r"forbidden"}, name="no-secrets", block=True)

    @hookimpl
    def register_safety_checks(self, register: Callable[..., None]) -> None:
        register(self.check)


async def test_every_argument_goes_through_the_safety_checks() -> None:
    agents = Agents(replies={"bob": ["the forbidden word\nPOSITION: x"]})
    safety = BlockWord()
    async with debate_server(agents, extra={"block": safety}) as s:
        debate_id = await s.start(max_rounds=1)
        body = await s.finished(debate_id)
    bob = body["rounds"][0]["arguments"][1]
    assert bob["status"] == "error" and bob["code"] == "output_blocked"
    assert "forbidden" not in bob["text"]
    stages = {stage for stage, _ in safety.check.seen}
    assert stages == {"input", "output"}
    assert body["status"] == "completed"
