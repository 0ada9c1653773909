"""With auth on, every route of every first-party plugin refuses a request without a key
(401 in the error model), except health, the docs and the OpenAPI document.

The routes are enumerated from the assembled app with every plugin under plugins/
enabled — whatever plugins exist when the test runs — so a new plugin's routes are
covered without anyone remembering to add them here."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute, APIWebSocketRoute
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from armillary.testing import make_app, serve_app

REPO = Path(__file__).resolve().parents[2]
PUBLIC = {"/health", "/v1/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
KEY = "route-coverage-key-0123456789"


def first_party_plugins() -> list[str]:
    names = []
    for project in sorted((REPO / "plugins").glob("*/pyproject.toml")):
        meta = tomllib.loads(project.read_text(encoding="utf-8"))
        names += list(meta["project"].get("entry-points", {}).get("armillary", {}))
    return names


def concrete(path: str) -> str:
    """A path template with each `{param}` (or `{param:path}`) filled in."""
    return re.sub(r"\{[^}]+\}", "x", path)


def every_plugin_app() -> Any:
    names = first_party_plugins()
    assert {"auth", "tasks", "chat"} <= set(names)
    config = {"kernel": {"enable": names},
              "plugins": {"auth": {"keys": [{"name": "t", "key": KEY,
                                             "scopes": ["admin"]}]}}}
    return make_app(config=config, load_entry_points=True)


def flat(routes: list[Any]) -> list[tuple[str, Any, set[str] | None]]:
    """(path, route, methods) of every route, included routers' too (FastAPI 0.16x keeps
    an included router as one entry whose `effective_route_contexts` are its routes with
    their full paths; older versions copy the routes into `app.routes`)."""
    found = []
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            # a WebSocket route's context has no path of its own: the include's prefix
            # plus the route's
            prefix = getattr(getattr(route, "include_context", None), "prefix", "") or ""
            found += [(c.path or prefix + c.original_route.path, c.original_route,
                       getattr(c, "methods", None)) for c in contexts()]
        else:
            found.append((route.path, route, getattr(route, "methods", None)))
    return found


def routes(app: Any) -> tuple[list[tuple[str, str]], list[str]]:
    http, ws = [], []
    for path, route, methods in flat(app.routes):
        if isinstance(route, APIWebSocketRoute):
            ws.append(path)
        elif isinstance(route, APIRoute) or methods:
            http += [(method, path) for method in sorted(methods or ())]
    return http, ws


async def test_every_http_and_websocket_route_refuses_a_request_without_a_key() -> None:
    app = every_plugin_app()
    kernel = app.state.kernel
    failed = [p.name for p in kernel.plugins if p.status == "failed"]
    assert not failed, f"plugins failed to load: {failed}"
    http, ws = routes(app)
    # the enumeration found the plugins' routes, each with a real path
    assert len(http) > 20 and ws, (http, ws)
    assert all(p.startswith("/") for _, p in http) and all(p.startswith("/") for p in ws)
    assert ("POST", "/v1/tasks") in http and "/v1/stream/tasks/{task_id}" in ws
    open_routes: list[str] = []
    async with serve_app(app, ws="websockets-sansio") as url, \
            httpx.AsyncClient(base_url=url, timeout=10) as client:
        for method, path in http:
            if method == "HEAD":
                continue  # GET's twin
            r = await client.request(method, concrete(path), json={})
            if path in PUBLIC:
                assert r.status_code != 401, (method, path)
                continue
            body = r.json() if r.headers.get("content-type", "").startswith(
                "application/json") else {}
            if r.status_code != 401 or body.get("code") != "unauthorized":
                open_routes.append(f"{method} {path} -> {r.status_code}")
        for path in ws:
            try:
                async with connect(url.replace("http", "ws", 1) + concrete(path)):
                    open_routes.append(f"WS {path} -> accepted")
            except InvalidStatus as exc:
                if exc.response.status_code != 401:
                    open_routes.append(f"WS {path} -> {exc.response.status_code}")
        # and with the key the same routes get past auth (not a blanket 401)
        ok = await client.get("/v1/tasks", headers={"X-API-Key": KEY})
        assert ok.status_code == 200
    assert not open_routes, "routes open without a key:\n" + "\n".join(open_routes)


@pytest.mark.parametrize("path", sorted(PUBLIC - {"/docs/oauth2-redirect", "/redoc"}))
async def test_the_public_paths_answer_without_a_key(path: str) -> None:
    app = every_plugin_app()
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        assert (await client.get(path)).status_code in (200, 503)  # 503: provider down
