"""The provider contract suite: what every provider must do, as pytest tests.

Write a `ContractTarget` that knows how to make your provider meet each `Scenario` (a
server it talks to that answers text, asks for a tool, refuses connections, fails
mid-stream, …), then subclass `ProviderContract` with a `contract_target` fixture::

    import pytest
    from armillary.testing.contract import ContractTarget, ProviderContract, Scenario

    class MyTarget(ContractTarget):
        expected_text = "Hello there"

        async def make_provider(self, scenario):
            if scenario is Scenario.UNAVAILABLE:
                return MyProvider(base_url=refused_url())
            ...

    class TestMyProvider(ProviderContract):
        @pytest.fixture(params=["fake-server", "real-server"])
        def contract_target(self, request):
            return MyTarget(request.param)

Each test asks the target for a provider configured for one scenario; a target returns
None for a scenario it cannot produce (that test is skipped, saying so). Providers made
for `CONNECT_TIMEOUT` and `STALL` must use short timeouts (well under `TIMEOUT_BUDGET`).

What the suite checks:

- `chat` returns the whole reply; `stream` yields text deltas and exactly one final
  chunk with `done=True`, last.
- Tool calls come back complete (name and object arguments) from `chat`, and on the final
  chunk of a `stream`; a tool result sent back gets an answer (the round trip).
- Errors have stable codes and HTTP statuses: connection refused → `provider_unavailable`
  (503); unknown model → `model_not_found` (404); other upstream 4xx/5xx →
  `provider_error` (502) carrying the upstream message; an error in the middle of a
  stream → one error chunk, then the stream ends; a malformed line →
  `provider_protocol_error`; connect timeout or silence between chunks →
  `provider_timeout` (504). None of them hangs or leaves a task behind.
- `health()` reports reachable with a latency, or unreachable without raising.
- Cancellation: closing the stream, or cancelling the task consuming it, closes the
  upstream connection at once, as the server sees it.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from armillary._errors import ProviderError
from armillary._models import ChatChunk, ChatRequest, ChatResponse, Message, ToolSpec
from armillary._providers import Provider

#: the longest any error scenario may take before the suite calls it a hang (seconds)
TIMEOUT_BUDGET = 10.0
#: what an upstream's error message says in `UPSTREAM_ERROR` and `ERROR_MID_STREAM`
UPSTREAM_MESSAGE = "the model failed to generate a response"
#: the tool the `TOOL_CALL` scenario has the model call
WEATHER_TOOL = ToolSpec(
    name="get_weather", description="Get the weather in a given city",
    parameters={"type": "object",
                "properties": {"city": {"type": "string",
                                        "description": "The city to get the weather for"}},
                "required": ["city"]})


class Scenario(StrEnum):
    """What the upstream does for a provider made for this scenario."""

    #: answers text: exactly `ContractTarget.expected_text` when that is set
    TEXT = "text"
    #: asks for `WEATHER_TOOL` (arguments `expected_arguments` when set); once the request
    #: carries the tool's result, answers text (quoting the result, when scripted)
    TOOL_CALL = "tool_call"
    #: streams many chunks slowly (at least 3, then more for several seconds)
    LONG_STREAM = "long_stream"
    #: nothing listens: connection refused
    UNAVAILABLE = "unavailable"
    #: the model the request names does not exist upstream
    UNKNOWN_MODEL = "unknown_model"
    #: upstream answers a 4xx/5xx (other than unknown model) saying `UPSTREAM_MESSAGE`
    UPSTREAM_ERROR = "upstream_error"
    #: a stream sends at least one text chunk, then an error saying `UPSTREAM_MESSAGE`
    ERROR_MID_STREAM = "error_mid_stream"
    #: a stream sends at least one text chunk, then a line that is not the protocol; a
    #: whole (non-stream) reply is not the protocol either
    MALFORMED = "malformed"
    #: connecting never completes (the provider's connect timeout must be short)
    CONNECT_TIMEOUT = "connect_timeout"
    #: a stream sends at least one chunk, then nothing (the chunk timeout must be short)
    STALL = "stall"


class ContractTarget(abc.ABC):
    """Makes providers that meet each scenario, and watches their upstream connections."""

    #: shown in test ids and messages
    name: str = "provider"
    #: the exact text of a `TEXT` reply, or None when a real model answers (any text)
    expected_text: str | None = None
    #: the arguments of the `TOOL_CALL` call, or None when a real model chooses them
    expected_arguments: dict[str, Any] | None = None

    def __init__(self) -> None:
        self._providers: list[Provider] = []

    @abc.abstractmethod
    async def make_provider(self, scenario: Scenario) -> Provider | None:
        """A provider whose upstream behaves as `scenario` says, or None if this target
        cannot produce it. Called at most once per scenario per test."""

    async def provider(self, scenario: Scenario) -> Provider:
        made = await self.make_provider(scenario)
        if made is None:
            pytest.skip(f"{self.name} cannot produce scenario {scenario.value!r}")
        self._made().append(made)
        return made

    def _made(self) -> list[Provider]:
        # tolerate subclasses whose __init__ does not call ours
        if not hasattr(self, "_providers"):
            self._providers = []
        return self._providers

    def request(self, scenario: Scenario, messages: list[Message] | None = None,
                **fields: Any) -> ChatRequest:
        """The request the suite sends in `scenario`. Override to add a model name or
        options (a real server may need `tool_choice` to call the tool for sure; the
        round trip's second request has a role "tool" message last, and should not)."""
        if messages is None:
            messages = [Message(role="user", content="What is the weather in Tokyo?"
                                if scenario is Scenario.TOOL_CALL else "Say hello.")]
        if scenario is Scenario.TOOL_CALL:
            fields.setdefault("tools", [WEATHER_TOOL])
        return ChatRequest(messages=messages, **fields)

    def open_connections(self) -> int | None:
        """How many connections the upstream server has open from this target's providers
        now, as the server sees them; None if it cannot tell (cancellation tests skip)."""
        return None

    async def aclose(self) -> None:
        """Release what the target made: its providers, and any servers it started."""
        for provider in self._made():
            await provider.aclose()
        self._made().clear()


# --- helpers for targets -----------------------------------------------------------------

def refused_url() -> str:
    """A loopback URL where nothing listens (connecting is refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def unresponsive_url() -> Iterator[str]:
    """A loopback URL where connecting hangs: a listener that never accepts, whose accept
    queue is already full, so the kernel drops further connection attempts (Linux)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError, InterruptedError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
            time.sleep(0.01)
            probe = socket.socket()
            probe.settimeout(0.05)
            try:
                probe.connect(("127.0.0.1", port))
                fillers.append(probe)
            except OSError:
                probe.close()
                break
        yield f"http://127.0.0.1:{port}"
    finally:
        for s in fillers:
            s.close()
        listener.close()


def established_connections(port: int) -> int | None:
    """Server-side TCP connections on loopback `port` still ESTABLISHED (Linux
    /proc/net/tcp). A connection the client closed leaves ESTABLISHED at once (the server's
    socket moves to CLOSE_WAIT), so this watches closes from the server's side."""
    path = Path("/proc/net/tcp")
    if not path.exists():
        return None
    count = 0
    for line in path.read_text().splitlines()[1:]:
        fields = line.split()
        local, state = fields[1], fields[3]
        if int(local.split(":")[1], 16) == port and state == "01":
            count += 1
    return count


# --- the suite -------------------------------------------------------------------------

async def _collect(chunks: AsyncIterator[ChatChunk],
                   budget: float = TIMEOUT_BUDGET) -> list[ChatChunk]:
    out = []
    async with asyncio.timeout(budget):
        async for chunk in chunks:
            out.append(chunk)
    return out


def _tasks() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if not t.done()}


async def _no_new_tasks(before: set[asyncio.Task[Any]]) -> None:
    for _ in range(50):
        leaked = _tasks() - before
        if not leaked:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"tasks left behind: {leaked}")


def _check_error(exc: ProviderError, code: str, status: int) -> None:
    assert exc.code == code, f"expected code {code!r}, got {exc.code!r}: {exc.detail}"
    assert exc.status_code == status, f"expected HTTP {status} for {code}, got {exc.status_code}"
    assert exc.detail, "an error must say what went wrong"


@pytest.mark.asyncio
class ProviderContract:
    """The contract tests. Subclass it (name the subclass `Test…`) and provide a
    `contract_target` fixture returning a `ContractTarget`. Needs pytest-asyncio; works in
    its strict and auto modes."""

    @pytest_asyncio.fixture
    async def target(self, contract_target: ContractTarget) -> AsyncIterator[ContractTarget]:
        try:
            yield contract_target
        finally:
            await contract_target.aclose()

    # --- the happy paths ------------------------------------------------------------

    async def test_chat_returns_the_whole_reply(self, target: ContractTarget) -> None:
        provider = await target.provider(Scenario.TEXT)
        async with asyncio.timeout(120):
            reply = await provider.chat(target.request(Scenario.TEXT))
        assert isinstance(reply, ChatResponse)
        assert reply.message.role == "assistant"
        assert not reply.message.tool_calls
        assert reply.model
        if target.expected_text is not None:
            assert reply.message.content == target.expected_text
        else:
            assert reply.message.content.strip(), "a real model should answer some text"
        if reply.usage is not None and reply.usage.completion_tokens is not None:
            assert reply.usage.completion_tokens >= 0

    async def test_stream_yields_deltas_then_one_final_chunk(
            self, target: ContractTarget) -> None:
        provider = await target.provider(Scenario.TEXT)
        chunks = await _collect(provider.stream(target.request(Scenario.TEXT)), 120)
        assert chunks, "a stream yields at least its final chunk"
        assert [c.done for c in chunks].count(True) == 1, "exactly one chunk has done=True"
        assert chunks[-1].done, "the done chunk is the last"
        assert all(c.error is None for c in chunks)
        text = "".join(c.delta for c in chunks)
        if target.expected_text is not None:
            assert text == target.expected_text
            assert len([c for c in chunks if c.delta]) > 1, "text arrives in several deltas"
        else:
            assert text.strip()

    async def test_chat_reports_tool_calls_with_object_arguments(
            self, target: ContractTarget) -> None:
        provider = await target.provider(Scenario.TOOL_CALL)
        async with asyncio.timeout(120):
            reply = await provider.chat(target.request(Scenario.TOOL_CALL))
        calls = reply.message.tool_calls or []
        assert len(calls) >= 1, "the model asked for the tool"
        assert calls[0].name == WEATHER_TOOL.name
        assert isinstance(calls[0].arguments, dict)
        assert calls[0].id
        if target.expected_arguments is not None:
            assert calls[0].arguments == target.expected_arguments

    async def test_stream_delivers_complete_tool_calls_on_the_final_chunk(
            self, target: ContractTarget) -> None:
        provider = await target.provider(Scenario.TOOL_CALL)
        chunks = await _collect(provider.stream(target.request(Scenario.TOOL_CALL)), 120)
        final = chunks[-1]
        assert final.done and final.error is None
        calls = final.tool_calls or []
        assert len(calls) >= 1
        assert calls[0].name == WEATHER_TOOL.name
        assert isinstance(calls[0].arguments, dict)
        if target.expected_arguments is not None:
            assert calls[0].arguments == target.expected_arguments

    async def test_tool_call_round_trip(self, target: ContractTarget) -> None:
        provider = await target.provider(Scenario.TOOL_CALL)
        first = target.request(Scenario.TOOL_CALL)
        async with asyncio.timeout(120):
            reply = await provider.chat(first)
        calls = reply.message.tool_calls or []
        assert calls, "the model asked for the tool"
        history = [*first.messages, reply.message,
                   *(Message(role="tool", content="11 degrees celsius", tool_call_id=c.id,
                             name=c.name) for c in calls)]
        # the target sees the tool result in the history and should not force the tool
        follow_up = target.request(Scenario.TOOL_CALL, history)
        async with asyncio.timeout(120):
            answer = await provider.chat(follow_up)
        assert answer.message.role == "assistant"
        if target.expected_text is not None:
            # a scripted upstream answers from the tool's result, so it must have got it
            assert "11 degrees celsius" in answer.message.content

    # --- errors -------------------------------------------------------------------

    async def _chat_fails(self, provider: Provider, request: ChatRequest, code: str,
                          status: int) -> ProviderError:
        before = _tasks()
        async with asyncio.timeout(TIMEOUT_BUDGET):
            with pytest.raises(ProviderError) as info:
                await provider.chat(request)
        _check_error(info.value, code, status)
        await _no_new_tasks(before)
        return info.value

    async def _stream_fails_first(self, provider: Provider, request: ChatRequest, code: str,
                                  status: int) -> ProviderError:
        """A failure before the first chunk is raised by the first `anext`."""
        before = _tasks()
        async with asyncio.timeout(TIMEOUT_BUDGET):
            with pytest.raises(ProviderError) as info:
                await _collect(provider.stream(request))
        _check_error(info.value, code, status)
        await _no_new_tasks(before)
        return info.value

    async def _stream_ends_with_error(self, provider: Provider, request: ChatRequest,
                                      code: str) -> list[ChatChunk]:
        """A failure after the stream started is one final error chunk, then the end."""
        before = _tasks()
        chunks = await _collect(provider.stream(request))
        assert chunks, "the stream yields chunks"
        errors = [c for c in chunks if c.error is not None]
        assert len(errors) == 1, f"one error chunk, got {chunks}"
        assert chunks[-1] is errors[0], "the error chunk is the last one"
        assert chunks[-1].done
        assert errors[0].error is not None and errors[0].error.code == code, chunks[-1]
        assert any(c.delta for c in chunks[:-1]), "text came before the error"
        await _no_new_tasks(before)
        return chunks

    async def test_connection_refused_is_provider_unavailable(
            self, target: ContractTarget) -> None:
        provider = await target.provider(Scenario.UNAVAILABLE)
        request = target.request(Scenario.UNAVAILABLE)
        await self._chat_fails(provider, request, "provider_unavailable", 503)
        await self._stream_fails_first(provider, request, "provider_unavailable", 503)

    async def test_unknown_model_is_model_not_found(self, target: ContractTarget) -> None:
        provider = await target.provider(Scenario.UNKNOWN_MODEL)
        request = target.request(Scenario.UNKNOWN_MODEL, model="no-such-model:7b")
        await self._chat_fails(provider, request, "model_not_found", 404)
        await self._stream_fails_first(provider, request, "model_not_found", 404)

    async def test_upstream_error_is_provider_error_with_its_message(
            self, target: ContractTarget) -> None:
        provider = await target.provider(Scenario.UPSTREAM_ERROR)
        request = target.request(Scenario.UPSTREAM_ERROR)
        error = await self._chat_fails(provider, request, "provider_error", 502)
        assert UPSTREAM_MESSAGE in error.detail
        error = await self._stream_fails_first(provider, request, "provider_error", 502)
        assert UPSTREAM_MESSAGE in error.detail

    async def test_error_mid_stream_is_an_error_chunk_then_the_end(
            self, target: ContractTarget) -> None:
        provider = await target.provider(Scenario.ERROR_MID_STREAM)
        chunks = await self._stream_ends_with_error(
            provider, target.request(Scenario.ERROR_MID_STREAM), "provider_error")
        assert chunks[-1].error is not None
        assert UPSTREAM_MESSAGE in chunks[-1].error.detail

    async def test_malformed_line_is_a_protocol_error(self, target: ContractTarget) -> None:
        provider = await target.provider(Scenario.MALFORMED)
        request = target.request(Scenario.MALFORMED)
        await self._stream_ends_with_error(provider, request, "provider_protocol_error")
        await self._chat_fails(provider, request, "provider_protocol_error", 502)

    async def test_connect_timeout_is_provider_timeout(self, target: ContractTarget) -> None:
        provider = await target.provider(Scenario.CONNECT_TIMEOUT)
        request = target.request(Scenario.CONNECT_TIMEOUT)
        await self._chat_fails(provider, request, "provider_timeout", 504)
        await self._stream_fails_first(provider, request, "provider_timeout", 504)

    async def test_silence_between_chunks_is_provider_timeout(
            self, target: ContractTarget) -> None:
        provider = await target.provider(Scenario.STALL)
        before = _tasks()
        chunks = await _collect(provider.stream(target.request(Scenario.STALL)))
        assert chunks[-1].done and chunks[-1].error is not None
        assert chunks[-1].error.code == "provider_timeout", chunks[-1]
        await _no_new_tasks(before)

    # --- health and models ----------------------------------------------------------

    async def test_health_reports_reachable_with_latency(self, target: ContractTarget) -> None:
        provider = await target.provider(Scenario.TEXT)
        async with asyncio.timeout(TIMEOUT_BUDGET):
            health = await provider.health()
        assert health.reachable, health.detail
        assert health.latency_ms is not None and health.latency_ms >= 0

    async def test_health_reports_unreachable_without_raising(
            self, target: ContractTarget) -> None:
        provider = await target.provider(Scenario.UNAVAILABLE)
        async with asyncio.timeout(TIMEOUT_BUDGET):
            health = await provider.health()
        assert not health.reachable
        assert health.detail

    async def test_models_lists_what_the_server_has(self, target: ContractTarget) -> None:
        provider = await target.provider(Scenario.TEXT)
        async with asyncio.timeout(TIMEOUT_BUDGET):
            models = await provider.models()
        assert models and all(m.name for m in models)

    # --- cancellation ---------------------------------------------------------------

    async def _open_stream(self, target: ContractTarget
                           ) -> tuple[AsyncIterator[ChatChunk], int]:
        provider = await target.provider(Scenario.LONG_STREAM)
        baseline = target.open_connections()
        if baseline is None:
            pytest.skip(f"{target.name} cannot watch its upstream connections")
        chunks = provider.stream(target.request(Scenario.LONG_STREAM))
        async with asyncio.timeout(60):
            for _ in range(2):
                chunk = await anext(chunks)
                assert chunk.error is None and not chunk.done
        assert await self._settles(target, baseline + 1), \
            "the upstream sees the streaming connection"
        return chunks, baseline

    @staticmethod
    async def _settles(target: ContractTarget, expected: int, within: float = 2.0) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if target.open_connections() == expected:
                return True
            await asyncio.sleep(0.01)
        return target.open_connections() == expected

    async def test_closing_the_stream_closes_the_upstream_connection(
            self, target: ContractTarget) -> None:
        chunks, baseline = await self._open_stream(target)
        aclose = getattr(chunks, "aclose", None)
        assert aclose is not None, "stream() returns an async generator (it has aclose())"
        started = time.monotonic()
        await aclose()
        assert await self._settles(target, baseline), \
            f"upstream connection still open after aclose(): {target.open_connections()}"
        assert time.monotonic() - started < 2.0

    async def test_cancelling_the_consumer_closes_the_upstream_connection(
            self, target: ContractTarget) -> None:
        provider = await target.provider(Scenario.LONG_STREAM)
        baseline = target.open_connections()
        if baseline is None:
            pytest.skip(f"{target.name} cannot watch its upstream connections")
        received = asyncio.Event()

        async def consume() -> None:
            async for _ in provider.stream(target.request(Scenario.LONG_STREAM)):
                received.set()

        task = asyncio.create_task(consume())
        async with asyncio.timeout(60):
            await received.wait()
        assert await self._settles(target, baseline + 1)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert await self._settles(target, baseline), \
            f"upstream connection still open after cancel: {target.open_connections()}"
