"""The assembled app: one error model everywhere, health and introspection."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from pydantic import BaseModel

from armillary import hookimpl
from armillary._errors import Conflict, StartupError
from armillary._local_runner import LocalRunner
from armillary._models import ProviderHealth
from armillary.testing import ProviderPlugin, ScriptedProvider, make_app, make_kernel


class Body(BaseModel):
    name: str
    count: int


router = APIRouter()


@router.post("/echo")
async def echo(body: Body) -> Body:
    return body


@router.get("/boom")
async def boom() -> None:
    raise RuntimeError("secret internals")


@router.get("/busy")
async def busy() -> None:
    raise Conflict("the thing is busy", code="thing_busy")


class RoutesPlugin:
    @hookimpl
    def register_routers(self, register):  # type: ignore[no-untyped-def]
        register(router)


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = make_app({"routes": RoutesPlugin()}, config={"kernel": {"max_body_bytes": 64}})
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_unknown_path_is_404_with_a_code(client: TestClient) -> None:
    r = client.get("/nowhere")
    assert r.status_code == 404
    assert r.json() == {"detail": "Not Found", "code": "not_found"}


def test_wrong_method_is_405_with_a_code(client: TestClient) -> None:
    r = client.delete("/echo")
    assert r.status_code == 405
    assert r.json()["code"] == "method_not_allowed"


def test_invalid_body_is_422_naming_the_fields(client: TestClient) -> None:
    r = client.post("/echo", json={"name": "x", "count": "many"})
    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "validation_error"
    assert "count" in body["detail"]


def test_malformed_json_is_422_not_a_traceback(client: TestClient) -> None:
    r = client.post("/echo", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["code"] == "validation_error"


def test_oversized_body_is_413(client: TestClient) -> None:
    r = client.post("/echo", json={"name": "x" * 100, "count": 1})
    assert r.status_code == 413
    assert r.json()["code"] == "payload_too_large"


def test_oversized_chunked_body_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        yield b"x" * 100
        yield b'", "count": 1}'

    r = client.post("/echo", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.json()["code"] == "payload_too_large"


def test_an_unhandled_error_is_500_without_internals(client: TestClient) -> None:
    r = client.get("/boom")
    assert r.status_code == 500
    assert r.json() == {"detail": "internal error: RuntimeError", "code": "internal_error"}
    assert "secret" not in r.text


def test_armillary_errors_keep_their_status_and_code(client: TestClient) -> None:
    r = client.get("/busy")
    assert r.status_code == 409
    assert r.json() == {"detail": "the thing is busy", "code": "thing_busy"}


def test_plugins_endpoint_lists_what_each_plugin_registered(client: TestClient) -> None:
    plugins = {p["name"]: p for p in client.get("/v1/plugins").json()["plugins"]}
    assert plugins["routes"]["registered"]["routes"] == ["GET /boom", "GET /busy", "POST /echo"]
    assert plugins["builtin:health"]["registered"]["routes"] == ["GET /health", "GET /v1/health"]


def test_health_reports_each_plugin_and_provider() -> None:
    up = ScriptedProvider(name="up")
    down = ScriptedProvider(name="down", reachable=False)
    app = make_app({"providers": ProviderPlugin(up, down)})
    with TestClient(app) as client:
        for path in ("/health?fresh=true", "/v1/health?fresh=true"):
            r = client.get(path)
            assert r.status_code == 200
            body = r.json()
            assert body["status"] == "degraded"
            assert body["ready"] is True
            assert body["plugins"]["providers"] == {"status": "loaded"}
            assert body["providers"]["up"]["reachable"] is True
            assert body["providers"]["down"]["reachable"] is False
            assert body["providers"]["down"]["detail"] == "scripted: unreachable"


def test_health_is_ok_when_everything_is_reachable() -> None:
    app = make_app({"providers": ProviderPlugin(ScriptedProvider())})
    with TestClient(app) as client:
        assert client.get("/health?fresh=true").json()["status"] == "ok"


class CountingProvider(ScriptedProvider):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.health_checks = 0

    async def health(self) -> ProviderHealth:
        self.health_checks += 1
        return await super().health()


def test_health_probes_providers_in_the_background_not_per_request() -> None:
    provider = CountingProvider(name="counted")
    app = make_app({"providers": ProviderPlugin(provider)},
                   config={"kernel": {"provider_check_interval": 3600}})
    with TestClient(app) as client:
        deadline = time.monotonic() + 5
        while provider.health_checks == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert provider.health_checks == 1  # the check made at startup
        for _ in range(20):
            body = client.get("/health").json()
        assert provider.health_checks == 1
        assert body["providers"]["counted"]["reachable"] is True
        assert "checked_at" in body["providers"]["counted"]
        client.get("/health?fresh=true")
        assert provider.health_checks == 2


def test_a_provider_not_checked_yet_is_reported_as_such() -> None:
    provider = ScriptedProvider(name="slowpoke")
    kernel_app = make_app({"providers": ProviderPlugin(provider)})
    # before startup nothing has been checked; the report says so instead of guessing
    from armillary._default_plugins.health import ProviderChecks

    checks = ProviderChecks(kernel_app.state.kernel)
    assert checks.report() == {"slowpoke": {"reachable": None, "detail": "not checked yet"}}


def test_openapi_lists_plugin_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/echo", "/health", "/v1/plugins"} <= set(paths)


class FailingStartup:
    @hookimpl
    async def startup(self, kernel):  # type: ignore[no-untyped-def]
        raise KeyError("DATABASE_URL")


def test_a_startup_hook_that_raises_names_its_plugin_and_never_hangs() -> None:
    app = make_app({"needs-db": FailingStartup()})
    with pytest.raises(StartupError) as info, TestClient(app):
        pass
    assert str(info.value) == ("plugin 'needs-db' failed in its startup hook: "
                               "KeyError: 'DATABASE_URL'")


class BrokenRunnerPlugin:
    def __init__(self) -> None:
        self.provider = ScriptedProvider()
        self.closed = False

    @hookimpl
    def register_providers(self, register):  # type: ignore[no-untyped-def]
        register(self.provider)

    @hookimpl(tryfirst=True)
    def make_runner(self, kernel):  # type: ignore[no-untyped-def]
        plugin = self

        class Broken(LocalRunner):
            async def stop(self) -> None:
                raise RuntimeError("runner will not stop")

        original = self.provider.aclose

        async def aclose() -> None:
            plugin.closed = True
            await original()

        self.provider.aclose = aclose  # type: ignore[method-assign]
        return Broken(kernel)


async def test_stop_still_closes_the_store_and_providers_when_the_runner_fails(
        tmp_path: Any) -> None:
    plugin = BrokenRunnerPlugin()
    store = tmp_path / "runs.db"
    kernel = make_kernel({"broken": plugin}, config={"kernel": {"store": f"sqlite:///{store}"}})
    await kernel.start()
    await kernel.stop()
    assert plugin.closed
    # the store's file lock was released: a second kernel can open the same file
    again = make_kernel(config={"kernel": {"store": f"sqlite:///{store}"}})
    await again.start()
    await again.stop()
