"""With the auth plugin on, a session and its prompts' runs belong to the key that
created them (the kernel's conversations and run store stamp the current principal):
another key gets the seed's 404 on HTTP and WebSocket alike; an admin key sees it."""

from __future__ import annotations

import json

import armillary_auth
import armillary_dvadasa
import armillary_ollama
import armillary_tasks
from websockets.asyncio.client import connect

from tests.plugins.dvadasa.conftest import DvadasaServer

KEYS = [{"name": "alice", "key": "alice-key-0123456789"},
        {"name": "bob", "key": "bob-key-0123456789"},
        {"name": "root", "key": "root-key-0123456789", "scopes": ["admin"]}]
ALICE, BOB, ROOT = ({"X-API-Key": k["key"]} for k in KEYS)


async def test_a_session_is_its_creators(dvadasa_server: DvadasaServer) -> None:
    plugins = {"auth": armillary_auth, "ollama": armillary_ollama,
               "tasks": armillary_tasks, "dvadasa": armillary_dvadasa}
    async with dvadasa_server(plugins=plugins, sections={"auth": {"keys": KEYS}}) as s:
        c = s.client
        created = await c.post("/v1/sessions", params={"user_id": "u1"}, headers=ALICE)
        session = created.json()["session_id"]
        url = f"/v1/sessions/{session}/prompt"
        mine = await c.post(url, json={"prompt": "Capital of France?"}, headers=ALICE)
        task_id = mine.json()["task_id"]
        calls = len(s.ollama.chat_requests)
        bobs_prompt = await c.post(url, json={"prompt": "Capital of France?"}, headers=BOB)
        bobs_get = await c.get(f"/v1/sessions/{session}", headers=BOB)
        bobs_task = await c.get(f"/v1/tasks/{task_id}", headers=BOB)
        roots_get = await c.get(f"/v1/sessions/{session}", headers=ROOT)
        anonymous = await c.post(url, json={"prompt": "hi"})
        calls_after = len(s.ollama.chat_requests)
        async with connect(f"{s.ws_url}/v1/sessions/{session}/stream"
                           f"?api_key={KEYS[1]['key']}") as ws:
            bobs_ws = json.loads(await ws.recv())
        async with connect(f"{s.ws_url}/v1/sessions/{session}/stream"
                           f"?api_key={KEYS[0]['key']}") as ws:
            await ws.send(json.dumps({"prompt": "Capital of Spain?"}))
            while (alices_ws := json.loads(await ws.recv()))["type"] not in (
                    "complete", "error"):
                pass
        history = (await c.get(f"/v1/sessions/{session}", headers=ALICE)).json()["history"]
        runs = [await s.kernel.store.get_run(t) for t in (task_id, alices_ws["task_id"])]
    assert created.status_code == 200 and mine.status_code == 200, mine.text
    assert (bobs_prompt.status_code, bobs_prompt.json()["code"]) == (404, "session_not_found")
    assert (bobs_get.status_code, bobs_get.json()["code"]) == (404, "session_not_found")
    assert bobs_task.status_code == 404
    assert roots_get.status_code == 200 and len(roots_get.json()["history"]) == 1
    assert anonymous.status_code == 401
    assert calls_after == calls  # bob's prompt reached no model
    assert (bobs_ws["type"], bobs_ws["code"]) == ("error", "session_not_found")
    assert alices_ws["type"] == "complete", alices_ws
    assert [h["task_id"] for h in history] == [task_id, alices_ws["task_id"]]
    assert [r.owner for r in runs if r is not None] == ["alice", "alice"]
