"""`openapi_document`: a plugin amends the OpenAPI document once, with its settings, on
the served document (a real uvicorn) — and a failing amendment names the plugin."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from armillary import hookimpl
from armillary.testing import make_app, serve_app


class DiceSettings(BaseModel):
    sides: int = 6


class Amender:
    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    def settings_model(self) -> type[BaseModel]:
        return DiceSettings

    @hookimpl
    def openapi_document(self, document: dict[str, Any], settings: Any) -> None:
        self.calls += 1
        document["info"]["x-dice"] = {"sides": settings.sides}
        document.setdefault("components", {}).setdefault("securitySchemes", {})[
            "DiceKey"] = {"type": "apiKey", "in": "header", "name": "X-Dice"}


class Broken:
    @hookimpl
    def openapi_document(self, document: dict[str, Any], settings: Any) -> None:
        raise ValueError("no document for you")


async def test_a_plugin_amends_the_served_document_once_with_its_settings() -> None:
    plugin = Amender()
    app = make_app({"dice": plugin}, {"plugins": {"dice": {"sides": 20}}})
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url) as client:
        first = (await client.get("/openapi.json")).json()
        second = (await client.get("/openapi.json")).json()
    assert first["info"]["x-dice"] == {"sides": 20}
    assert first["components"]["securitySchemes"]["DiceKey"]["name"] == "X-Dice"
    assert "ErrorResponse" in first["components"]["schemas"]  # after the kernel's own
    assert second == first and plugin.calls == 1


async def test_a_failing_amendment_is_a_coded_500_naming_the_plugin(
        caplog: pytest.LogCaptureFixture) -> None:
    app = make_app({"broken": Broken()})
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url) as client:
        with caplog.at_level(logging.ERROR):
            r = await client.get("/openapi.json")
    assert r.status_code == 500 and r.json()["code"] == "internal_error"
    assert "plugin 'broken' failed in openapi_document" in caplog.text
