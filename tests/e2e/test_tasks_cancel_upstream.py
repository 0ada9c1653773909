"""Ending a task closes the model's stream upstream: a real `armillary serve` subprocess
(memory and SQLite stores) streaming from the Ollama test server (and the OpenAI one)
over loopback sockets. A cancel, a stop, or a `wait` client that leaves must make the
model server see its client hang up at once, not let the model generate to the end for
nobody (as it did while a second cancel interrupted the stream's close).

The last tests hold the providers to it on their own: a stream whose consumer is
cancelled twice (the second cancel landing in httpx's cleanup) still hangs up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from armillary_ollama.provider import OllamaProvider
from armillary_openai.provider import OpenAIProvider

from armillary._models import ChatChunk, ChatRequest, Message
from armillary._providers import Provider
from armillary.testing import ArmillaryServer
from tests.support.ollama_server import LoopbackHTTPServer, OllamaTestServer, Reply, StreamRecord
from tests.support.openai_server import OpenAITestServer, Reply as OpenAIReply

#: the model server must see the hang-up this soon after the run was ended
HANGUP_BOUND = 1.0
#: a reply that streams for 400 * 0.1 s = 40 s unless its client goes away
SLOW_TOKENS, SLOW_DELAY = 400, 0.1

STORES = {"memory": "memory://", "sqlite": "sqlite:///runs.db"}


@pytest.fixture
def ollama() -> Iterator[OllamaTestServer]:
    with OllamaTestServer(default=Reply(text=" ".join(["slow"] * SLOW_TOKENS),
                                        delay=SLOW_DELAY)) as server:
        yield server


@pytest.fixture
def openai() -> Iterator[OpenAITestServer]:
    with OpenAITestServer(default=OpenAIReply(text=" ".join(["slow"] * SLOW_TOKENS),
                                              delay=SLOW_DELAY)) as server:
        yield server


def serve(tmp_path: Path, store: str, provider: str, section: str) -> ArmillaryServer:
    config = tmp_path / "plugins.toml"
    config.write_text(f"""
[kernel]
enable = ["{provider}", "tasks"]
store = "{STORES[store]}"

[plugins.{provider}]
{section}
""")
    return ArmillaryServer(config, cwd=tmp_path, log_path=tmp_path / "serve.log")


def ollama_server(tmp_path: Path, store: str, ollama: OllamaTestServer) -> ArmillaryServer:
    return serve(tmp_path, store, "ollama", f'base_url = "{ollama.url}"\nmodel = "llama3.2"')


def wait_for(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


def streaming(model: LoopbackHTTPServer) -> StreamRecord:
    """The model's one stream, once it has sent a few tokens (the run is mid-answer)."""
    assert wait_for(lambda: len(model.streams) == 1 and model.streams[0].lines_sent >= 3), \
        "the model never started streaming"
    return model.streams[0]


def assert_hung_up(stream: StreamRecord, since: float) -> None:
    """The client closed the stream within HANGUP_BOUND of `since`, and the model never
    finished its answer."""
    ended = wait_for(lambda: stream.ended_at is not None, HANGUP_BOUND)
    assert ended, (f"the model was still streaming {HANGUP_BOUND}s after the run ended "
                   f"({stream.lines_sent} lines sent): the upstream stream was left open")
    assert stream.client_closed and not stream.finished
    assert stream.ended_at is not None and stream.ended_at - since < HANGUP_BOUND


def status_of(server: ArmillaryServer, task_id: str) -> str:
    status: str = httpx.get(f"{server.url}/v1/tasks/{task_id}").json()["status"]
    return status


def submit(server: ArmillaryServer) -> str:
    created = httpx.post(server.url + "/v1/tasks", json={"task": "write a long essay"})
    assert created.status_code == 202, created.text
    task_id: str = created.json()["task_id"]
    return task_id


@pytest.mark.parametrize("store", STORES)
def test_cancel_closes_the_upstream_model_stream(
        tmp_path: Path, store: str, ollama: OllamaTestServer) -> None:
    with ollama_server(tmp_path, store, ollama) as server:
        task_id = submit(server)
        stream = streaming(ollama)
        since = time.monotonic()
        cancelled = httpx.delete(f"{server.url}/v1/tasks/{task_id}", timeout=10)
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        assert_hung_up(stream, since)
        assert status_of(server, task_id) == "cancelled"
        assert len(ollama.chat_requests) == 1


@pytest.mark.parametrize("store", STORES)
def test_stop_closes_the_upstream_model_stream(
        tmp_path: Path, store: str, ollama: OllamaTestServer) -> None:
    with ollama_server(tmp_path, store, ollama) as server:
        task_id = submit(server)
        stream = streaming(ollama)
        since = time.monotonic()
        stopped = httpx.post(f"{server.url}/v1/tasks/{task_id}/control",
                             json={"action": "stop"}, timeout=10)
        assert stopped.status_code == 200, stopped.text
        assert stopped.json()["new_status"] == "stopped"
        assert_hung_up(stream, since)
        assert status_of(server, task_id) == "stopped"
        assert len(ollama.chat_requests) == 1


@pytest.mark.parametrize("store", STORES)
def test_a_wait_client_that_leaves_closes_the_upstream_model_stream(
        tmp_path: Path, store: str, ollama: OllamaTestServer) -> None:
    with ollama_server(tmp_path, store, ollama) as server:
        # the client waits for the answer, gives up after 1.5 s and closes its socket
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(server.url + "/v1/tasks", json={"task": "write a long essay",
                                                       "wait": True},
                       timeout=httpx.Timeout(10, read=1.5))
        since = time.monotonic()
        stream = streaming(ollama)
        assert stream.ended_at is None  # the model was still answering when it left
        assert_hung_up(stream, since)  # (the server looks for a hang-up every 0.5 s)
        tasks = httpx.get(server.url + "/v1/tasks").json()["items"]
        assert len(tasks) == 1
        assert wait_for(lambda: status_of(server, tasks[0]["task_id"]) == "cancelled", 5)


@pytest.mark.parametrize("store", STORES)
def test_cancel_closes_the_upstream_openai_stream(
        tmp_path: Path, store: str, openai: OpenAITestServer) -> None:
    section = f'base_url = "{openai.url}/v1"\napi_key = "sk-test"\nmodel = "gpt-4o-mini"'
    with serve(tmp_path, store, "openai", section) as server:
        task_id = submit(server)
        stream = streaming(openai)
        since = time.monotonic()
        cancelled = httpx.delete(f"{server.url}/v1/tasks/{task_id}", timeout=10)
        assert cancelled.status_code == 200, cancelled.text
        assert_hung_up(stream, since)
        assert status_of(server, task_id) == "cancelled"


# --- the providers on their own: cancelled twice, they still hang up -------------------

async def consume(stream: AsyncIterator[ChatChunk], *, slow: bool) -> None:
    """Read the stream; a `slow` consumer works on each chunk (so a cancel finds the
    stream suspended, and it is closed by `aclose`, not by the error inside it)."""
    try:
        async for _ in stream:
            if slow:
                await asyncio.sleep(30)
    finally:
        if slow:
            await stream.aclose()  # type: ignore[attr-defined]


def provider_for(kind: str, model: LoopbackHTTPServer) -> Provider:
    if kind == "ollama":
        return OllamaProvider(base_url=model.url, model="llama3.2")
    return OpenAIProvider(base_url=model.url + "/v1", api_key="sk-test", model="gpt-4o-mini")


@pytest.mark.parametrize("where", ["in_the_read", "in_the_close"])
@pytest.mark.parametrize("kind", ["ollama", "openai"])
async def test_a_provider_stream_cancelled_twice_still_hangs_up(
        kind: str, where: str, ollama: OllamaTestServer, openai: OpenAITestServer) -> None:
    model: LoopbackHTTPServer = ollama if kind == "ollama" else openai
    provider = provider_for(kind, model)
    try:
        stream = provider.stream(ChatRequest(messages=[Message(role="user", content="hi")]))
        reader = asyncio.create_task(consume(stream, slow=where == "in_the_close"))
        assert await model.await_until(
            lambda: bool(model.streams) and model.streams[0].lines_sent >= 3, 10)
        await asyncio.sleep(0.05)
        since = time.monotonic()
        reader.cancel()
        await asyncio.sleep(0)  # the first cancel lands; the stream starts closing
        reader.cancel()  # and a second one lands in that close
        await asyncio.wait([reader], timeout=5)
        assert reader.cancelled()
        record = model.streams[0]
        assert await model.await_until(lambda: record.ended_at is not None, HANGUP_BOUND), \
            f"the model was still streaming {HANGUP_BOUND}s after the cancel"
        assert record.client_closed and not record.finished
        assert record.ended_at is not None and record.ended_at - since < HANGUP_BOUND
    finally:
        await provider.aclose()
