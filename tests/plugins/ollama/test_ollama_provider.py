"""The Ollama provider on the wire: what it sends and how it reads Ollama's answers,
against the Ollama test server on a loopback port."""

from __future__ import annotations

import pytest
from armillary_ollama import OllamaProvider

from armillary._errors import (
    ProviderError,
    ProviderProtocolError,
    ProviderTimeout,
    ProviderUnavailable,
)
from armillary._models import ChatRequest, Message, ToolCall, ToolSpec
from tests.support.ollama_server import OllamaTestServer, Reply

WEATHER = ToolSpec(name="get_weather", description="Get the weather in a given city",
                   parameters={"type": "object", "properties": {"city": {"type": "string"}},
                               "required": ["city"]})


def ask(text: str = "why is the sky blue?", **fields: object) -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content=text)], **fields)  # type: ignore[arg-type]


@pytest.fixture
def ollama():
    with OllamaTestServer() as server:
        yield server


@pytest.fixture
async def provider(ollama: OllamaTestServer):
    p = OllamaProvider(base_url=ollama.url, model="llama3.2")
    yield p
    await p.aclose()


async def test_request_fields_map_onto_ollama_options(ollama, provider) -> None:
    await provider.chat(ask(temperature=0.2, max_tokens=64, stop=["\n"], seed=7,
                            options={"num_ctx": 4096, "top_k": 20, "keep_alive": "10m",
                                     "format": "json", "tool_choice": "ignored-by-ollama"}))
    body = ollama.chat_requests[-1].json
    assert body["model"] == "llama3.2"
    assert body["stream"] is False
    assert body["options"] == {"temperature": 0.2, "num_predict": 64, "stop": ["\n"],
                               "seed": 7, "num_ctx": 4096, "top_k": 20}
    assert body["keep_alive"] == "10m"
    assert body["format"] == "json"
    assert "tool_choice" not in body and "tool_choice" not in body["options"]


async def test_settings_give_default_options_and_keep_alive(ollama) -> None:
    provider = OllamaProvider(base_url=ollama.url, model="deepseek-r1", keep_alive="1h",
                              options={"num_ctx": 8192, "temperature": 0.9})
    try:
        await provider.chat(ask(temperature=0.1))
    finally:
        await provider.aclose()
    body = ollama.chat_requests[-1].json
    assert body["model"] == "deepseek-r1"
    assert body["options"] == {"num_ctx": 8192, "temperature": 0.1}
    assert body["keep_alive"] == "1h"


async def test_tools_and_tool_results_use_ollamas_message_shapes(ollama, provider) -> None:
    ollama.push(Reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Toronto"}}]),
                Reply(text="The current temperature in Toronto is 11°C."))
    first = ask("what is the weather in Toronto?", tools=[WEATHER])
    reply = await provider.chat(first)
    call = reply.message.tool_calls[0]
    assert (call.name, call.arguments) == ("get_weather", {"city": "Toronto"})
    assert reply.finish_reason == "tool_calls"

    history = [*first.messages, reply.message,
               Message(role="tool", content="11 degrees celsius", name="get_weather",
                       tool_call_id=call.id)]
    answer = await provider.chat(ChatRequest(messages=history, tools=[WEATHER]))
    assert answer.message.content == "The current temperature in Toronto is 11°C."

    sent = ollama.chat_requests[-1].json
    assert sent["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Get the weather in a given city",
        "parameters": WEATHER.parameters}}]
    assistant, tool = sent["messages"][1], sent["messages"][2]
    assert assistant["tool_calls"][0]["function"] == {"name": "get_weather",
                                                      "arguments": {"city": "Toronto"}}
    assert tool == {"role": "tool", "content": "11 degrees celsius",
                    "tool_name": "get_weather", "tool_call_id": call.id}


async def test_tool_call_ids_from_ollama_are_kept(ollama, provider) -> None:
    ollama.push(Reply(tool_calls=[{"id": "call_abc", "name": "get_weather",
                                   "arguments": {"city": "Paris"}}]))
    chunks = [c async for c in provider.stream(ask(tools=[WEATHER]))]
    assert chunks[-1].tool_calls == [ToolCall(id="call_abc", name="get_weather",
                                              arguments={"city": "Paris"})]


async def test_stream_reports_usage_from_the_final_line(ollama, provider) -> None:
    ollama.push(Reply(text="a b c", prompt_eval_count=26, eval_count=3))
    chunks = [c async for c in provider.stream(ask())]
    assert [c.delta for c in chunks] == ["a ", "b ", "c", ""]
    assert chunks[-1].usage.model_dump() == {"prompt_tokens": 26, "completion_tokens": 3,
                                             "total_tokens": 29}
    assert chunks[-1].finish_reason == "stop"


async def test_generate_completes_a_prompt_streamed_or_not(ollama, provider) -> None:
    ollama.push("The sky is blue because of Rayleigh scattering.", "It is blue.")
    whole = await provider.generate("Why is the sky blue?", system="Be brief.")
    assert whole.message.content == "The sky is blue because of Rayleigh scattering."
    body = ollama.requests[-1]
    assert body.path == "/api/generate"
    assert body.json["prompt"] == "Why is the sky blue?"
    assert body.json["system"] == "Be brief."
    assert body.json["stream"] is False

    pieces = [c.delta async for c in provider.stream_generate("Again?")]
    assert "".join(pieces) == "It is blue."
    assert ollama.requests[-1].json["stream"] is True


async def test_models_come_from_api_tags(provider) -> None:
    models = await provider.models()
    assert [m.name for m in models] == ["llama3.2:latest", "deepseek-r1:latest"]
    assert models[0].details["family"] == "llama"
    assert models[0].size == 2019393189


async def test_health_reports_the_ollama_version(provider) -> None:
    health = await provider.health()
    assert health.reachable and health.detail == "ollama 0.5.1"


async def test_a_base_url_that_is_not_ollama_is_a_provider_error_not_model_not_found(
        ollama) -> None:
    provider = OllamaProvider(base_url=ollama.url + "/v1")
    try:
        with pytest.raises(ProviderError) as info:
            await provider.chat(ask())
    finally:
        await provider.aclose()
    assert info.value.code == "provider_error"
    assert "is base_url an Ollama server?" in info.value.detail


async def test_an_error_line_before_any_text_is_raised(ollama, provider) -> None:
    ollama.push(Reply(error="model requires more system memory", after=0))
    with pytest.raises(ProviderError) as info:
        [c async for c in provider.stream(ask())]
    assert info.value.code == "provider_error"
    assert "more system memory" in info.value.detail


async def test_a_stream_that_ends_without_its_done_line_is_a_protocol_error(
        ollama, provider) -> None:
    ollama.push(Reply(lines=['{"model":"llama3.2","created_at":"2025-01-01T00:00:00Z",'
                             '"message":{"role":"assistant","content":"Hi"},"done":false}']))
    chunks = [c async for c in provider.stream(ask())]
    assert chunks[0].delta == "Hi"
    assert chunks[-1].error.code == "provider_protocol_error"


async def test_a_dropped_connection_mid_stream_ends_with_an_error_chunk(
        ollama, provider) -> None:
    ollama.push(Reply(text="one two three", drop_after=2))
    chunks = [c async for c in provider.stream(ask())]
    assert [c.delta for c in chunks[:2]] == ["one ", "two "]
    assert chunks[-1].done and chunks[-1].error.code == "provider_protocol_error"


@pytest.mark.parametrize("stream", [False, True])
async def test_a_server_that_hangs_up_before_replying_is_unavailable(
        ollama, provider, stream) -> None:
    # nothing of a reply came back: the server is down (crashed, restarting), which is
    # provider_unavailable like a refused connection, not a protocol error
    ollama.push(Reply(text="never sent", hangup=True))
    with pytest.raises(ProviderUnavailable) as info:
        if stream:
            await anext(aiter(provider.stream(ask())))
        else:
            await provider.chat(ask())
    assert info.value.code == "provider_unavailable"
    assert "disconnected" in info.value.detail


async def test_a_connection_dropped_after_the_reply_started_stays_a_protocol_error(
        ollama, provider) -> None:
    ollama.push(Reply(text="one two", drop_after=0))  # status line and headers, then gone
    with pytest.raises(ProviderProtocolError):
        await anext(aiter(provider.stream(ask())))


async def test_a_malformed_whole_reply_is_a_protocol_error(ollama, provider) -> None:
    ollama.push(Reply(malformed=b"<html>bad gateway</html>"))
    with pytest.raises(ProviderProtocolError):
        await provider.chat(ask())


async def test_a_slow_first_line_beyond_the_chunk_timeout_is_provider_timeout(ollama) -> None:
    ollama.push(Reply(text="late", first_delay=1.0))
    provider = OllamaProvider(base_url=ollama.url, chunk_timeout=0.2)
    try:
        with pytest.raises(ProviderTimeout) as info:
            [c async for c in provider.stream(ask())]
    finally:
        await provider.aclose()
    assert info.value.status_code == 504
    assert "0.2s" in info.value.detail


async def test_concurrent_streams_share_one_provider(ollama, provider) -> None:
    import asyncio

    ollama.default = Reply(text="x y z", delay=0.01)

    async def one() -> str:
        return "".join([c.delta async for c in provider.stream(ask())])

    assert await asyncio.gather(*(one() for _ in range(10))) == ["x y z"] * 10


async def test_fields_of_the_wrong_type_are_protocol_errors_not_crashes(
        ollama, provider) -> None:
    good = ('{"model":"llama3.2","created_at":"2025-01-01T00:00:00Z","message":'
            '{"role":"assistant","content":"Hi"},"done":false}')
    ollama.push(Reply(lines=[good, '{"model":"llama3.2","message":{"content":123},'
                                   '"done":false}']))
    chunks = [c async for c in provider.stream(ask())]
    assert chunks[-1].error.code == "provider_protocol_error"

    ollama.push(Reply(lines=[good, '{"model":"llama3.2","message":{"content":""},'
                                   '"done":true,"eval_count":"many"}']))
    chunks = [c async for c in provider.stream(ask())]
    assert chunks[-1].done and chunks[-1].error is None and chunks[-1].usage is None

    async def whole(request, out):  # type: ignore[no-untyped-def]
        await out.send_json(200, {"model": "llama3.2", "message": {"content": ["x"]},
                                  "done": True})

    ollama.handler = whole
    with pytest.raises(ProviderProtocolError):
        await provider.chat(ask())


async def test_health_does_not_wait_for_a_stalled_server_beyond_the_connect_timeout(
        ollama) -> None:
    import time

    async def stall(request, out):  # type: ignore[no-untyped-def]
        await out.sleep(30)

    ollama.handler = stall
    provider = OllamaProvider(base_url=ollama.url, connect_timeout=0.3, chunk_timeout=60)
    started = time.monotonic()
    try:
        health = await provider.health()
    finally:
        await provider.aclose()
    # far less than the 30 s stall: health gives up at its own bound, whatever the load
    assert not health.reachable and time.monotonic() - started < 10


async def test_text_with_unicode_line_separators_arrives_whole(ollama, provider) -> None:
    # JSON may carry U+2028, U+0085 and friends unescaped (Ollama's test server writes
    # them raw, as Python's encoder does): only "\n" ends an NDJSON line
    tokens = ["one\u2028two ", "three\x85four ", "five\u2029six\x1c"]
    ollama.push(Reply(tokens=tokens))
    chunks = [c async for c in provider.stream(ask())]
    assert [c.delta for c in chunks[:-1]] == tokens
    assert chunks[-1].done and chunks[-1].error is None
    # (and the test proves it: the server really writes them unescaped)
    assert "\u2028".encode() in _raw_token_line(ollama, tokens[0])


def _raw_token_line(server: OllamaTestServer, piece: str) -> bytes:
    """The bytes the test server writes for a token line holding `piece`."""
    from tests.support.ollama_server import _dumps

    return _dumps(server._token_line("chat", "llama3.2", piece))


SECRET = "hunter2-upstream"


@pytest.mark.parametrize("where", ["status", "whole", "mid_stream"])
async def test_an_upstream_message_naming_a_url_has_its_credentials_masked(
        ollama, provider, where) -> None:
    message = f"cannot reach http://admin:{SECRET}@gpu-box:11434/api?token={SECRET}"
    if where == "status":
        ollama.push(Reply(status=502, error=message))
        with pytest.raises(ProviderError) as info:
            await provider.chat(ask())
        detail = info.value.detail
    elif where == "whole":
        ollama.push(Reply(status=502, error=message))
        with pytest.raises(ProviderError) as info:
            await anext(aiter(provider.stream(ask())))
        detail = info.value.detail
    else:
        ollama.push(Reply(text="one two", error=message, after=1))
        chunks = [c async for c in provider.stream(ask())]
        assert chunks[0].delta == "one "
        detail = chunks[-1].error.detail
    assert "admin:***@gpu-box:11434" in detail and "token=***" in detail
    assert SECRET not in detail


async def test_health_names_what_a_server_that_is_not_ollama_answered(ollama) -> None:
    provider = OllamaProvider(base_url=ollama.url + "/v1")
    try:
        health = await provider.health()
    finally:
        await provider.aclose()
    assert not health.reachable and health.latency_ms is not None
    assert health.detail == f"{ollama.url}/v1/api/version answered 404: 404 page not found"
