"""The provider contract suite, run for the Ollama provider against the Ollama test server
(a real HTTP server on a loopback port speaking Ollama's NDJSON protocol)."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import pytest
from armillary_ollama import OllamaProvider

from armillary._providers import Provider
from armillary.testing.contract import (
    UPSTREAM_MESSAGE,
    ContractTarget,
    ProviderContract,
    Scenario,
    refused_url,
    unresponsive_url,
)
from tests.support.ollama_server import OllamaTestServer, Reply

TEXT = "Hello! How are you today?"
ARGUMENTS = {"city": "Tokyo"}


def _tool_or_text(body: dict[str, Any]) -> Reply:
    """Ask for the weather tool until the last message is the tool's result."""
    messages = body.get("messages") or []
    if messages and messages[-1].get("role") == "tool":
        return Reply(text=f"The weather: {messages[-1].get('content')}.")
    return Reply(tool_calls=[{"name": "get_weather", "arguments": ARGUMENTS}])


SCENARIOS: dict[Scenario, dict[str, Any]] = {
    Scenario.TEXT: {"default": Reply(text=TEXT)},
    Scenario.TOOL_CALL: {"respond": _tool_or_text},
    Scenario.LONG_STREAM: {"default": Reply(tokens=[f"t{i} " for i in range(2000)],
                                            delay=0.01)},
    Scenario.UNKNOWN_MODEL: {},
    Scenario.UPSTREAM_ERROR: {"default": Reply(status=500, error=UPSTREAM_MESSAGE)},
    Scenario.ERROR_MID_STREAM: {"default": Reply(text="one two three four",
                                                 error=UPSTREAM_MESSAGE, after=2)},
    Scenario.MALFORMED: {"default": Reply(text="one two three", after=1,
                                          malformed=b'{"model":"llama3.2","message":')},
    Scenario.STALL: {"default": Reply(text="one two three", after=1, stall=math.inf)},
}


class OllamaTarget(ContractTarget):
    name = "ollama"
    expected_text = TEXT
    expected_arguments = ARGUMENTS

    def __init__(self) -> None:
        super().__init__()
        self.server: OllamaTestServer | None = None
        self._stack = contextlib.ExitStack()

    async def make_provider(self, scenario: Scenario) -> Provider | None:
        timeouts = {"connect_timeout": 0.3, "chunk_timeout": 0.3, "request_timeout": 0.5}
        if scenario is Scenario.UNAVAILABLE:
            return OllamaProvider(base_url=refused_url(), **timeouts)
        if scenario is Scenario.CONNECT_TIMEOUT:
            url = self._stack.enter_context(unresponsive_url())
            return OllamaProvider(base_url=url, **timeouts)
        self.server = self._stack.enter_context(OllamaTestServer(**SCENARIOS[scenario]))
        if scenario not in (Scenario.STALL, Scenario.MALFORMED):
            timeouts = {}
        return OllamaProvider(base_url=self.server.url, **timeouts)

    def open_connections(self) -> int | None:
        return self.server.open_connections if self.server is not None else None

    async def aclose(self) -> None:
        await super().aclose()
        self._stack.close()


class TestOllamaContract(ProviderContract):
    @pytest.fixture
    def contract_target(self) -> ContractTarget:
        return OllamaTarget()
