"""CORS in front of every route: preflights answered before auth, refusals readable by
the browser, nothing without the plugin."""

from __future__ import annotations

import armillary_auth
import armillary_cors
import armillary_tasks
import httpx

from armillary.testing import make_app, serve_app

ORIGIN = "https://app.example.com"
KEY = "cors-key-0123456789"


def app(cors: bool = True):  # type: ignore[no-untyped-def]
    plugins: dict[str, object] = {"auth": armillary_auth, "tasks": armillary_tasks}
    config = {"plugins": {"auth": {"keys": [{"name": "web", "key": KEY}]}}}
    if cors:
        plugins["cors"] = armillary_cors
        config["plugins"]["cors"] = {"allow_origins": [ORIGIN]}  # type: ignore[index]
    return make_app(plugins, config=config)


async def test_a_preflight_is_answered_without_a_key() -> None:
    async with serve_app(app()) as url, httpx.AsyncClient(base_url=url) as client:
        r = await client.options("/v1/tasks", headers={
            "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key, content-type"})
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == ORIGIN
        assert "x-api-key" in r.headers["access-control-allow-headers"].lower()
        other = await client.options("/v1/tasks", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert other.status_code == 400
        assert "access-control-allow-origin" not in other.headers


async def test_answers_and_refusals_carry_the_cors_headers() -> None:
    async with serve_app(app()) as url, httpx.AsyncClient(base_url=url) as client:
        refused = await client.get("/v1/tasks", headers={"Origin": ORIGIN})
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == ORIGIN
        ok = await client.get("/v1/tasks", headers={"Origin": ORIGIN, "X-API-Key": KEY})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == ORIGIN
        assert "retry-after" in ok.headers["access-control-expose-headers"].lower()


async def test_without_the_plugin_there_are_no_cors_headers() -> None:
    async with serve_app(app(cors=False)) as url, httpx.AsyncClient(base_url=url) as client:
        r = await client.get("/v1/tasks", headers={"Origin": ORIGIN, "X-API-Key": KEY})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
