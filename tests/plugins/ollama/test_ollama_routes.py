"""The multi-agent seed's routes, POST /ollama/chat and GET /ollama/models, served by a
real uvicorn on loopback in front of the Ollama test server; and the plugin's settings."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import armillary_ollama
import httpx
import pytest
import uvicorn
from armillary_ollama import OllamaProvider

from armillary._errors import ConfigError
from armillary.testing import free_port, make_app, make_kernel
from tests.support.ollama_server import FIXTURES, OllamaTestServer, Reply

SEED_BODY = {"model": "llama3.2", "message": "Why is the sky blue?", "agent_id": "agent-7",
             "conversation_history": [{"role": "user", "content": "hi"},
                                      {"role": "assistant", "content": "Hello!"}],
             "temperature": 0.3, "max_tokens": 128}


@asynccontextmanager
async def served(config: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    app = make_app({"ollama": armillary_ollama}, config={"plugins": {"ollama": config}})
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                     timeout=10) as client:
            yield client
    finally:
        server.should_exit = True
        await task


@pytest.fixture
def ollama():
    with OllamaTestServer() as server:
        yield server


@pytest.fixture
async def client(ollama: OllamaTestServer):
    async with served({"base_url": ollama.url, "chunk_timeout": 1.0}) as c:
        yield c


async def test_chat_answers_json_with_the_reply(ollama, client) -> None:
    ollama.push("Rayleigh scattering.")
    response = await client.post("/ollama/chat", json=SEED_BODY)
    assert response.status_code == 200
    body = response.json()
    assert body["response"] == "Rayleigh scattering."
    assert body["message"] == {"role": "assistant", "content": "Rayleigh scattering."}
    assert body["model"] == "llama3.2" and body["agent_id"] == "agent-7"
    assert body["done"] is True and body["provider"] == "ollama"
    assert body["usage"]["completion_tokens"] == 2

    sent = ollama.chat_requests[-1].json
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][-1]["content"] == "Why is the sky blue?"
    assert sent["options"] == {"temperature": 0.3, "num_predict": 128}


async def test_chat_uses_the_seeds_defaults(ollama, client) -> None:
    await client.post("/ollama/chat", json={"model": "llama3.2", "message": "hi"})
    assert ollama.chat_requests[-1].json["options"] == {"temperature": 0.7,
                                                        "num_predict": 2048}


async def test_chat_streams_ndjson_when_asked(ollama, client) -> None:
    ollama.push("one two three")
    async with client.stream("POST", "/ollama/chat", json={**SEED_BODY, "stream": True}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(line) async for line in r.aiter_lines() if line]
    assert [x["message"]["content"] for x in lines[:-1]] == ["one ", "two ", "three"]
    assert all(x["done"] is False for x in lines[:-1])
    assert lines[-1]["done"] is True and lines[-1]["agent_id"] == "agent-7"
    assert lines[-1]["usage"]["completion_tokens"] == 3


async def test_a_fast_stream_arrives_whole_and_in_order(ollama, client) -> None:
    ollama.push(Reply(tokens=[f"t{i} " for i in range(5000)]))
    r = await client.post("/ollama/chat", json={**SEED_BODY, "stream": True})
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert "".join(x["message"]["content"] for x in lines[:-1]) == \
        "".join(f"t{i} " for i in range(5000))
    assert len(lines) == 5001 and lines[-1]["done"] is True


async def test_a_slow_client_holds_back_the_upstream_read(ollama, client) -> None:
    ollama.push(Reply(tokens=[f"token-{i:06d} " * 20 for i in range(60000)]))
    async with client.stream("POST", "/ollama/chat", json={**SEED_BODY, "stream": True}) as r:
        await anext(r.aiter_raw())
        await asyncio.sleep(0.5)  # read nothing more: buffers fill, the relay must wait
        record = ollama.streams[-1]
        assert not record.finished
        assert record.lines_sent < 60000
    assert await ollama.await_until(lambda: ollama.open_streams == 0, timeout=2.0)


async def test_an_ndjson_accept_header_also_asks_for_a_stream(ollama, client) -> None:
    r = await client.post("/ollama/chat", json=SEED_BODY,
                          headers={"accept": "application/x-ndjson"})
    assert r.headers["content-type"] == "application/x-ndjson"
    assert json.loads(r.text.splitlines()[-1])["done"] is True


@pytest.mark.parametrize(("accept", "streamed"), [
    ("application/x-ndjson", True),
    ("application/x-ndjson; q=0.9, */*; q=0.1", True),
    ("application/json, application/x-ndjson", False),     # JSON first on a tie
    ("application/x-ndjson; q=0.5, application/json", False),
    ("application/x-ndjson; q=0", False),
    ("*/*", False),                                        # a wildcard never asks for it
    ("", False),
])
async def test_only_an_accept_that_prefers_ndjson_gets_the_stream(
        ollama, client, accept, streamed) -> None:
    r = await client.post("/ollama/chat", json=SEED_BODY, headers={"accept": accept})
    assert r.status_code == 200
    media = "application/x-ndjson" if streamed else "application/json"
    assert r.headers["content-type"] == media
    assert ollama.chat_requests[-1].json["stream"] is streamed


@pytest.mark.parametrize("stream", [False, True])
async def test_unknown_model_is_404_model_not_found(client, stream) -> None:
    r = await client.post("/ollama/chat", json={**SEED_BODY, "model": "llama9",
                                                "stream": stream})
    assert r.status_code == 404
    assert r.json()["code"] == "model_not_found"
    assert "llama9" in r.json()["detail"]


@pytest.mark.parametrize("stream", [False, True])
async def test_upstream_failure_is_502_provider_error_with_its_message(
        ollama, client, stream) -> None:
    ollama.push(Reply(status=500, error="the model failed to generate a response"))
    r = await client.post("/ollama/chat", json={**SEED_BODY, "stream": stream})
    assert r.status_code == 502
    assert r.json()["code"] == "provider_error"
    assert "the model failed to generate a response" in r.json()["detail"]


async def test_unreachable_ollama_is_503_provider_unavailable() -> None:
    async with served({"base_url": f"http://127.0.0.1:{free_port()}"}) as client:
        r = await client.post("/ollama/chat", json=SEED_BODY)
        assert (r.status_code, r.json()["code"]) == (503, "provider_unavailable")
        r = await client.get("/ollama/models")
        assert (r.status_code, r.json()["code"]) == (503, "provider_unavailable")


@pytest.mark.parametrize("stream", [False, True])
async def test_ollama_hanging_up_before_replying_is_503(ollama, client, stream) -> None:
    ollama.push(Reply(hangup=True))
    r = await client.post("/ollama/chat", json={**SEED_BODY, "stream": stream})
    assert (r.status_code, r.json()["code"]) == (503, "provider_unavailable")


async def test_a_stall_mid_stream_ends_the_stream_with_a_timeout_line(ollama, client) -> None:
    ollama.push(Reply(text="one two", after=1, stall=math.inf))
    r = await client.post("/ollama/chat", json={**SEED_BODY, "stream": True})
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert lines[0]["message"]["content"] == "one "
    assert lines[-1]["code"] == "provider_timeout" and lines[-1]["done"] is True


async def test_an_error_mid_stream_is_the_last_line(ollama, client) -> None:
    ollama.push(Reply(text="one two three", error="out of memory", after=2))
    r = await client.post("/ollama/chat", json={**SEED_BODY, "stream": True})
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert [x["message"]["content"] for x in lines[:2]] == ["one ", "two "]
    assert lines[-1]["code"] == "provider_error" and "out of memory" in lines[-1]["error"]


async def test_client_disconnect_closes_the_upstream_connection(ollama, client) -> None:
    ollama.push(Reply(tokens=[f"t{i} " for i in range(5000)], delay=0.005))
    async with client.stream("POST", "/ollama/chat", json={**SEED_BODY, "stream": True}) as r:
        lines = r.aiter_lines()
        await anext(lines)
        await anext(lines)
        assert ollama.open_streams == 1
    # the client hung up: the server side of the upstream stream must close at once
    assert await ollama.await_until(lambda: ollama.open_streams == 0, timeout=2.0)
    record = ollama.streams[-1]
    assert record.client_closed and not record.finished
    assert record.lines_sent < 1000


async def test_models_lists_ollamas_tags(client) -> None:
    r = await client.get("/ollama/models")
    assert r.status_code == 200
    body = r.json()
    assert [m["name"] for m in body["models"]] == ["llama3.2:latest", "deepseek-r1:latest"]
    assert body["provider"] == "ollama" and body["default_model"] == "llama3.2"


async def test_a_named_instance_can_be_chosen_per_request() -> None:
    with OllamaTestServer(default="from main") as main, \
            OllamaTestServer(default="from gpu", models=["llama3.1:70b"]) as gpu:
        config = {"base_url": main.url, "instances": {"ollama-gpu": {
            "base_url": gpu.url, "model": "llama3.1:70b"}}}
        async with served(config) as client:
            r = await client.post("/ollama/chat", json=SEED_BODY)
            assert r.json()["response"] == "from main"
            r = await client.post("/ollama/chat", json={**SEED_BODY, "model": "llama3.1:70b",
                                                        "provider": "ollama-gpu"})
            assert r.json()["response"] == "from gpu"
            r = await client.get("/ollama/models", params={"provider": "ollama-gpu"})
            assert [m["name"] for m in r.json()["models"]] == ["llama3.1:70b"]
            r = await client.post("/ollama/chat", json={**SEED_BODY, "provider": "openai"})
            assert (r.status_code, r.json()["code"]) == (404, "provider_not_found")


@pytest.mark.parametrize("stream", [False, True])
async def test_an_unknown_provider_is_404_as_everywhere_else(client, stream) -> None:
    r = await client.post("/ollama/chat", json={**SEED_BODY, "provider": "zzz",
                                                "stream": stream})
    assert (r.status_code, r.json()["code"]) == (404, "provider_not_found")
    assert "zzz" in r.json()["detail"]
    r = await client.get("/ollama/models", params={"provider": "zzz"})
    assert (r.status_code, r.json()["code"]) == (404, "provider_not_found")


# --- conversation_history validation ---------------------------------------------------

@pytest.mark.parametrize(("item", "field"), [
    ({"role": "user", "content": "a", "name": 123}, "conversation_history.0.name"),
    ({"role": "wizard", "content": "a"}, "conversation_history.0.role"),
    ({"role": "user", "content": {"text": "a"}}, "conversation_history.0.content"),
    ({"role": 5, "content": "a"}, "conversation_history.0.role"),
])
async def test_a_bad_history_item_is_422_naming_the_field(ollama, client, item,
                                                          field) -> None:
    r = await client.post("/ollama/chat", json={"model": "llama3.2", "message": "hi",
                                                "conversation_history": [item]})
    assert r.status_code == 422
    assert r.json()["code"] == "validation_error"
    assert field in r.json()["detail"]
    assert not ollama.chat_requests


async def test_null_content_in_history_is_sent_as_empty_text(ollama, client) -> None:
    r = await client.post("/ollama/chat", json={
        "model": "llama3.2", "message": "hi", "conversation_history": [
            {"role": "assistant", "content": None},
            {"role": "tool", "content": "21C", "name": "get_weather"},
            {"role": "Human", "content": "thanks"}]})
    assert r.status_code == 200
    sent = ollama.chat_requests[-1].json["messages"]
    assert sent[0] == {"role": "assistant", "content": ""}
    assert sent[1] == {"role": "tool", "content": "21C", "tool_name": "get_weather"}
    assert sent[2] == {"role": "user", "content": "thanks"}


# --- clients that go away -------------------------------------------------------------

@pytest.fixture
async def patient(ollama: OllamaTestServer):
    """A client of a server whose timeouts are far longer than the tests' replies: only
    the client hanging up can end them early."""
    async with served({"base_url": ollama.url, "chunk_timeout": 30,
                       "request_timeout": 30}) as c:
        yield c


async def test_a_client_that_hangs_up_stops_a_whole_reply_upstream(ollama, patient) -> None:
    ollama.push(Reply(text="one two three four", delay=1.0))  # the reply takes 4 s
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        await patient.post("/ollama/chat", json=SEED_BODY, timeout=0.3)
    # Ollama's side: the request's connection closed long before the reply was ready
    assert await ollama.await_until(
        lambda: bool(ollama.replies) and ollama.replies[-1].ended_at is not None,
        timeout=3.5)  # the reply itself would have ended, finished, at about 4 s
    record = ollama.replies[-1]
    assert record.client_closed and not record.finished
    assert record.ended_at is not None and record.ended_at - started < 3.5


async def test_a_client_that_hangs_up_before_the_first_token_stops_the_stream_upstream(
        ollama, patient) -> None:
    ollama.push(Reply(text="one two", first_delay=4.0))  # a slow model load
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        await patient.post("/ollama/chat", json={**SEED_BODY, "stream": True}, timeout=0.3)
    assert await ollama.await_until(
        lambda: bool(ollama.replies) and ollama.replies[-1].ended_at is not None,
        timeout=3.5)  # the reply itself would have ended, finished, at about 4 s
    record = ollama.replies[-1]
    assert record.client_closed and not record.finished
    assert record.ended_at is not None and record.ended_at - started < 3.5
    assert not ollama.streams  # Ollama never started streaming


# --- Ollama's shapes ----------------------------------------------------------------------

def _fixture_lines() -> list[dict[str, Any]]:
    text = (FIXTURES / "chat_stream.ndjson").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


TOOL_CALL = {"id": "call_1", "name": "get_weather", "arguments": {"city": "Tokyo"}}


async def test_stream_lines_have_ollamas_shape(ollama, client) -> None:
    token, tools, final = _fixture_lines()
    ollama.push(Reply(text="It is", tool_calls=[TOOL_CALL], prompt_eval_count=12,
                      eval_count=7))
    r = await client.post("/ollama/chat", json={**SEED_BODY, "stream": True})
    lines = [json.loads(line) for line in r.text.splitlines()]
    for line in lines[:2]:
        assert list(line) == list(token)  # model, created_at, message, done
        assert list(line["message"]) == ["role", "content"]
        assert line["created_at"].endswith("Z") and line["done"] is False
    # the tool calls on their own line before the last, in Ollama's shape
    assert set(tools) <= set(lines[2]) and lines[2]["done"] is False
    assert lines[2]["message"] == {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_1", "function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}}]}
    last = lines[3]
    assert set(final) - {"load_duration", "prompt_eval_duration", "eval_duration"} \
        <= set(last)
    assert last["done"] is True and last["message"] == {"role": "assistant", "content": ""}
    assert (last["prompt_eval_count"], last["eval_count"]) == (12, 7)
    assert isinstance(last["total_duration"], int) and last["total_duration"] > 0
    # the seed's extra fields, as on the whole reply
    assert last["provider"] == "ollama" and last["agent_id"] == "agent-7"
    assert last["usage"]["completion_tokens"] == 7


async def test_the_whole_reply_has_ollamas_shape(ollama, client) -> None:
    whole = json.loads((FIXTURES / "chat.json").read_text())
    ollama.push(Reply(tool_calls=[TOOL_CALL], prompt_eval_count=12, eval_count=7))
    body = (await client.post("/ollama/chat", json=SEED_BODY)).json()
    assert set(whole) - {"load_duration", "prompt_eval_duration", "eval_duration"} \
        <= set(body)
    assert body["message"] == {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_1", "function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}}]}
    assert body["created_at"].endswith("Z")
    assert (body["prompt_eval_count"], body["eval_count"]) == (12, 7)
    assert body["provider"] == "ollama" and body["response"] == ""


# --- settings and registration ----------------------------------------------------------

def test_each_instance_is_a_provider_and_one_is_the_default() -> None:
    kernel = make_kernel({"ollama": armillary_ollama}, config={"plugins": {"ollama": {
        "base_url": "http://a:11434", "model": "llama3.2", "chunk_timeout": 30,
        "instances": {"ollama-gpu": {"base_url": "http://b:11434", "model": "qwen3"}},
        "default": "ollama-gpu"}}})
    providers = {name: p for name, (_, p) in kernel.registry.providers.items()}
    assert set(providers) == {"ollama", "ollama-gpu"}
    assert kernel.provider().name == "ollama-gpu"
    gpu = providers["ollama-gpu"]
    assert isinstance(gpu, OllamaProvider)
    assert (gpu.base_url, gpu.default_model) == ("http://b:11434", "qwen3")
    # unset instance fields come from the main section
    assert gpu._stream_timeout.read == 30


def test_an_instance_on_another_host_does_not_inherit_the_headers() -> None:
    settings = armillary_ollama.OllamaSettings.model_validate({
        "headers": {"Authorization": "Bearer proxy-token"}, "model": "qwen3",
        "instances": {"lan": {"base_url": "http://other:11434"},
                      "warm": {"keep_alive": -1}}})
    resolved = settings.resolved()
    assert not resolved["lan"]["headers"] and resolved["lan"]["model"] == "qwen3"
    assert resolved["warm"]["headers"] == {"Authorization": "Bearer proxy-token"}


def test_the_main_instance_is_the_default_unless_told() -> None:
    kernel = make_kernel({"ollama": armillary_ollama})
    assert kernel.provider().name == "ollama"
    assert kernel.provider().default_model == "llama3.2"


@pytest.mark.parametrize(("section", "problem"), [
    ({"base_ur": "http://x"}, "base_ur: unknown key"),
    ({"default": "nope"}, "no instance named 'nope'"),
    ({"instances": {"gpu": {"model": "x", "colour": "red"}}}, "colour"),
    ({"connect_timeout": 0}, "connect_timeout"),
])
def test_bad_settings_are_named(section: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_kernel({"ollama": armillary_ollama}, config={"plugins": {"ollama": section}})
    assert problem in str(info.value)
    assert "[plugins.ollama]" in str(info.value)


def test_routes_can_be_switched_off() -> None:
    kernel = make_kernel({"ollama": armillary_ollama},
                         config={"plugins": {"ollama": {"routes": False}}})
    assert not [e for e in kernel.registry.routers if e.plugin == "ollama"]
