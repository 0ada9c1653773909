"""The three modes differ for real: who speaks when, and what each agent is shown."""

from __future__ import annotations

from tests.plugins.debate.served import Agents, debate_server

TRIO = ["alice", "bob", "carol"]


def said(agent: str, round: int, position: str | None = None) -> str:
    return f"{agent} says thing {round}.\nPOSITION: {position or agent + ' wins'}"


async def test_structured_is_opening_rebuttals_closing_in_a_fixed_order() -> None:
    agents = Agents(replies={a: [said(a, r) for r in (1, 2, 3, 4)] for a in TRIO})
    async with debate_server(agents) as s:
        debate_id = await s.start(debate_mode="structured", max_rounds=4)
        body = await s.finished(debate_id)
    assert body["status"] == "completed" and body["debate_mode"] == "structured"
    assert [r["phase"] for r in body["rounds"]] == ["opening", "rebuttal", "rebuttal",
                                                    "closing"]
    assert agents.speakers() == TRIO * 4
    for number, r in enumerate(body["rounds"], 1):
        assert [a["agent"] for a in r["arguments"]] == TRIO
        assert r["arguments_by_agent"]["bob"] == [said("bob", number)]
        assert r["consensus"]["score"] == round(1 / 3, 4)
    prompts = [p for _, p in agents.prompts]
    # openings are independent: bob's opening does not quote alice's
    assert "alice says thing 1" not in prompts[1]
    # a rebuttal quotes the arguments so far, a closing is asked for in the last round
    assert "alice says thing 1" in prompts[3] and "carol says thing 1" in prompts[3]
    assert "rebut" in prompts[3].lower() and "closing statement" in prompts[-1]
    assert body["consensus_scores"] == [round(1 / 3, 4)] * 4
    outcome = body["final_outcome"]
    assert outcome["reason"] == "max_rounds" and outcome["rounds"] == 4
    assert outcome["consensus_reached"] is False
    assert outcome["synthesis"] == "Synthesis by alice." and body["current_round"] == 4


async def test_freeform_agents_reply_to_the_latest_arguments_in_rotating_order() -> None:
    agents = Agents(replies={a: [said(a, i) for i in range(1, 10)] for a in TRIO})
    async with debate_server(agents) as s:
        debate_id = await s.start(debate_mode="freeform", max_rounds=2,
                                  max_iterations_per_round=2)
        body = await s.finished(debate_id)
    rounds = body["rounds"]
    assert [r["phase"] for r in rounds] == ["exchange", "exchange"]
    # round 1: two passes (the first one sets every position); the positions did not
    # move in the second, so round 2 ends after one pass
    assert [(a["agent"], a["iteration"]) for a in rounds[0]["arguments"]] == [
        ("alice", 1), ("bob", 1), ("carol", 1), ("bob", 2), ("carol", 2), ("alice", 2)]
    assert [(a["agent"], a["iteration"]) for a in rounds[1]["arguments"]] == [
        ("bob", 1), ("carol", 1), ("alice", 1)]
    prompts = agents.prompts
    assert "Latest arguments" not in prompts[0][1]  # alice opens: nothing to reply to
    assert [a["phase"] for a in rounds[0]["arguments"]][:2] == ["opening", "reply"]
    # bob's second turn quotes only the newest argument of each other agent
    bob_second = prompts[3][1]
    assert "alice says thing 1" in bob_second and "carol says thing 1" in bob_second
    assert "bob says thing" not in bob_second
    alice_second = prompts[5][1]
    assert "bob says thing 2" in alice_second and "bob says thing 1" not in alice_second


async def test_autonomous_the_moderator_picks_each_speaker_and_ends_the_debate() -> None:
    agents = Agents(moderator=["NEXT: carol", "Let us hear from Alice.\nNEXT: Alice",
                               "NEXT: nobody at all", "STOP"])
    async with debate_server(agents, settings={"moderator_agent": "moderator"}) as s:
        debate_id = await s.start(debate_mode="autonomous", max_rounds=5,
                                  max_iterations_per_round=3)
        body = await s.finished(debate_id)
    assert body["status"] == "completed"
    # the third reply names nobody: the floor goes to the agent who waited longest (bob)
    assert agents.speakers() == ["carol", "alice", "bob"]
    decisions = body["rounds"][0]["moderator_decisions"]
    assert [(d["decision"], d["agent"], d["fallback"]) for d in decisions] == [
        ("next", "carol", False), ("next", "alice", False), ("next", "bob", True)]
    assert body["rounds"][1]["moderator_decisions"] == [
        {"moderator": "moderator", "decision": "stop", "agent": None, "fallback": False}]
    assert body["rounds"][1]["arguments"] == []
    assert body["final_outcome"]["reason"] == "moderator"
    # the moderator writes the synthesis, and saw the debate so far
    assert body["final_outcome"]["synthesis"] == "Synthesis by moderator."
    assert "carol says" not in agents.moderator_prompts[0]
    assert "carol argues its own case" in agents.moderator_prompts[1]


async def test_the_debate_stops_once_the_consensus_reaches_the_threshold() -> None:
    agents = Agents(replies={
        "alice": [said("alice", 1, "Adopt Rust"), said("alice", 2, "adopt rust")],
        "bob": [said("bob", 1, "Go"), said("bob", 2, "**Adopt Rust.**")],
        "carol": [said("carol", 1, "Go"), said("carol", 2, "go")]})
    async with debate_server(agents) as s:
        debate_id = await s.start(max_rounds=5, consensus_threshold=0.6)
        body = await s.finished(debate_id)
    assert body["consensus_scores"] == [round(2 / 3, 4)] == body["consensus_scores"][:1]
    # round 1: go 2/3 ≥ 0.6 already
    assert len(body["rounds"]) == 1
    outcome = body["final_outcome"]
    assert outcome["reason"] == "consensus" and outcome["majority"] == "go"
    assert outcome["consensus_reached"] is True


async def test_consensus_counts_agents_without_a_position_as_dissent() -> None:
    agents = Agents(replies={
        "alice": [said("alice", 1, "Rust"), said("alice", 2, "Rust")],
        "bob": ["no stance here", said("bob", 2, "rust")],
        "carol": [said("carol", 1, "Go"), said("carol", 2, "rust")]})
    async with debate_server(agents) as s:
        debate_id = await s.start(max_rounds=5, consensus_threshold=0.9)
        body = await s.finished(debate_id)
    assert body["consensus_scores"] == [round(1 / 3, 4), 1.0]
    first = body["rounds"][0]["consensus"]
    assert first["positions"] == {"alice": "rust", "bob": None, "carol": "go"}
    assert body["final_outcome"]["reason"] == "consensus"
    assert body["final_outcome"]["rounds"] == 2
