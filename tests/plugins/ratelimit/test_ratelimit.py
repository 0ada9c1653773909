"""Request limits per caller and route class, concurrent runs per key, and what happens
when the storage is down; served on real uvicorn."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import armillary_auth
import armillary_ratelimit
import armillary_tasks
import httpx
import pytest

from armillary.testing import ProviderPlugin, ScriptedProvider, Turn, make_app, serve_app

KEYS = [{"name": "alice", "key": "alice-key-0123456789"},
        {"name": "bob", "key": "bob-key-0123456789"}]
ALICE, BOB = {"X-API-Key": "alice-key-0123456789"}, {"X-API-Key": "bob-key-0123456789"}


@asynccontextmanager
async def limited(settings: Mapping[str, Any], *, auth: bool = True,
                  turns: list[Turn | str] | None = None
                  ) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    plugins: dict[str, object] = {"ratelimit": armillary_ratelimit, "tasks": armillary_tasks,
                                  "scripted": ProviderPlugin(ScriptedProvider(turns))}
    config: dict[str, Any] = {"plugins": {"ratelimit": dict(settings)}}
    if auth:
        plugins["auth"] = armillary_auth
        config["plugins"]["auth"] = {"keys": KEYS}
    app = make_app(plugins, config=config)
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield client, app


def three_reads() -> dict[str, Any]:
    return {"classes": {"read": {"limit": "3/minute", "methods": ["GET"]},
                        "write": {"limit": "100/minute"}}}


async def test_a_key_past_its_limit_gets_429_with_retry_after_and_ratelimit_headers() -> None:
    async with limited(three_reads()) as (client, app):
        answers = [await client.get("/v1/tasks", headers=ALICE) for _ in range(4)]
        assert app.state.kernel.state["ratelimit"]["refused"] == 1
        assert [r.status_code for r in answers] == [200, 200, 200, 429]
        first, refused = answers[0], answers[3]
        assert first.headers["ratelimit-limit"] == "3"
        assert first.headers["ratelimit-remaining"] == "2"
        assert first.headers["x-ratelimit-limit"] == "3"
        assert refused.json()["code"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.headers["ratelimit-remaining"] == "0"
        assert int(refused.headers["x-ratelimit-reset"]) >= int(time.time())
        # another key, and another class, have their own budgets
        assert (await client.get("/v1/tasks", headers=BOB)).status_code == 200
        posted = await client.post("/v1/tasks", json={}, headers=ALICE)
        assert posted.status_code == 422  # counted as "write", got through to the route


async def test_without_auth_the_limit_is_per_client_address() -> None:
    async with limited(three_reads(), auth=False) as (client, _app):
        codes = [(await client.get("/v1/tasks")).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        assert (await client.get("/health")).status_code in (200, 503)  # exempt


async def test_a_key_cannot_have_more_runs_at_once_than_allowed() -> None:
    slow = Turn(text="slow " * 50, delay=0.05)
    async with limited({"max_concurrent_runs": 1}, turns=[slow, "quick", "third"]) as \
            (client, app):
        first = await client.post("/v1/tasks", json={"task": "a"}, headers=ALICE)
        assert first.status_code == 202
        second = await client.post("/v1/tasks", json={"task": "b"}, headers=ALICE)
        assert second.status_code == 429 and second.json()["code"] == "too_many_runs"
        assert (await client.post("/v1/tasks", json={"task": "c"}, headers=BOB)
                ).status_code == 202
        await app.state.kernel.runner.wait(first.json()["task_id"], timeout=10)
        again = await client.post("/v1/tasks", json={"task": "d"}, headers=ALICE)
        assert again.status_code == 202


DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


async def test_a_dead_storage_fails_open_by_default_logged_and_counted(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="armillary_ratelimit.middleware")
    async with limited({"storage": DEAD_REDIS, **three_reads()}) as (client, app):
        codes = [(await client.get("/v1/tasks", headers=ALICE)).status_code
                 for _ in range(4)]
        assert codes == [200] * 4
        assert app.state.kernel.state["ratelimit"]["storage_errors"] == 4
    assert any("failing open" in r.getMessage() for r in caplog.records)


async def test_a_dead_storage_fails_closed_when_configured() -> None:
    async with limited({"storage": DEAD_REDIS, "fail_open": False}) as (client, _app):
        r = await client.get("/v1/tasks", headers=ALICE)
        assert r.status_code == 503 and r.json()["code"] == "rate_limit_unavailable"


@pytest.mark.redis
async def test_redis_storage_counts_one_budget_for_a_key() -> None:
    settings = {"storage": "redis://127.0.0.1:6379/0",
                "key_prefix": f"test-{uuid.uuid4().hex}", **three_reads()}
    async with limited(settings) as (client, _app):
        codes = [(await client.get("/v1/tasks", headers=ALICE)).status_code
                 for _ in range(4)]
        assert codes == [200, 200, 200, 429]
