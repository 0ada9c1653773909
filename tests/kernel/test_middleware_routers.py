"""Middleware goes where its `order` says (lower is outer; the edge outside the kernel's
body limits at 50); a router's `dependencies` guard every route of it and show in
OpenAPI."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, Request, Security
from fastapi.security import APIKeyHeader
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from armillary import ArmillaryError, hookimpl
from armillary._errors import RegistrationError
from armillary.testing import make_app, make_kernel, serve_app

#: names of the middleware each request passed, outermost first, by request path
SEEN: dict[str, list[str]] = {}


class Trail:
    """Records its name on every HTTP request it sees, in the scope and in `SEEN`."""

    def __init__(self, app: ASGIApp, name: str) -> None:
        self.app = app
        self.name = name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope.setdefault("trail", []).append(self.name)
            SEEN.setdefault(scope["path"], []).append(self.name)
        await self.app(scope, receive, send)


trail_router = APIRouter()


@trail_router.get("/trail")
async def trail(request: Request) -> list[str]:
    return list(request.scope.get("trail", []))


@trail_router.post("/trail")
async def post_trail(request: Request) -> list[str]:
    await request.body()  # reads it all: a stalled body holds this route
    return list(request.scope.get("trail", []))


class Edge:
    @hookimpl
    def register_middleware(self, register: Any) -> None:
        register(CORSMiddleware, order=10, allow_origins=["http://app.example"],
                 allow_methods=["*"])
        register(Trail, order=20, name="edge")

    @hookimpl
    def register_routers(self, register: Any) -> None:
        register(trail_router)


class Inner:
    @hookimpl
    def register_middleware(self, register: Any) -> None:
        register(Trail, order=150, name="innermost")
        register(Trail, name="inner")  # default order 100


class First:
    @hookimpl(tryfirst=True)
    def register_middleware(self, register: Any) -> None:
        register(Trail, name="first")  # order 100, like "inner", but tryfirst


def app_with_middleware() -> Any:
    # load order: inner before first; first is tryfirst, so it is outer among order 100
    return make_app({"inner": Inner(), "edge": Edge(), "first": First()},
                    {"kernel": {"max_body_bytes": 64}})


async def test_middleware_runs_outermost_first_by_order_then_hook_order() -> None:
    async with serve_app(app_with_middleware()) as url, httpx.AsyncClient(base_url=url) as c:
        answer = await c.get("/trail")
    assert answer.json() == ["edge", "first", "inner", "innermost"]


async def test_edge_middleware_is_outside_the_body_limit_so_a_413_carries_cors_headers() -> None:
    SEEN.pop("/trail", None)
    async with serve_app(app_with_middleware()) as url, httpx.AsyncClient(base_url=url) as c:
        refused = await c.post("/trail", content=b"x" * 1000,
                               headers={"Origin": "http://app.example"})
    assert refused.status_code == 413 and refused.json()["code"] == "payload_too_large"
    assert refused.headers["access-control-allow-origin"] == "http://app.example"
    # the edge saw the request; middleware inside the limit (order 100) never did
    assert SEEN["/trail"] == ["edge"]


def test_an_order_that_is_not_an_int_is_refused_naming_the_plugin() -> None:
    class Sloppy:
        @hookimpl
        def register_middleware(self, register: Any) -> None:
            register(Trail, order="early", name="x")

    with pytest.raises(RegistrationError, match=r"plugin 'sloppy' .*order='early'"):
        make_kernel({"sloppy": Sloppy()})


api_key = APIKeyHeader(name="X-Test-Key", auto_error=False)


async def require_key(key: str | None = Security(api_key)) -> None:
    if key != "sesame":
        raise ArmillaryError("missing or wrong X-Test-Key", code="unauthorized",
                             status_code=401)


locked = APIRouter()


@locked.get("/locked/thing")
async def thing() -> dict[str, bool]:
    return {"opened": True}


class Locked:
    @hookimpl
    def register_routers(self, register: Any) -> None:
        register(locked, dependencies=[Depends(require_key)])


async def test_a_routers_dependencies_guard_each_of_its_routes_and_only_those() -> None:
    app = make_app({"locked": Locked(), "edge": Edge()})
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url) as client:
        refused = await client.get("/locked/thing")
        wrong = await client.get("/locked/thing", headers={"X-Test-Key": "nope"})
        opened = await client.get("/locked/thing", headers={"X-Test-Key": "sesame"})
        other = await client.get("/trail")  # another plugin's router: not guarded
        doc = (await client.get("/openapi.json")).json()
    assert refused.status_code == 401 and refused.json() == {
        "detail": "missing or wrong X-Test-Key", "code": "unauthorized"}
    assert wrong.status_code == 401
    assert opened.status_code == 200 and opened.json() == {"opened": True}
    assert other.status_code == 200
    schemes = doc["components"]["securitySchemes"]
    assert schemes["APIKeyHeader"] == {"type": "apiKey", "in": "header", "name": "X-Test-Key"}
    assert doc["paths"]["/locked/thing"]["get"]["security"] == [{"APIKeyHeader": []}]
    assert "security" not in doc["paths"]["/trail"]["get"]


def test_a_dependency_that_is_not_depends_is_refused() -> None:
    class Careless:
        @hookimpl
        def register_routers(self, register: Any) -> None:
            register(locked, dependencies=[require_key])

    with pytest.raises(RegistrationError, match=r"plugin 'careless' .*not a fastapi\.Depends"):
        make_kernel({"careless": Careless()})


async def test_a_stalled_body_gets_408_with_cors_headers() -> None:
    """The read timeout sits with the size limit at 50: inside the edge (its 408 carries
    CORS headers) and outside the limit."""
    app = make_app({"edge": Edge()}, {"kernel": {"body_read_timeout_seconds": 0.2}})
    head = (b"POST /trail HTTP/1.1\r\nHost: test\r\nOrigin: http://app.example\r\n"
            b"Content-Type: application/json\r\n")
    stalled = [head + b"Content-Length: 100\r\n\r\n[1,",
               head + b"Transfer-Encoding: chunked\r\n\r\n3\r\n[1,\r\n"]
    async with serve_app(app) as url:
        host, port = url.removeprefix("http://").split(":")
        answers = []
        for request in stalled:
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(request)
            await writer.drain()
            answers.append((await asyncio.wait_for(reader.read(), 10)).decode())
            writer.close()
    for answer in answers:
        lowered = answer.lower()
        assert lowered.startswith("http/1.1 408"), answer
        assert "access-control-allow-origin: http://app.example" in lowered
        assert '"code":"request_timeout"' in answer
