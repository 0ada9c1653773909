"""The provider contract suite for the OpenAI-compatible provider, parametrised over two
upstreams: the loopback fake (every scenario), and llama.cpp's real server serving a
small GGUF (`slow` tier; scenarios a real server cannot produce come from the fake)."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import pytest
from armillary_openai import OpenAIProvider

from armillary import ChatRequest, Message, Provider
from armillary.testing.contract import (
    UPSTREAM_MESSAGE,
    ContractTarget,
    ProviderContract,
    Scenario,
    established_connections,
    refused_url,
    unresponsive_url,
)
from tests.support.openai_server import OpenAITestServer, Reply

TEXT = "Hello! How are you today?"
ARGUMENTS = {"city": "Tokyo"}


def _tool_or_text(body: dict[str, Any]) -> Reply:
    messages = body.get("messages") or []
    if messages and messages[-1].get("role") == "tool":
        return Reply(text=f"The weather: {messages[-1].get('content')}.")
    return Reply(tool_calls=[{"id": "call_w1", "name": "get_weather", "arguments": ARGUMENTS}])


FAKE_SCENARIOS: dict[Scenario, dict[str, Any]] = {
    Scenario.TEXT: {"default": Reply(text=TEXT)},
    Scenario.TOOL_CALL: {"respond": _tool_or_text},
    Scenario.LONG_STREAM: {"default": Reply(tokens=[f"t{i} " for i in range(2000)],
                                            delay=0.01)},
    Scenario.UNKNOWN_MODEL: {},
    Scenario.UPSTREAM_ERROR: {"default": Reply(status=500, error=UPSTREAM_MESSAGE)},
    Scenario.ERROR_MID_STREAM: {"default": Reply(text="one two three four",
                                                 error=UPSTREAM_MESSAGE, after=2)},
    Scenario.MALFORMED: {"default": Reply(text="one two three", after=1,
                                          malformed=b'data: {"id":"chatcmpl-1","choices":[')},
    Scenario.STALL: {"default": Reply(text="one two three", after=1, stall=math.inf)},
}
SHORT = {"connect_timeout": 0.3, "chunk_timeout": 0.3, "request_timeout": 0.5}


class FakeTarget(ContractTarget):
    """Every scenario from the loopback fake (or no server at all)."""

    name = "openai (loopback fake)"
    expected_text = TEXT
    expected_arguments = ARGUMENTS

    def __init__(self) -> None:
        super().__init__()
        self.server: OpenAITestServer | None = None
        self.stack = contextlib.ExitStack()

    def fake_provider(self, scenario: Scenario) -> Provider:
        if scenario is Scenario.UNAVAILABLE:
            return OpenAIProvider(base_url=refused_url() + "/v1", **SHORT)
        if scenario is Scenario.CONNECT_TIMEOUT:
            url = self.stack.enter_context(unresponsive_url())
            return OpenAIProvider(base_url=url + "/v1", **SHORT)
        self.server = self.stack.enter_context(OpenAITestServer(**FAKE_SCENARIOS[scenario]))
        timeouts = SHORT if scenario in (Scenario.STALL, Scenario.MALFORMED) else {}
        return OpenAIProvider(base_url=self.server.url + "/v1", api_key="sk-test",
                              model="gpt-4o-mini", **timeouts)

    async def make_provider(self, scenario: Scenario) -> Provider | None:
        return self.fake_provider(scenario)

    def open_connections(self) -> int | None:
        return self.server.open_connections if self.server is not None else None

    async def aclose(self) -> None:
        await super().aclose()
        self.stack.close()


class LlamaCppTarget(FakeTarget):
    """llama.cpp's server for what a real server does; the fake for its faults."""

    name = "openai (llama.cpp server)"
    expected_text = None
    expected_arguments = None
    REAL = (Scenario.TEXT, Scenario.TOOL_CALL, Scenario.LONG_STREAM)

    def __init__(self, server: Any) -> None:
        super().__init__()
        self.llama = server
        self.real = False

    async def make_provider(self, scenario: Scenario) -> Provider | None:
        if scenario not in self.REAL:
            return self.fake_provider(scenario)
        self.real = True
        return OpenAIProvider(base_url=self.llama.url + "/v1", api_key="sk-local",
                              model=self.llama.text_model)

    def request(self, scenario: Scenario, messages: list[Message] | None = None,
                **fields: Any) -> ChatRequest:
        if scenario not in self.REAL:
            return super().request(scenario, messages, **fields)
        request = super().request(scenario, messages, **fields)
        update: dict[str, Any] = {"temperature": 0.0, "seed": 1,
                                  "max_tokens": 2000 if scenario is Scenario.LONG_STREAM
                                  else 48}
        if scenario is Scenario.TOOL_CALL:
            # a 270M model calls the tool reliably only when told to: llama.cpp's
            # function-calling chat format then constrains it to the tool's schema
            update["model"] = self.llama.tools_model
            if request.messages[-1].role != "tool":
                update["options"] = {"tool_choice": {"type": "function",
                                                     "function": {"name": "get_weather"}}}
        if scenario is Scenario.LONG_STREAM:
            update["messages"] = [Message(role="user", content="Count from 1 to 1000, one "
                                          "number per line.")]
        return request.model_copy(update=update)

    def open_connections(self) -> int | None:
        if self.real:
            return established_connections(self.llama.port)
        return super().open_connections()


class TestOpenAIContract(ProviderContract):
    @pytest.fixture(params=["fake", pytest.param("llama.cpp", marks=pytest.mark.slow)])
    def contract_target(self, request: pytest.FixtureRequest) -> ContractTarget:
        if request.param == "fake":
            return FakeTarget()
        return LlamaCppTarget(request.getfixturevalue("llama_server"))
