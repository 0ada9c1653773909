"""Credentials in a provider's `base_url` never reach a client, a stored error or the log.

A real `armillary serve` whose Ollama `base_url` carries `user:SECRET@`: every message
that names the URL (503s on /chat and /ollama/chat, a failed task's stored error and
events, /health?fresh=true, the server's own output) shows it with the password masked,
while the password is still sent upstream as HTTP Basic auth, as httpx does.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from armillary_ollama.provider import OllamaProvider
from armillary_openai.provider import OpenAIProvider

from armillary.testing import ArmillaryServer, free_port
from tests.support.ollama_server import OllamaTestServer, Reply
from tests.support.openai_server import OpenAITestServer

SECRET = "s3cr3tPassw0rd"
TOKEN = "tok-9f8e7d"


def write_config(tmp_path: Path, base_url: str) -> Path:
    config = tmp_path / "plugins.toml"
    config.write_text(f"""
[kernel]
enable = ["ollama", "chat", "agents", "tools", "tasks", "sse"]
store = "sqlite:///runs.db"

[plugins.ollama]
base_url = "{base_url}"
model = "llama3.2"
connect_timeout = 2
""")
    return config


def leaks(text: str) -> bool:
    return SECRET in text or TOKEN in text


def wait_finished(url: str, task_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        task = httpx.get(f"{url}/v1/tasks/{task_id}").json()
        if task["status"] in ("failed", "completed", "cancelled", "interrupted"):
            return dict(task)
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} did not finish")


def task_events(url: str, task_id: str) -> str:
    with httpx.stream("GET", f"{url}/v1/stream/tasks/{task_id}",
                      headers={"Accept": "text/event-stream"}, timeout=20) as response:
        assert response.status_code == 200
        return "".join(response.iter_text())


def test_a_password_in_base_url_is_masked_everywhere_when_the_provider_is_down(
        tmp_path: Path) -> None:
    port = free_port()  # nothing listens here
    base_url = f"http://user:{SECRET}@127.0.0.1:{port}?api_key={TOKEN}"
    config = write_config(tmp_path, base_url)
    with ArmillaryServer(config, log_path=tmp_path / "serve.log") as server:
        chat = httpx.post(server.url + "/chat", json={"message": "hi"}, timeout=20)
        assert chat.status_code == 503, chat.text
        assert chat.json()["code"] == "provider_unavailable"
        assert "127.0.0.1" in chat.json()["detail"]  # still says which host
        assert "user:***@" in chat.json()["detail"]

        stream = httpx.post(server.url + "/chat", json={"message": "hi", "stream": True},
                            timeout=20)
        ollama_chat = httpx.post(server.url + "/ollama/chat",
                                 json={"model": "llama3.2", "message": "hi"}, timeout=20)
        assert ollama_chat.status_code == 503, ollama_chat.text
        ollama_stream = httpx.post(server.url + "/ollama/chat", timeout=20,
                                   json={"model": "llama3.2", "message": "hi", "stream": True})

        created = httpx.post(server.url + "/v1/tasks", json={"task": "what is 6*7?"})
        assert created.status_code == 202
        task_id = created.json()["task_id"]
        task = wait_finished(server.url, task_id)
        assert task["status"] == "failed"
        assert "cannot connect" in json.dumps(task)
        events = task_events(server.url, task_id)
        assert "provider_unavailable" in events

        health = httpx.get(server.url + "/health?fresh=true", timeout=20)
        assert health.json()["providers"]["ollama"]["reachable"] is False
        assert "127.0.0.1" in health.json()["providers"]["ollama"]["detail"]
        background = httpx.get(server.url + "/health", timeout=20)

        for name, text in [("/chat", chat.text), ("/chat stream", stream.text),
                           ("/ollama/chat", ollama_chat.text),
                           ("/ollama/chat stream", ollama_stream.text),
                           ("task", json.dumps(task)), ("task events", events),
                           ("/health?fresh=true", health.text), ("/health", background.text)]:
            assert not leaks(text), f"{name} shows the secret: {text}"
    output = server.output()
    assert "POST /ollama/chat" in output  # the log was captured
    assert not leaks(output), output


def test_with_the_provider_up_the_password_is_sent_as_basic_auth_and_never_shown(
        tmp_path: Path) -> None:
    with OllamaTestServer(["Hello there!", Reply(status=404, error="page not found")]) as ollama:
        base_url = ollama.url.replace("http://", f"http://user:{SECRET}@")
        config = write_config(tmp_path, base_url)
        with ArmillaryServer(config, log_path=tmp_path / "serve.log") as server:
            ok = httpx.post(server.url + "/chat", json={"message": "hi"}, timeout=20)
            assert ok.status_code == 200, ok.text
            assert ok.json()["reply"] == "Hello there!"
            # the upstream answers 404 for the next chat: the message names the URL
            not_ollama = httpx.post(server.url + "/chat", json={"message": "again"}, timeout=20)
            assert not_ollama.status_code == 502, not_ollama.text
            assert "is base_url an Ollama server?" in not_ollama.json()["detail"]
            health = httpx.get(server.url + "/health?fresh=true", timeout=20)
            assert health.json()["providers"]["ollama"]["reachable"] is True
            plugins = httpx.get(server.url + "/v1/plugins", timeout=20)
        sent = ollama.chat_requests[0].headers
        expected = base64.b64encode(f"user:{SECRET}".encode()).decode()
        auth = {k.lower(): v for k, v in sent.items()}.get("authorization")
        assert auth == f"Basic {expected}"
        for name, text in [("/chat 502", not_ollama.text), ("/health", health.text),
                           ("/v1/plugins", plugins.text), ("log", server.output())]:
            assert not leaks(text), f"{name} shows the secret: {text}"


async def test_provider_repr_and_unhealthy_details_mask_the_password() -> None:
    with OllamaTestServer() as ollama, OpenAITestServer() as openai:
        secret_url = f"http://user:{SECRET}@127.0.0.1:{ollama.port}/nothing?token={TOKEN}"
        ollama_provider = OllamaProvider(base_url=secret_url, connect_timeout=2)
        openai_url = openai.url.replace("http://", f"http://user:{SECRET}@") + "/nothing"
        openai_provider = OpenAIProvider(base_url=openai_url, connect_timeout=2)
        try:
            for provider in (ollama_provider, openai_provider):
                assert not leaks(repr(provider)), repr(provider)
                health = await provider.health()
                assert health.reachable is False  # both answer 404 under /nothing
                assert health.detail and "answered 404" in health.detail
                assert not leaks(health.detail), health.detail
        finally:
            await ollama_provider.aclose()
            await openai_provider.aclose()


@pytest.mark.parametrize("provider_class", [OllamaProvider, OpenAIProvider])
async def test_transport_errors_of_both_providers_mask_the_password(
        provider_class: type[OllamaProvider] | type[OpenAIProvider]) -> None:
    from armillary import ChatRequest, Message, ProviderUnavailable

    url = f"http://admin:{SECRET}@127.0.0.1:{free_port()}/v1?key={TOKEN}"
    provider = provider_class(base_url=url, connect_timeout=2)
    try:
        with pytest.raises(ProviderUnavailable) as caught:
            await provider.chat(ChatRequest(messages=[Message(role="user", content="hi")]))
        assert "admin:***@127.0.0.1" in caught.value.detail
        assert not leaks(caught.value.detail) and not leaks(str(caught.value))
        health = await provider.health()
        assert health.detail and not leaks(health.detail)
    finally:
        await provider.aclose()


async def test_nothing_logged_at_any_level_shows_the_password(
        caplog: pytest.LogCaptureFixture) -> None:
    """Served in this loop with every logger at DEBUG (as a deployment that configures
    root logging would see it): httpx's own request lines, armillary's warnings and
    tracebacks, for a provider that is up and one that is down."""
    import logging

    import armillary_agents
    import armillary_chat
    import armillary_ollama

    from armillary.testing import make_app, serve_app

    caplog.set_level(logging.DEBUG)
    with OllamaTestServer(["Hello there!", Reply(status=500, error="boom")]) as ollama:
        up = ollama.url.replace("http://", f"http://user:{SECRET}@")
        down = f"http://user:{SECRET}@127.0.0.1:{free_port()}"
        for base_url in (up, down):
            app = make_app({"ollama": armillary_ollama, "chat": armillary_chat,
                            "agents": armillary_agents},
                           config={"plugins": {"ollama": {"base_url": base_url,
                                                          "model": "llama3.2",
                                                          "connect_timeout": 2}}})
            async with serve_app(app) as url, httpx.AsyncClient(base_url=url,
                                                                timeout=20) as client:
                for body in ({"message": "hi"}, {"message": "hi", "stream": True}):
                    await client.post("/chat", json=body)
                await client.post("/ollama/chat", json={"model": "llama3.2", "message": "x",
                                                        "stream": True})
                await client.get("/health", params={"fresh": "true"})
    logged = "\n".join(f"{r.name}: {r.getMessage()} {r.exc_text or ''}"
                       for r in caplog.records)
    assert "HTTP Request: POST http://user:***@127.0.0.1" in logged  # httpx's line, masked
    assert not leaks(logged), logged
