"""The OpenAI-compatible provider on the wire, against the loopback fake: request bodies,
SSE parsing, tool-call fragments, usage, error shapes, settings and instances."""

from __future__ import annotations

import json
from typing import Any

import armillary_openai
import pytest
from armillary_openai import OpenAIProvider

from armillary import ChatRequest, Message, ProviderError, ToolCall, ToolSpec
from armillary._errors import ConfigError
from armillary.testing import make_kernel
from tests.support.openai_server import OpenAITestServer, Reply

WEATHER = ToolSpec(name="get_weather", description="Get the weather in a given city",
                   parameters={"type": "object", "properties": {"city": {"type": "string"}},
                               "required": ["city"]})


def ask(text: str = "Hello?", **fields: Any) -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content=text)], **fields)


@pytest.fixture
def server():
    with OpenAITestServer(api_key="sk-test") as s:
        yield s


@pytest.fixture
async def provider(server: OpenAITestServer):
    p = OpenAIProvider(base_url=server.url + "/v1", api_key="sk-test", model="gpt-4o-mini")
    yield p
    await p.aclose()


async def test_request_fields_map_onto_the_chat_completions_body(server, provider) -> None:
    await provider.chat(ask(temperature=0.2, max_tokens=64, stop=["\n"], seed=7,
                            options={"top_p": 0.9, "num_ctx": 4096}))
    request = server.chat_requests[-1]
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.json == {"model": "gpt-4o-mini",
                            "messages": [{"role": "user", "content": "Hello?"}],
                            "top_p": 0.9, "temperature": 0.2, "max_tokens": 64,
                            "stop": ["\n"], "seed": 7}


async def test_streams_ask_for_usage_and_report_it_from_the_last_chunk(
        server, provider) -> None:
    server.push(Reply(text="a b c", usage={"prompt_tokens": 5, "completion_tokens": 3,
                                           "total_tokens": 8}))
    chunks = [c async for c in provider.stream(ask())]
    body = server.chat_requests[-1].json
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert [c.delta for c in chunks] == ["a ", "b ", "c", ""]
    assert chunks[-1].usage.total_tokens == 8 and chunks[-1].finish_reason == "stop"


async def test_usage_can_be_left_out_for_servers_that_refuse_stream_options(server) -> None:
    provider = OpenAIProvider(base_url=server.url + "/v1", api_key="sk-test",
                              include_usage=False, max_tokens_field="max_completion_tokens")
    try:
        chunks = [c async for c in provider.stream(ask(max_tokens=10))]
    finally:
        await provider.aclose()
    body = server.chat_requests[-1].json
    assert "stream_options" not in body and body["max_completion_tokens"] == 10
    assert chunks[-1].usage is None and chunks[-1].done


async def test_parallel_tool_calls_are_assembled_from_fragments_by_index(
        server, provider) -> None:
    calls = [{"id": "call_a", "name": "get_weather", "arguments": {"city": "Tokyo"}},
             {"id": "call_b", "name": "get_weather",
              "arguments": {"city": "Paris", "units": "metric", "days": [1, 2, 3]}}]
    server.push(Reply(tool_calls=calls, fragment_size=3))
    chunks = [c async for c in provider.stream(ask(tools=[WEATHER]))]
    assert chunks[-1].tool_calls == [
        ToolCall(id="call_a", name="get_weather", arguments={"city": "Tokyo"}),
        ToolCall(id="call_b", name="get_weather",
                 arguments={"city": "Paris", "units": "metric", "days": [1, 2, 3]})]
    assert chunks[-1].finish_reason == "tool_calls"


async def test_parallel_tool_calls_streamed_interleaved_are_assembled_by_index(
        server, provider) -> None:
    calls = [{"id": "call_a", "name": "get_weather", "arguments": {"city": "Tokyo"}},
             {"id": "call_b", "name": "get_time",
              "arguments": {"tz": "Europe/Paris", "format": "24h"}}]
    server.push(Reply(tool_calls=calls, fragment_size=3, interleave=True))
    chunks = [c async for c in provider.stream(ask(tools=[WEATHER]))]
    assert chunks[-1].tool_calls == [
        ToolCall(id="call_a", name="get_weather", arguments={"city": "Tokyo"}),
        ToolCall(id="call_b", name="get_time",
                 arguments={"tz": "Europe/Paris", "format": "24h"})]


def test_the_interleaved_mode_really_alternates_the_calls() -> None:
    calls = [{"name": "a", "arguments": {"x": 1}}, {"name": "b", "arguments": {"y": 2}}]
    fragments = OpenAITestServer._tool_fragments(
        Reply(tool_calls=calls, fragment_size=3, interleave=True))
    assert [f["index"] for f in fragments] == [0, 1] * (len(fragments) // 2)


async def test_fragments_interleaved_across_indexes_still_assemble(server, provider) -> None:
    def event(delta: dict[str, Any], finish: str | None = None) -> str:
        return "data: " + json.dumps({"id": "x", "object": "chat.completion.chunk",
                                      "model": "gpt-4o-mini", "choices": [
                                          {"index": 0, "delta": delta,
                                           "finish_reason": finish}]}) + "\n"

    def frag(i: int, args: str, fn: dict[str, str] | None = None,
             **extra: Any) -> dict[str, Any]:
        return {"tool_calls": [{"index": i, **extra,
                                "function": {**(fn or {}), "arguments": args}}]}

    lines = [event(frag(0, "", id="c0", fn={"name": "get_weather"})), "",
             event(frag(1, "", id="c1", fn={"name": "get_time"})), "",
             event(frag(0, '{"city": ')), "", event(frag(1, '{"tz": "UTC"}')), "",
             event(frag(0, '"Oslo"}')), "", ": keep-alive", "",
             event({}, "tool_calls"), "", "data: [DONE]", ""]
    server.push(Reply(lines=lines))
    chunks = [c async for c in provider.stream(ask(tools=[WEATHER]))]
    assert [(c.id, c.name, c.arguments) for c in chunks[-1].tool_calls] == [
        ("c0", "get_weather", {"city": "Oslo"}), ("c1", "get_time", {"tz": "UTC"})]


async def test_tool_results_go_back_as_role_tool_with_the_call_id(server, provider) -> None:
    call = ToolCall(id="call_9", name="get_weather", arguments={"city": "Oslo"})
    await provider.chat(ChatRequest(messages=[
        Message(role="user", content="weather?"),
        Message(role="assistant", content="", tool_calls=[call]),
        Message(role="tool", content="-3 degrees", tool_call_id="call_9", name="get_weather"),
    ], tools=[WEATHER], options={"tool_choice": "auto"}))
    body = server.chat_requests[-1].json
    assert body["messages"][1] == {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_9", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]}
    assert body["messages"][2] == {"role": "tool", "content": "-3 degrees",
                                   "tool_call_id": "call_9", "name": "get_weather"}
    assert body["tool_choice"] == "auto"
    assert body["tools"][0]["function"]["name"] == "get_weather"


async def test_tool_choice_is_dropped_when_no_tools_are_sent(server) -> None:
    provider = OpenAIProvider(base_url=server.url + "/v1", api_key="sk-test",
                              options={"tool_choice": "auto"})
    try:
        await provider.chat(ask())
    finally:
        await provider.aclose()
    assert "tool_choice" not in server.chat_requests[-1].json


async def test_arguments_that_are_not_json_reach_the_tool_raw(server, provider) -> None:
    server.push(Reply(lines=[
        'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c",'
        '"function":{"name":"get_weather","arguments":"{city: Oslo"}}]}}]}', "",
        'data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}', "",
        "data: [DONE]", ""]))
    chunks = [c async for c in provider.stream(ask(tools=[WEATHER]))]
    assert chunks[-1].tool_calls[0].arguments == {"_raw": "{city: Oslo"}


async def test_a_stream_without_done_but_with_a_finish_reason_ends_normally(
        server, provider) -> None:
    server.push(Reply(lines=[
        'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}', "",
        'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}', ""]))
    chunks = [c async for c in provider.stream(ask())]
    assert [c.delta for c in chunks] == ["Hi", ""] and chunks[-1].error is None


async def test_a_usage_chunk_with_null_choices_is_understood(server, provider) -> None:
    server.push(Reply(lines=[
        'data: {"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":"stop"}]}',
        "", 'data: {"choices":null,"usage":{"prompt_tokens":1,"completion_tokens":1,'
        '"total_tokens":2}}', "", "data: [DONE]", ""]))
    chunks = [c async for c in provider.stream(ask())]
    assert chunks[-1].usage.total_tokens == 2


async def test_an_event_error_mid_stream_is_an_error_chunk(server, provider) -> None:
    server.push(Reply(lines=[
        'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}', "",
        "event: error", 'data: {"message":"overloaded","type":"overloaded_error"}', ""]))
    chunks = [c async for c in provider.stream(ask())]
    assert chunks[-1].error.code == "provider_error" and "overloaded" in chunks[-1].error.detail


async def test_a_server_that_ignores_stream_still_streams_its_whole_reply(
        server, provider) -> None:
    async def whole_reply(request, out):  # type: ignore[no-untyped-def]
        await out.send_json(200, {"id": "x", "object": "chat.completion", "model": "m",
                                  "choices": [{"index": 0, "finish_reason": "stop",
                                               "message": {"role": "assistant",
                                                           "content": "all at once"}}]})

    server.handler = whole_reply
    chunks = [c async for c in provider.stream(ask())]
    assert [c.delta for c in chunks] == ["all at once", ""] and chunks[-1].done


async def test_a_wrong_api_key_is_a_provider_error_with_the_upstream_message(server) -> None:
    provider = OpenAIProvider(base_url=server.url + "/v1", api_key="sk-wrong")
    try:
        with pytest.raises(ProviderError) as info:
            await provider.chat(ask())
        health = await provider.health()
    finally:
        await provider.aclose()
    assert info.value.code == "provider_error" and info.value.status_code == 502
    assert "Incorrect API key provided." in info.value.detail
    assert not health.reachable and "401" in (health.detail or "")


async def test_vllm_style_errors_are_read_too(server, provider) -> None:
    async def vllm_404(request, out):  # type: ignore[no-untyped-def]
        await out.send_json(404, {"object": "error", "message": "The model `x` does not "
                                  "exist.", "type": "NotFoundError", "param": None,
                                  "code": 404})

    server.handler = vllm_404
    with pytest.raises(ProviderError) as info:
        await provider.chat(ask(model="x"))
    assert info.value.code == "model_not_found"


@pytest.mark.parametrize("stream", [False, True])
async def test_a_server_that_hangs_up_before_replying_is_unavailable(
        server, provider, stream) -> None:
    server.push(Reply(text="never sent", hangup=True))
    with pytest.raises(ProviderError) as info:
        if stream:
            await anext(aiter(provider.stream(ask())))
        else:
            await provider.chat(ask())
    assert (info.value.code, info.value.status_code) == ("provider_unavailable", 503)


async def test_models_come_from_v1_models(provider) -> None:
    models = await provider.models()
    assert [m.name for m in models] == ["gpt-4o-mini", "gpt-4o"]
    assert models[0].details["owned_by"] == "system"


# --- settings ----------------------------------------------------------------------------

def test_the_api_key_comes_from_the_environment_through_plugins_toml(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-from-env")
    kernel = make_kernel({"openai": armillary_openai}, config={"plugins": {"openai": {
        "base_url": "http://127.0.0.1:8000/v1", "api_key": {"$env": "TEST_OPENAI_KEY"},
        "model": "qwen2.5", "instances": {"lmstudio": {
            "base_url": "http://127.0.0.1:1234/v1", "api_key": "lm-studio"}}}}})
    main = kernel.provider("openai")
    other = kernel.provider("lmstudio")
    assert isinstance(main, OpenAIProvider) and isinstance(other, OpenAIProvider)
    assert main._headers["Authorization"] == "Bearer sk-from-env"
    assert other._headers["Authorization"] == "Bearer lm-studio"
    assert other.default_model == "qwen2.5"  # inherited from the main section
    assert kernel.provider().name == "openai"
    # the key never shows in the settings' repr
    assert "sk-from-env" not in repr(kernel.settings["openai"])


def test_a_missing_environment_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    with pytest.raises(ConfigError) as info:
        make_kernel({"openai": armillary_openai}, config={"plugins": {"openai": {
            "api_key": {"$env": "NO_SUCH_KEY"}}}})
    assert "NO_SUCH_KEY" in str(info.value)


def test_the_default_instance_can_be_chosen() -> None:
    kernel = make_kernel({"openai": armillary_openai}, config={"plugins": {"openai": {
        "instances": {"vllm": {"base_url": "http://gpu:8000/v1"}}, "default": "vllm"}}})
    assert kernel.provider().name == "vllm"


async def test_fields_of_the_wrong_type_are_protocol_errors_not_crashes(
        server, provider) -> None:
    server.push(Reply(lines=[
        'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}', "",
        'data: {"choices":[{"index":0,"delta":{"content":{"text":"x"}}}]}', ""]))
    chunks = [c async for c in provider.stream(ask())]
    assert chunks[-1].error.code == "provider_protocol_error"

    async def whole(request, out):  # type: ignore[no-untyped-def]
        await out.send_json(200, {"choices": [{"message": {"content": 42}}],
                                  "usage": {"total_tokens": "lots"}})

    server.handler = whole
    with pytest.raises(ProviderError) as info:
        await provider.chat(ask())
    assert info.value.code == "provider_protocol_error"


def test_an_instance_on_another_host_does_not_inherit_credentials() -> None:
    settings = armillary_openai.OpenAISettings.model_validate({
        "api_key": "sk-REAL", "organization": "org-1", "headers": {"X-Proxy-Auth": "t"},
        "model": "gpt-4o", "instances": {
            "lan": {"base_url": "http://other:8000/v1"},
            "mirror": {"model": "gpt-4o-mini"},                  # same host: inherits
            "same": {"base_url": "https://api.openai.com/v1/"},  # same host, spelt apart
            "own": {"base_url": "http://other:8000/v1", "api_key": "EMPTY"}}})
    resolved = settings.resolved()
    lan = resolved["lan"]
    assert lan["api_key"] is None and lan["organization"] is None and not lan["headers"]
    assert lan["model"] == "gpt-4o"  # what is not a credential is still inherited
    for name in ("mirror", "same"):
        assert resolved[name]["api_key"] == "sk-REAL"
        assert resolved[name]["headers"] == {"X-Proxy-Auth": "t"}
    assert resolved["own"]["api_key"] == "EMPTY"
    kernel = make_kernel({"openai": armillary_openai}, config={"plugins": {"openai": {
        "api_key": "sk-REAL", "instances": {"lan": {"base_url": "http://other:8000/v1"}}}}})
    lan_provider = kernel.provider("lan")
    assert isinstance(lan_provider, OpenAIProvider)
    assert "Authorization" not in lan_provider._headers


async def test_text_with_unicode_line_separators_arrives_whole(server, provider) -> None:
    # llama.cpp's JSON writer leaves U+2028 unescaped: only "\n" ends an SSE line
    pieces = ["one\u2028two ", "three\x85four"]
    events = [f'data: {{"choices":[{{"index":0,"delta":{{"content":"{p}"}}}}]}}'
              for p in pieces]
    server.push(Reply(lines=[line for event in events for line in (event, "")] + [
        'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}', "",
        "data: [DONE]", ""]))
    chunks = [c async for c in provider.stream(ask())]
    assert [c.delta for c in chunks[:-1]] == pieces
    assert chunks[-1].done and chunks[-1].error is None


SECRET = "hunter2-upstream"


@pytest.mark.parametrize("stream", [False, True])
async def test_an_upstream_message_naming_a_url_has_its_credentials_masked(
        server, provider, stream) -> None:
    server.push(Reply(status=502, error=f"upstream http://admin:{SECRET}@vllm:8000/v1 down"))
    with pytest.raises(ProviderError) as info:
        if stream:
            await anext(aiter(provider.stream(ask())))
        else:
            await provider.chat(ask())
    assert "http://admin:***@vllm:8000/v1" in info.value.detail
    assert SECRET not in info.value.detail and SECRET not in str(info.value)
