"""Token budgets per key: reserved before a model-using request, settled by the kernel's
`provider.call` events with the tokens the (protocol-faithful) Ollama reported; served on
real uvicorn, and shared by two `armillary serve` processes on the local Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import armillary_auth
import armillary_chat
import armillary_ollama
import armillary_ratelimit
import armillary_tasks
import httpx
import pytest
from armillary_ratelimit.budget import TokenBudget
from armillary_ratelimit.middleware import BUDGET_STATE, make_storage
from armillary_ratelimit.settings import RateLimitSettings

from armillary import FIREHOSE
from armillary.testing import ArmillaryServer, make_app, serve_app
from tests.support.ollama_server import OllamaTestServer, Reply

KEYS = [{"name": "alice", "key": "alice-key-0123456789"},
        {"name": "bob", "key": "bob-key-0123456789"}]
ALICE, BOB = {"X-API-Key": "alice-key-0123456789"}, {"X-API-Key": "bob-key-0123456789"}
#: every model call reports 30 prompt + 50 completion tokens
PER_CALL = 80
#: streamed: the kernel's non-stream guard path publishes `provider.call` before it reads
#: the reply's usage (tokens None, so the estimate is charged; see the plugin README)
STREAMED = {"message": "hi", "stream": True}


def counted() -> Reply:
    return Reply("Hello there.", prompt_eval_count=30, eval_count=50)


@asynccontextmanager
async def budgeted(settings: Mapping[str, Any], ollama: OllamaTestServer
                   ) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    plugins: dict[str, object] = {"auth": armillary_auth, "ratelimit": armillary_ratelimit,
                                  "chat": armillary_chat, "tasks": armillary_tasks,
                                  "ollama": armillary_ollama}
    config: dict[str, Any] = {"plugins": {
        "auth": {"keys": KEYS}, "ratelimit": dict(settings),
        "ollama": {"base_url": ollama.url, "model": "llama3.2"}}}
    app = make_app(plugins, config=config)
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield client, app


async def settled(budget: TokenBudget, owner: str, expected: int) -> None:
    """Wait until the key's counter is `expected` (events settle asynchronously)."""
    deadline = time.monotonic() + 5
    while (used := await budget.used(owner)) != expected:
        assert time.monotonic() < deadline, f"{owner}'s counter is {used}, not {expected}"
        await asyncio.sleep(0.02)


async def test_a_key_that_spent_its_budget_gets_429_and_another_key_does_not() -> None:
    with OllamaTestServer(default=counted()) as ollama:
        settings = {"tokens_per_window": 200, "reserve_tokens": 50, "token_window": "1 hour"}
        async with budgeted(settings, ollama) as (client, app):
            kernel = app.state.kernel
            budget: TokenBudget = kernel.state[BUDGET_STATE]
            first = await client.post("/chat", json=STREAMED, headers=ALICE)
            assert first.status_code == 200, first.text
            # the reservation is what the headers show while the request ran
            assert first.headers["ratelimit-tokens-limit"] == "200"
            assert first.headers["ratelimit-tokens-remaining"] == "150"
            await settled(budget, "alice", PER_CALL)  # charged the actual, reservation back
            second = await client.post("/chat", json=STREAMED, headers=ALICE)
            assert second.status_code == 200
            assert second.headers["ratelimit-tokens-remaining"] == str(200 - PER_CALL - 50)
            await settled(budget, "alice", 2 * PER_CALL)
            subscription = kernel.bus.subscribe(FIREHOSE)
            try:
                refused = await client.post("/chat", json=STREAMED, headers=ALICE)
                event = await subscription.get(timeout=5)
            finally:
                await subscription.close()
            assert refused.status_code == 429
            body = refused.json()
            assert body["code"] == "token_budget_exceeded"
            assert "40 of its 200 tokens" in body["detail"]
            assert 1 <= int(refused.headers["retry-after"]) <= 3600
            assert refused.headers["ratelimit-remaining"] == "40"
            assert refused.headers["x-ratelimit-limit"] == "200"
            assert event is not None and event.type == "ratelimit.refused"
            assert event.payload == {"limit": "tokens", "route_class": "write"}
            # the refused request never reached the model, and gave its reservation back
            assert len(ollama.chat_requests) == 2
            assert await budget.used("alice") == 2 * PER_CALL
            other = await client.post("/chat", json=STREAMED, headers=BOB)
            assert other.status_code == 200
            assert len(ollama.chat_requests) == 3
            await settled(budget, "bob", PER_CALL)


async def test_a_run_route_holds_its_reservation_until_the_runs_call_settles_it() -> None:
    """A task's model call comes after the 202: its reservation stays until the run's
    provider call (made for the run's owner) settles it, so a burst is refused."""
    slow = Reply("Hello there.", prompt_eval_count=30, eval_count=50, first_delay=1.0)
    with OllamaTestServer([slow], default=counted()) as ollama:
        settings = {"tokens_per_window": 200, "reserve_tokens": 120}
        async with budgeted(settings, ollama) as (client, app):
            budget: TokenBudget = app.state.kernel.state[BUDGET_STATE]
            first = await client.post("/v1/tasks", json={"task": "say hi"}, headers=ALICE)
            assert first.status_code == 202, first.text
            assert await budget.used("alice") == 120  # held past the 202
            burst = await client.post("/v1/tasks", json={"task": "again"}, headers=ALICE)
            assert burst.status_code == 429  # 120 held + 120 > 200
            assert burst.json()["code"] == "token_budget_exceeded"
            task_id = first.json()["task_id"]
            deadline = time.monotonic() + 10
            while (await client.get(f"/v1/tasks/{task_id}", headers=ALICE)).json()[
                    "status"] != "completed":
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            assert len(ollama.chat_requests) == 1
            await settled(budget, "alice", PER_CALL)  # the run's call settled it
            again = await client.post("/v1/tasks", json={"task": "again"}, headers=ALICE)
            assert again.status_code == 202  # 80 + 120 = 200 fits


async def test_a_failed_request_gives_its_reservation_back() -> None:
    with OllamaTestServer(default=counted()) as ollama:
        settings = {"tokens_per_window": 200, "reserve_tokens": 150}
        async with budgeted(settings, ollama) as (client, app):
            budget: TokenBudget = app.state.kernel.state[BUDGET_STATE]
            bad = await client.post("/v1/tasks", json={"nope": 1}, headers=ALICE)
            assert bad.status_code == 422
            assert await budget.used("alice") == 0  # released at the refused response's end
            assert len(ollama.chat_requests) == 0


async def test_a_dead_storage_emits_storage_error_on_the_firehose() -> None:
    with OllamaTestServer(default=counted()) as ollama:
        settings = {"storage": "redis://127.0.0.1:1/0"}
        async with budgeted(settings, ollama) as (client, app):
            subscription = app.state.kernel.bus.subscribe(FIREHOSE)
            try:
                r = await client.get("/v1/tasks", headers=ALICE)
                event = await subscription.get(timeout=5)
            finally:
                await subscription.close()
            assert r.status_code == 200
            assert event is not None and event.type == "ratelimit.storage_error"
            assert event.payload == {"fail": "open"}


REDIS_CONFIG = """
[kernel]
enable = ["auth", "ratelimit", "chat", "ollama"]
store = "memory://"

[plugins.auth]
keys = [{{ name = "alice", key = "alice-key-0123456789" }},
        {{ name = "bob", key = "bob-key-0123456789" }}]

[plugins.ollama]
base_url = "{ollama}"
model = "llama3.2"

[plugins.ratelimit]
storage = "redis://127.0.0.1:6379/0"
key_prefix = "{prefix}"
tokens_per_window = 200
reserve_tokens = 50
"""


@pytest.mark.redis
def test_two_instances_on_one_redis_share_a_keys_token_budget(tmp_path: Path) -> None:
    prefix = f"test-{uuid.uuid4().hex}"
    settings = RateLimitSettings(storage="redis://127.0.0.1:6379/0", key_prefix=prefix,
                                 tokens_per_window=200, reserve_tokens=50)

    def used(owner: str) -> int:
        async def read() -> int:
            return await TokenBudget(settings, make_storage(settings)).used(owner)
        return asyncio.run(read())

    def wait_for(owner: str, expected: int) -> None:
        deadline = time.monotonic() + 5
        while used(owner) != expected:
            assert time.monotonic() < deadline, f"{owner}: {used(owner)} != {expected}"
            time.sleep(0.05)

    with OllamaTestServer(default=counted()) as ollama:
        config = tmp_path / "plugins.toml"
        config.write_text(REDIS_CONFIG.format(ollama=ollama.url, prefix=prefix),
                          encoding="utf-8")
        with ArmillaryServer(config, log_path=tmp_path / "a.log") as a, \
                ArmillaryServer(config, log_path=tmp_path / "b.log") as b:
            def chat(server: ArmillaryServer, key: dict[str, str]) -> httpx.Response:
                return httpx.post(server.url + "/chat", json=STREAMED, headers=key,
                                  timeout=10)

            assert chat(a, ALICE).status_code == 200
            wait_for("alice", PER_CALL)
            assert chat(b, ALICE).status_code == 200
            wait_for("alice", 2 * PER_CALL)  # b charged the same counter in Redis
            refused = chat(a, ALICE)
            assert refused.status_code == 429
            assert refused.json()["code"] == "token_budget_exceeded"
            assert chat(b, ALICE).status_code == 429
            assert chat(b, BOB).status_code == 200
            assert len(ollama.chat_requests) == 3
            wait_for("alice", 2 * PER_CALL)
            wait_for("bob", PER_CALL)
