"""WebSocket /v1/sessions/{id}/stream through the real path (uvicorn on loopback, the
ollama plugin and the Ollama test server): the seed's event order, one `head_complete`
per head as each finishes, errors as messages, PII redacted on HTTP and WebSocket alike,
and a client that leaves cancels the heads' provider calls (the Ollama server sees the
hang-up)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from armillary.testing.checks import PII
from tests.plugins.dvadasa.conftest import (
    HEAD_IDS,
    WITNESS,
    DvadasaServer,
    asked,
    eventually,
    head_text,
)
from tests.support.ollama_server import Reply

SSN, EMAIL = "123-45-6789", "jane.doe@example.com"
FRAGMENTS = (SSN, "123-45", "45-6789", EMAIL, "jane.doe", "@example.com")


async def until_end(ws: ClientConnection) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        messages.append(message)
        if message["type"] in ("complete", "error"):
            return messages


async def test_the_stream_sends_the_seeds_events_in_order(
        dvadasa_server: DvadasaServer) -> None:
    # each head finishes at its own time: clarity (last in the list) first, logic last
    script = {h: Reply(text=head_text(h), first_delay=0.15 * (len(HEAD_IDS) - i))
              for i, h in enumerate(HEAD_IDS)}
    async with dvadasa_server(script) as s:
        session = await s.session()
        async with connect(f"{s.ws_url}/v1/sessions/{session}/stream") as ws:
            await ws.send(json.dumps({"prompt": "six times seven?", "use_all_heads": True}))
            messages = await until_end(ws)
            # the socket serves the next prompt too
            await ws.send(json.dumps({"prompt": "/head ethics Is it fair?"}))
            second = await until_end(ws)
        http = (await s.client.get(f"/v1/sessions/{session}")).json()["history"]
    types = [m["type"] for m in messages]
    assert types == ["heads_running", *["head_complete"] * 12, "witness_running", "complete"]
    assert messages[0]["heads"] == HEAD_IDS
    finished = [m["head_id"] for m in messages[1:13]]
    assert finished == list(reversed(HEAD_IDS))  # as each finished, not in list order
    assert all(m["summary"] == head_text(m["head_id"]) for m in messages[1:13])
    complete = messages[-1]
    assert {"task_id", "final_answer", "transparency_report", "head_contributions",
            "confidence_score"} <= set(complete)
    assert complete["final_answer"] == "Synthesis: the heads agree on forty two."
    assert {m["task_id"] for m in messages if "task_id" in m} == {complete["task_id"]}
    # `/head <id>`: the seed's sequence still, the Witness marked skipped (no call made)
    assert [m["type"] for m in second] == ["heads_running", "head_complete",
                                           "witness_running", "complete"]
    assert second[1]["head_id"] == "ethics"
    assert (second[2]["heads"], second[2]["skipped"]) == (["ethics"], True)
    assert messages[13]["skipped"] is False
    assert [h["task_id"] for h in http] == [complete["task_id"], second[-1]["task_id"]]


async def test_stream_errors_are_messages_and_the_socket_stays_open(
        dvadasa_server: DvadasaServer) -> None:
    async with dvadasa_server() as s:
        session = await s.session()
        async with connect(f"{s.ws_url}/v1/sessions/{session}/stream") as ws:
            await ws.send("not json")
            bad = json.loads(await ws.recv())
            await ws.send(json.dumps({"use_all_heads": True}))
            missing = json.loads(await ws.recv())
            await ws.send(json.dumps({"prompt": "/head nobody hi"}))
            unknown = json.loads(await ws.recv())
            # a field of the wrong type: what the HTTP route answers (422)
            await ws.send(json.dumps({"prompt": 5}))
            wrong_type = json.loads(await ws.recv())
            await ws.send(json.dumps({"prompt": "hi", "use_all_heads": "maybe"}))
            wrong_flag = json.loads(await ws.recv())
            await ws.send(json.dumps({"prompt": "Capital of France?"}))
            ok = await until_end(ws)
        async with connect(f"{s.ws_url}/v1/sessions/nope/stream") as ws:
            gone = json.loads(await ws.recv())
            try:
                await ws.recv()
            except ConnectionClosed as exc:
                close = exc.rcvd.code if exc.rcvd else None
    assert (bad["type"], bad["code"]) == ("error", "invalid_message")
    assert (missing["type"], missing["code"], missing["status"]) == (
        "error", "missing_prompt", 400)
    assert missing["message"]
    assert unknown["code"] == "unknown_head"
    for m, field in ((wrong_type, "prompt"), (wrong_flag, "use_all_heads")):
        assert (m["type"], m["code"], m["status"]) == ("error", "validation_error", 422)
        assert m["message"].startswith(field)
    assert ok[-1]["type"] == "complete"
    assert (gone["type"], gone["code"], close) == ("error", "session_not_found", 4404)


async def test_all_heads_failing_is_an_error_message(dvadasa_server: DvadasaServer) -> None:
    script = dict.fromkeys(HEAD_IDS, Reply(status=500, error="down"))
    async with dvadasa_server(script) as s:
        session = await s.session()
        async with connect(f"{s.ws_url}/v1/sessions/{session}/stream") as ws:
            await ws.send(json.dumps({"prompt": "six times seven?"}))
            messages = await until_end(ws)
    assert messages[0]["type"] == "heads_running"
    assert all(m["status"] == "failed" for m in messages if m["type"] == "head_complete")
    assert (messages[-1]["type"], messages[-1]["code"], messages[-1]["status"]) == (
        "error", "dvadasa_failed", 500)


def _pii_script() -> dict[str, Reply | str]:
    leak = f"Contact {EMAIL} whose SSN is {SSN} for details."
    # split across stream lines, so the hold-back window must catch it in pieces
    return {"risk": Reply(tokens=[leak[i:i + 3] for i in range(0, len(leak), 3)]),
            WITNESS: f"In short: ask {EMAIL} (SSN {SSN})."}


async def test_pii_in_a_head_answer_is_redacted_on_http_and_websocket(
        dvadasa_server: DvadasaServer) -> None:
    async with dvadasa_server(_pii_script(), checks=(PII(),)) as s:
        session = await s.session()
        r = await s.client.post(f"/v1/sessions/{session}/prompt",
                                json={"prompt": "Who to ask?", "use_all_heads": True})
        async with connect(f"{s.ws_url}/v1/sessions/{session}/stream") as ws:
            await ws.send(json.dumps({"prompt": "Who to ask?", "use_all_heads": True}))
            raw = []
            while True:
                raw.append(await asyncio.wait_for(ws.recv(), 10))
                if json.loads(raw[-1])["type"] in ("complete", "error"):
                    break
        history = await s.client.get(f"/v1/sessions/{session}")
        task = await s.client.get(f"/v1/tasks/{r.json()['task_id']}/result")
        witness_prompts = [json.loads(q.body or b"{}")["messages"][-1]["content"]
                           for q in s.ollama.chat_requests if asked([q]) == [WITNESS]]
    assert r.status_code == 200, r.text
    risk = {c["head_id"]: c for c in r.json()["head_contributions"]}["risk"]
    assert risk["summary"] == "Contact [email] whose SSN is [ssn] for details."
    assert r.json()["final_answer"] == "In short: ask [email] (SSN [ssn])."
    ws_risk = next(json.loads(m) for m in raw if '"head_id":"risk"' in m.replace(" ", ""))
    assert ws_risk["summary"] == risk["summary"]
    assert json.loads(raw[-1])["final_answer"] == "In short: ask [email] (SSN [ssn])."
    for where, text in (("http", r.text), ("ws", "".join(raw)), ("history", history.text),
                        ("task", task.text), ("witness prompt", "".join(witness_prompts))):
        for fragment in FRAGMENTS:
            assert fragment not in text, f"{fragment!r} reached {where}"


async def test_a_client_that_leaves_cancels_the_heads_provider_calls(
        dvadasa_server: DvadasaServer) -> None:
    # every head would answer after 30 s (a cold model load)
    script = dict.fromkeys(HEAD_IDS, Reply(text="too late", first_delay=30))
    async with dvadasa_server(script) as s:
        session = await s.session()
        async with connect(f"{s.ws_url}/v1/sessions/{session}/stream") as ws:
            await ws.send(json.dumps({"prompt": "six times seven?", "use_all_heads": True}))
            running = json.loads(await ws.recv())
            await eventually(lambda: len(s.ollama.replies) == 12)
        # the socket is closed: every head's request is hung up on, long before 30 s
        await s.ollama.await_until(lambda: all(r.ended_at is not None
                                               for r in s.ollama.replies), 5)
        replies = [(r.client_closed, r.finished) for r in s.ollama.replies]
        run = await s.kernel.runner.wait(running["task_id"], timeout=5)
        history = (await s.client.get(f"/v1/sessions/{session}")).json()["history"]
    assert running["type"] == "heads_running"
    assert replies == [(True, False)] * 12
    assert run.status.value == "cancelled"
    assert WITNESS not in asked(s.ollama.requests)
    assert history == []


async def test_an_http_client_that_leaves_cancels_the_heads_provider_calls(
        dvadasa_server: DvadasaServer) -> None:
    import httpx
    import pytest

    script = dict.fromkeys(HEAD_IDS, Reply(text="too late", first_delay=30))
    async with dvadasa_server(script) as s:
        session = await s.session()
        async with httpx.AsyncClient(base_url=s.url, timeout=0.5) as impatient:
            with pytest.raises(httpx.ReadTimeout):
                await impatient.post(f"/v1/sessions/{session}/prompt",
                                     json={"prompt": "six times seven?",
                                           "use_all_heads": True})
        await s.ollama.await_until(lambda: len(s.ollama.replies) == 12 and all(
            r.ended_at is not None for r in s.ollama.replies), 5)
        replies = [(r.client_closed, r.finished) for r in s.ollama.replies]
    assert replies == [(True, False)] * 12


async def test_the_safety_plugin_redacts_heads_and_blocks_prompts(
        dvadasa_server: DvadasaServer) -> None:
    import armillary_dvadasa
    import armillary_ollama
    import armillary_safety
    import armillary_tasks

    plugins = {"ollama": armillary_ollama, "tasks": armillary_tasks,
               "safety": armillary_safety, "dvadasa": armillary_dvadasa}
    async with dvadasa_server(_pii_script(), plugins=plugins, sections={
            "safety": {"blocked_phrases": ["launch the missiles"]}}) as s:
        session = await s.session()
        r = await s.client.post(f"/v1/sessions/{session}/prompt",
                                json={"prompt": "Who to ask?", "use_all_heads": True})
        blocked = await s.client.post(f"/v1/sessions/{session}/prompt",
                                      json={"prompt": "Please launch the missiles now"})
        async with connect(f"{s.ws_url}/v1/sessions/{session}/stream") as ws:
            await ws.send(json.dumps({"prompt": "Who to ask?", "use_all_heads": True}))
            raw = []
            while True:
                raw.append(await asyncio.wait_for(ws.recv(), 10))
                if json.loads(raw[-1])["type"] in ("complete", "error"):
                    break
            await ws.send(json.dumps({"prompt": "Please launch the missiles now"}))
            ws_blocked = json.loads(await ws.recv())
    assert r.status_code == 200, r.text
    risk = {c["head_id"]: c for c in r.json()["head_contributions"]}["risk"]
    assert "[redacted:ssn]" in risk["summary"] and "[redacted:email]" in risk["summary"]
    assert "[redacted:ssn]" in json.loads(raw[-1])["final_answer"]
    for where, text in (("http", r.text), ("ws", "".join(raw))):
        for fragment in FRAGMENTS:
            assert fragment not in text, f"{fragment!r} reached {where}"
    assert (blocked.status_code, blocked.json()["code"]) == (400, "pre_check_failed")
    assert blocked.json()["check_code"] == "input_blocked"
    assert (ws_blocked["type"], ws_blocked["code"]) == ("error", "pre_check_failed")


async def test_a_client_that_leaves_during_the_witness_cancels_its_call(
        dvadasa_server: DvadasaServer) -> None:
    async with dvadasa_server({WITNESS: Reply(text="too late", first_delay=30)}) as s:
        session = await s.session()
        async with connect(f"{s.ws_url}/v1/sessions/{session}/stream") as ws:
            await ws.send(json.dumps({"prompt": "six times seven?", "use_all_heads": True}))
            while (m := json.loads(await asyncio.wait_for(ws.recv(), 10)))["type"] != \
                    "witness_running":
                task_id = m["task_id"]
            await eventually(lambda: WITNESS in asked(s.ollama.requests))
        await s.ollama.await_until(lambda: all(r.ended_at is not None
                                               for r in s.ollama.replies), 5)
        witness = [r for r in s.ollama.replies if not r.finished]
        run = await s.kernel.runner.wait(task_id, timeout=5)
        history = (await s.client.get(f"/v1/sessions/{session}")).json()["history"]
    assert m["skipped"] is False
    assert len(witness) == 1 and witness[0].client_closed  # the Witness's call, hung up on
    assert run.status.value == "cancelled"
    assert history == []
