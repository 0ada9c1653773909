"""POST /chat non-stream: replies, memory across turns, agents and prompts, errors."""

from __future__ import annotations

from pathlib import Path

from armillary._errors import ModelNotFound, ProviderTimeout, ProviderUnavailable
from armillary.testing import Turn
from tests.plugins.chat.conftest import ChatServer


async def test_a_reply_comes_back_with_a_new_conversation_id(chat_server: ChatServer) -> None:
    async with chat_server(["Hello there!"]) as s:
        r = await s.client.post("/chat", json={"message": "hi"})
    assert r.status_code == 200
    body = r.json()
    assert body["reply"] == "Hello there!"
    assert body["agent"] == "general"
    assert body["model"] == "scripted-1"
    assert body["usage"]["completion_tokens"] == 2
    assert body["conversation_id"]
    assert r.headers["x-conversation-id"] == body["conversation_id"]


async def test_the_default_agent_speaks_with_the_shipped_general_prompt(
        chat_server: ChatServer) -> None:
    async with chat_server(["ok"]) as s:
        await s.client.post("/chat", json={"message": "hi"})
    system = s.provider.requests[0].messages[0]
    assert system.role == "system"
    assert "helpful" in system.content
    assert s.provider.requests[0].messages[-1].content == "hi"


async def test_the_conversation_history_is_sent_on_the_next_turn(chat_server: ChatServer) -> None:
    async with chat_server(["I am Pi.", "You asked who I am."]) as s:
        first = (await s.client.post("/chat", json={"message": "who are you?"})).json()
        cid = first["conversation_id"]
        second = await s.client.post("/chat", json={"message": "what did I ask?",
                                                    "conversation_id": cid})
        history = (await s.client.get(f"/chat/{cid}")).json()
    assert second.json()["conversation_id"] == cid
    roles = [(m.role, m.content) for m in s.provider.requests[1].messages[1:]]
    assert roles == [("user", "who are you?"), ("assistant", "I am Pi."),
                     ("user", "what did I ask?")]
    assert [(t["user"], t["assistant"], t["partial"]) for t in history["turns"]] == [
        ("who are you?", "I am Pi.", False), ("what did I ask?", "You asked who I am.", False)]


async def test_history_is_capped_at_max_turns(chat_server: ChatServer) -> None:
    config = {"plugins": {"chat": {"memory_max_turns": 2}}}
    async with chat_server(["r"], config=config) as s:
        cid = "fixed-id"
        for i in range(5):
            await s.client.post("/chat", json={"message": f"m{i}", "conversation_id": cid})
    users = [m.content for m in s.provider.requests[-1].messages if m.role == "user"]
    assert users == ["m2", "m3", "m4"]


async def test_conversations_beyond_the_cap_evict_the_least_recently_used(
        chat_server: ChatServer) -> None:
    config = {"plugins": {"chat": {"memory_max_conversations": 2}}}
    async with chat_server(["r"], config=config) as s:
        for cid in ("a", "b", "c"):
            await s.client.post("/chat", json={"message": "x", "conversation_id": cid})
        codes = {cid: (await s.client.get(f"/chat/{cid}")).status_code for cid in "abc"}
    assert codes == {"a": 404, "b": 200, "c": 200}


async def test_with_memory_disabled_each_request_stands_alone(chat_server: ChatServer) -> None:
    config = {"plugins": {"chat": {"memory_enabled": False}}}
    async with chat_server(["r"], config=config) as s:
        for _ in range(2):
            await s.client.post("/chat", json={"message": "x", "conversation_id": "c"})
        gone = await s.client.get("/chat/c")
    assert [m.role for m in s.provider.requests[1].messages] == ["system", "user"]
    assert gone.status_code == 404


async def test_forgetting_a_conversation(chat_server: ChatServer) -> None:
    async with chat_server(["r"]) as s:
        await s.client.post("/chat", json={"message": "x", "conversation_id": "c"})
        deleted = await s.client.delete("/chat/c")
        again = await s.client.delete("/chat/c")
        after = await s.client.get("/chat/c")
    assert deleted.status_code == 204
    assert again.json()["code"] == "conversation_not_found"
    assert after.status_code == 404


async def test_an_agent_from_plugins_toml_uses_its_instructions_and_model(
        chat_server: ChatServer) -> None:
    config = {"agents": {"pirate": {"instructions": "Talk like a pirate.",
                                    "model": "tiny-1", "options": {"temperature": 0.2,
                                                                   "num_ctx": 512}}}}
    async with chat_server(["Arr."], config=config) as s:
        r = await s.client.post("/chat", json={"message": "hi", "agent": "pirate"})
    assert r.json()["agent"] == "pirate"
    assert r.json()["model"] == "tiny-1"
    sent = s.provider.requests[0]
    assert sent.messages[0].content == "Talk like a pirate."
    assert sent.model == "tiny-1"
    assert sent.temperature == 0.2
    assert sent.options == {"num_ctx": 512}


async def test_a_prompt_file_relative_to_plugins_toml_is_the_system_prompt(
        chat_server: ChatServer, tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "general.txt").write_text("You are the house Pi.\n")
    from armillary._config import config_from_dict

    config = config_from_dict(
        {"kernel": {"store": "memory://"},
         "agents": {"general": {"instructions_file": "prompts/general.txt"}}},
        base_dir=tmp_path)
    async with chat_server(["ok"], config=config) as s:
        await s.client.post("/chat", json={"message": "hi"})
    assert s.provider.requests[0].messages[0].content == "You are the house Pi."


async def test_an_unknown_agent_is_404_agent_not_found(chat_server: ChatServer) -> None:
    async with chat_server() as s:
        r = await s.client.post("/chat", json={"message": "hi", "agent": "nobody"})
    assert r.status_code == 404
    assert r.json()["code"] == "agent_not_found"
    assert "nobody" in r.json()["detail"]


async def test_malformed_bodies_are_422(chat_server: ChatServer) -> None:
    async with chat_server() as s:
        missing = await s.client.post("/chat", json={"agent": "general"})
        empty = await s.client.post("/chat", json={"message": ""})
        bad_id = await s.client.post("/chat", json={"message": "x",
                                                    "conversation_id": "no spaces\n"})
        not_json = await s.client.post("/chat", content=b"{", headers={
            "content-type": "application/json"})
    for r in (missing, empty, bad_id, not_json):
        assert r.status_code == 422
        assert r.json()["code"] == "validation_error"


async def test_a_too_long_message_is_refused(chat_server: ChatServer) -> None:
    config = {"plugins": {"chat": {"max_message_chars": 10}}}
    async with chat_server(config=config) as s:
        r = await s.client.post("/chat", json={"message": "x" * 11})
    assert (r.status_code, r.json()["code"]) == (422, "message_too_long")


async def test_provider_faults_reach_the_client_with_their_codes(chat_server: ChatServer) -> None:
    turns = [Turn(error=ProviderUnavailable("ollama is not running")),
             Turn(error=ProviderTimeout("no answer in 60s")),
             Turn(error=ModelNotFound("model 'big' not found"))]
    async with chat_server(turns) as s:
        got = [await s.client.post("/chat", json={"message": "hi", "conversation_id": "c"})
               for _ in turns]
        history = await s.client.get("/chat/c")
    assert [(r.status_code, r.json()["code"]) for r in got] == [
        (503, "provider_unavailable"), (504, "provider_timeout"), (404, "model_not_found")]
    assert got[0].json()["detail"] == "ollama is not running"
    assert history.status_code == 404  # failed turns are not remembered


async def test_unknown_settings_keys_are_refused_at_startup() -> None:
    import armillary_chat
    import pytest

    from armillary._errors import ConfigError
    from armillary.testing import make_app

    with pytest.raises(ConfigError, match=r"\[plugins.chat\] memory_ttl: unknown key"):
        make_app({"chat": armillary_chat}, config={"plugins": {"chat": {"memory_ttl": 5}}})
