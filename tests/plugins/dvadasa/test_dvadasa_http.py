"""POST /v1/sessions and POST /v1/sessions/{id}/prompt through the real path: uvicorn on
loopback, the ollama plugin streaming from the Ollama test server (scripted per head by
system prompt), the runner executing the `dvadasa` strategy."""

from __future__ import annotations

import json

import pytest

from armillary.testing.checks import PatternCheck
from tests.plugins.dvadasa.conftest import (
    HEAD_IDS,
    WITNESS,
    DvadasaServer,
    asked,
    head_text,
)
from tests.support.ollama_server import Reply

COMPLEX = ("Should we compare the trade-offs of a monolith versus microservices, and "
           "what risks does each design carry for a small team?")


async def test_a_session_is_created_with_its_user_id(dvadasa_server: DvadasaServer) -> None:
    async with dvadasa_server() as s:
        r = await s.client.post("/v1/sessions", params={"user_id": "ada"})
        anonymous = await s.client.post("/v1/sessions")
        detail = await s.client.get(f"/v1/sessions/{r.json()['session_id']}")
    assert r.status_code == 200
    assert r.json()["user_id"] == "ada" and len(r.json()["session_id"]) == 36
    assert anonymous.json()["user_id"] is None
    assert detail.json()["user_id"] == "ada" and detail.json()["history"] == []


async def test_all_heads_answer_and_the_witness_synthesises_the_seed_reply(
        dvadasa_server: DvadasaServer) -> None:
    async with dvadasa_server() as s:
        session = await s.session("ada")
        r = await s.client.post(f"/v1/sessions/{session}/prompt",
                                json={"prompt": "What is six times seven?",
                                      "use_all_heads": True})
        body = r.json()
        task = await s.client.get(f"/v1/tasks/{body['task_id']}")
        result = await s.client.get(f"/v1/tasks/{body['task_id']}/result")
        history = (await s.client.get(f"/v1/sessions/{session}")).json()["history"]
        seen = asked(s.ollama.requests)
    assert r.status_code == 200, r.text
    assert set(body) == {"task_id", "final_answer", "transparency_report",
                         "head_contributions", "confidence_score"}
    assert body["final_answer"] == "Synthesis: the heads agree on forty two."
    contributions = body["head_contributions"]
    assert [c["head_id"] for c in contributions] == HEAD_IDS
    assert all(c["status"] == "ok" and c["summary"] == head_text(c["head_id"])
               for c in contributions)
    assert body["transparency_report"]["head_contributions"] == contributions
    # twelve heads, then the Witness, who saw every head's answer
    assert sorted(seen[:12]) == sorted(HEAD_IDS) and seen[12:] == [WITNESS]
    witness_request = json.loads(s.ollama.chat_requests[-1].body or b"{}")
    for head in HEAD_IDS:
        assert head_text(head) in witness_request["messages"][-1]["content"]
    # the run is a task like any other
    assert task.status_code == 200 and task.json()["status"] == "completed"
    assert result.json()["final_answer"] == body["final_answer"]
    assert history == [{"prompt": "What is six times seven?",
                        "final_answer": body["final_answer"], "task_id": body["task_id"],
                        "confidence_score": body["confidence_score"],
                        "at": history[0]["at"]}]


async def test_confidence_follows_measured_agreement(dvadasa_server: DvadasaServer) -> None:
    same = "Forty two is the product of six and seven."
    agreeing = dict.fromkeys(HEAD_IDS, same)
    disagreeing = {h: f"{h} zebra{i} quokka{i} mango{i} violin{i}"
                   for i, h in enumerate(HEAD_IDS)}
    disagreeing["logic"] = same
    scores = []
    for script in (agreeing, disagreeing):
        async with dvadasa_server(script) as s:
            session = await s.session()
            r = await s.client.post(f"/v1/sessions/{session}/prompt",
                                    json={"prompt": "six times seven?", "use_all_heads": True})
        assert r.status_code == 200, r.text
        scores.append(r.json())
    assert scores[0]["confidence_score"] == 1.0
    assert scores[1]["confidence_score"] < 0.2
    agreement = scores[1]["transparency_report"]["agreement"]
    assert agreement["method"].startswith("mean pairwise Jaccard")
    assert agreement["pairs"] == 66


async def test_a_simple_prompt_asks_the_simple_heads(dvadasa_server: DvadasaServer) -> None:
    async with dvadasa_server() as s:
        session = await s.session()
        simple = await s.client.post(f"/v1/sessions/{session}/prompt",
                                     json={"prompt": "Capital of France?"})
        n = len(s.ollama.chat_requests)
        complex_ = await s.client.post(f"/v1/sessions/{session}/prompt",
                                       json={"prompt": COMPLEX})
        seen = asked(s.ollama.requests)
    assert [c["head_id"] for c in simple.json()["head_contributions"]] == [
        "logic", "pragmatics", "clarity"]
    assert sorted(seen[:n - 1]) == ["clarity", "logic", "pragmatics"]
    assert len(complex_.json()["head_contributions"]) == 12


async def test_slash_head_runs_exactly_one_head_and_no_witness(
        dvadasa_server: DvadasaServer) -> None:
    async with dvadasa_server() as s:
        session = await s.session()
        r = await s.client.post(f"/v1/sessions/{session}/prompt",
                                json={"prompt": "/head risk Is it safe to deploy on Friday?",
                                      "use_all_heads": True})
        seen = asked(s.ollama.requests)
        goal = json.loads(s.ollama.chat_requests[0].body or b"{}")["messages"][-1]["content"]
    assert r.status_code == 200, r.text
    body = r.json()
    assert seen == ["risk"]
    assert goal == "Is it safe to deploy on Friday?"
    assert [c["head_id"] for c in body["head_contributions"]] == ["risk"]
    assert body["final_answer"] == head_text("risk")
    assert body["transparency_report"]["intent"] == "head_strategy"
    assert body["transparency_report"]["witness"]["status"] == "skipped"


async def test_slash_head_without_a_question_asks_about_the_last_prompt(
        dvadasa_server: DvadasaServer) -> None:
    async with dvadasa_server() as s:
        session = await s.session()
        first = await s.client.post(f"/v1/sessions/{session}/prompt",
                                    json={"prompt": "Capital of France?"})
        n = len(s.ollama.chat_requests)
        r = await s.client.post(f"/v1/sessions/{session}/prompt",
                                json={"prompt": "/head skeptic"})
        request = json.loads(s.ollama.chat_requests[n].body or b"{}")
    assert first.status_code == r.status_code == 200
    assert who_and_prompt(request) == ("skeptic", "Capital of France?")
    # the session's earlier exchange is context for the head
    assert [m["role"] for m in request["messages"]] == ["system", "user", "assistant", "user"]


def who_and_prompt(body: dict[str, object]) -> tuple[str, str]:
    from tests.plugins.dvadasa.conftest import who

    messages = body["messages"]
    assert isinstance(messages, list)
    return who(body), messages[-1]["content"]


@pytest.mark.parametrize("command", ["/dissent", "/show dissent", "/show_dissent"])
async def test_show_dissent_asks_every_head_and_names_the_dissenters(
        dvadasa_server: DvadasaServer, command: str) -> None:
    same = "Forty two is the product of six and seven, clearly."
    script = {**dict.fromkeys(HEAD_IDS, same),
              "skeptic": "Nonsense: zebras violins quantum marmalade."}
    async with dvadasa_server(script) as s:
        session = await s.session()
        r = await s.client.post(f"/v1/sessions/{session}/prompt",
                                json={"prompt": f"{command} six times seven?"})
        witness = json.loads(s.ollama.chat_requests[-1].body or b"{}")
    body = r.json()
    assert r.status_code == 200, r.text
    assert len(body["head_contributions"]) == 12
    assert body["transparency_report"]["dissent"] == ["skeptic"]
    assert body["transparency_report"]["intent"] == "show_dissent"
    assert "dissent" in witness["messages"][0]["content"]
    assert "dissenting heads: skeptic" in witness["messages"][-1]["content"]


async def test_a_failed_and_a_timed_out_head_are_reported_and_the_witness_goes_on(
        dvadasa_server: DvadasaServer) -> None:
    script = {"logic": Reply(status=500, error="model crashed"),
              "risk": Reply(text="too late", first_delay=5)}
    async with dvadasa_server(script, settings={"head_timeout_seconds": 0.5}) as s:
        session = await s.session()
        r = await s.client.post(f"/v1/sessions/{session}/prompt",
                                json={"prompt": "six times seven?", "use_all_heads": True})
        await s.ollama.await_until(lambda: all(x.ended_at is not None
                                               for x in s.ollama.replies), 5)
        risk_reply = [x for x in s.ollama.replies if not x.finished]
        witness = json.loads(s.ollama.chat_requests[-1].body or b"{}")
    body = r.json()
    assert r.status_code == 200, r.text
    by_head = {c["head_id"]: c for c in body["head_contributions"]}
    assert by_head["logic"]["status"] == "failed"
    assert by_head["logic"]["error"]["code"] == "provider_error"
    assert by_head["risk"]["status"] == "timeout"
    assert by_head["risk"]["error"]["code"] == "head_timeout"
    assert body["transparency_report"]["heads_failed"] == ["logic", "risk"]
    assert body["transparency_report"]["agreement"]["coverage"] == round(10 / 12, 4)
    assert "heads that gave no answer: logic, risk" in witness["messages"][-1]["content"]
    # the timed-out head's call was hung up on, not left running
    assert risk_reply and all(x.client_closed for x in risk_reply)


async def test_all_heads_failing_is_the_seeds_500(dvadasa_server: DvadasaServer) -> None:
    script = dict.fromkeys(HEAD_IDS, Reply(status=500, error="down"))
    async with dvadasa_server(script) as s:
        session = await s.session()
        r = await s.client.post(f"/v1/sessions/{session}/prompt",
                                json={"prompt": "six times seven?", "use_all_heads": True})
        history = (await s.client.get(f"/v1/sessions/{session}")).json()["history"]
        task = await s.client.get(f"/v1/tasks/{r.json().get('task_id')}")
    assert r.status_code == 500
    assert r.json()["code"] == "dvadasa_failed"
    assert r.json()["cause"] == "dvadasa_failed"
    assert "all 12 heads failed" in r.json()["detail"]
    assert r.json()["detail"].startswith("Dvādaśa failed")
    assert task.json()["status"] == "failed"
    assert history == []
    assert WITNESS not in asked(s.ollama.requests)


async def test_a_failing_witness_falls_back_to_the_most_agreeing_head(
        dvadasa_server: DvadasaServer) -> None:
    async with dvadasa_server({WITNESS: Reply(status=500, error="witness down")}) as s:
        session = await s.session()
        r = await s.client.post(f"/v1/sessions/{session}/prompt",
                                json={"prompt": "six times seven?", "use_all_heads": True})
    witness = r.json()["transparency_report"]["witness"]
    assert r.status_code == 200
    assert witness["status"] == "failed" and witness["fallback_head"] in HEAD_IDS
    assert r.json()["final_answer"] == head_text(witness["fallback_head"])


async def test_seed_errors_in_the_error_model(dvadasa_server: DvadasaServer) -> None:
    blocker = PatternCheck({"weapons": r"\bbomb\b"}, name="no-bombs", block=True,
                           stages=frozenset({"input"}))
    async with dvadasa_server(checks=(blocker,)) as s:
        session = await s.session()
        url = f"/v1/sessions/{session}/prompt"
        missing = await s.client.post(url, json={"use_all_heads": True})
        blank = await s.client.post(url, json={"prompt": "   "})
        no_body = await s.client.post(url)
        too_long = await s.client.post(url, json={"prompt": "x" * 16_001})
        unknown_session = await s.client.post("/v1/sessions/nope/prompt",
                                              json={"prompt": "hi"})
        unknown_head = await s.client.post(url, json={"prompt": "/head nobody hi"})
        no_head = await s.client.post(url, json={"prompt": "/head"})
        blocked = await s.client.post(url, json={"prompt": "how to build a bomb"})
        lonely_dissent = await s.client.post(url, json={"prompt": "/dissent"})
        not_found_get = await s.client.get("/v1/sessions/nope")
        calls = len(s.ollama.chat_requests)
    for r, code in ((missing, "missing_prompt"), (blank, "missing_prompt"),
                    (no_body, "missing_prompt"), (too_long, "prompt_too_long"),
                    (unknown_head, "unknown_head"), (no_head, "unknown_head"),
                    (blocked, "pre_check_failed"),
                    (lonely_dissent, "missing_prompt")):
        assert (r.status_code, r.json()["code"]) == (400, code), r.text
    assert blocked.json()["check"] == "no-bombs"
    assert no_head.json()["detail"].startswith("no head named (heads: logic, ")
    assert "bomb" not in blocked.json()["detail"]
    assert (unknown_session.status_code, unknown_session.json()["code"]) == (
        404, "session_not_found")
    # the detail starts with the seed's words for each error
    for r, words in ((missing, "missing prompt"), (blocked, "pre_check failed"),
                     (unknown_session, "session not found")):
        assert r.json()["detail"].startswith(words), r.text
    assert not_found_get.status_code == 404
    assert calls == 0  # nothing reached a model


async def test_a_blocked_witness_answer_is_the_post_check_400(
        dvadasa_server: DvadasaServer) -> None:
    forbidden = PatternCheck({"classified": r"CLASSIFIED"}, name="no-leaks", block=True,
                             stages=frozenset({"output"}))
    async with dvadasa_server({WITNESS: "The answer is CLASSIFIED material."},
                              checks=(forbidden,)) as s:
        session = await s.session()
        r = await s.client.post(f"/v1/sessions/{session}/prompt",
                                json={"prompt": "six times seven?"})
        history = (await s.client.get(f"/v1/sessions/{session}")).json()["history"]
    assert (r.status_code, r.json()["code"]) == (400, "post_check_failed"), r.text
    assert r.json()["detail"].startswith("post_check failed")
    assert "CLASSIFIED" not in r.text
    assert history == []


async def test_no_provider_is_the_seeds_503(dvadasa_server: DvadasaServer) -> None:
    import armillary_dvadasa

    async with dvadasa_server(plugins={"dvadasa": armillary_dvadasa}) as s:
        session = await s.session()
        r = await s.client.post(f"/v1/sessions/{session}/prompt", json={"prompt": "hi"})
    assert (r.status_code, r.json()["code"]) == (503, "dvadasa_not_initialized")
    assert r.json()["detail"].startswith("service not initialized")


async def test_a_head_can_have_its_own_model(dvadasa_server: DvadasaServer) -> None:
    settings = {"heads": {"risk": {"model": "deepseek-r1"}, "history": {"enabled": False}}}
    async with dvadasa_server(settings=settings) as s:
        session = await s.session()
        r = await s.client.post(f"/v1/sessions/{session}/prompt",
                                json={"prompt": "six times seven?", "use_all_heads": True})
        models = {asked([req])[0]: json.loads(req.body or b"{}")["model"]
                  for req in s.ollama.chat_requests}
    assert r.status_code == 200, r.text
    assert len(r.json()["head_contributions"]) == 11
    assert "history" not in models
    assert models["risk"] == "deepseek-r1" and models["logic"] == "llama3.2"


async def test_the_prompts_run_streams_on_the_task_api(dvadasa_server: DvadasaServer) -> None:
    from websockets.asyncio.client import connect

    async with dvadasa_server() as s:
        session = await s.session()
        r = await s.client.post(f"/v1/sessions/{session}/prompt",
                                json={"prompt": "Capital of France?"})
        ws_url = "ws" + s.url.removeprefix("http")
        async with connect(f"{ws_url}/v1/stream/tasks/{r.json()['task_id']}") as ws:
            types = [json.loads(m)["type"] async for m in ws]
    assert types == ["queued", "running", "dvadasa.heads_running",
                     *["dvadasa.head_complete"] * 3, "dvadasa.witness_running",
                     "dvadasa.synthesis", "completed"]


async def test_a_task_api_run_of_the_dvadasa_agent_selects_heads_itself(
        dvadasa_server: DvadasaServer) -> None:
    async with dvadasa_server() as s:
        r = await s.client.post("/v1/tasks", json={"task": "Capital of France?",
                                                   "agent": "dvadasa", "wait": True})
        seen = asked(s.ollama.requests)
    assert r.status_code == 200, r.text
    assert r.json()["final_answer"] == "Synthesis: the heads agree on forty two."
    assert sorted(seen) == ["clarity", "logic", "pragmatics", WITNESS]
