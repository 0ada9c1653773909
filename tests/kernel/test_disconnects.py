"""cancel_on_disconnect stops work a client no longer waits for (real uvicorn, real sockets)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import APIRouter, Request

from armillary import hookimpl
from armillary._disconnects import cancel_on_disconnect
from armillary.testing import make_app, serve_app


class SlowRoutes:
    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.router = APIRouter()

        @self.router.post("/slow")
        async def slow(request: Request, body: dict[str, int]) -> dict[str, int]:
            return await cancel_on_disconnect(request, self.work(body["seconds"]))

    async def work(self, seconds: int) -> dict[str, int]:
        self.started.set()
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return {"slept": seconds}

    @hookimpl
    def register_routers(self, register):  # type: ignore[no-untyped-def]
        register(self.router)


async def test_the_work_is_cancelled_when_the_client_hangs_up() -> None:
    routes = SlowRoutes()
    async with serve_app(make_app({"slow": routes})) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            with pytest.raises(httpx.ReadTimeout):
                await client.post("/slow", json={"seconds": 30}, timeout=0.5)
        await asyncio.wait_for(routes.cancelled.wait(), 5)


async def test_the_answer_arrives_when_the_client_waits() -> None:
    routes = SlowRoutes()
    async with serve_app(make_app({"slow": routes})) as url, httpx.AsyncClient(
            base_url=url) as client:
        r = await client.post("/slow", json={"seconds": 0}, timeout=5)
        assert r.json() == {"slept": 0}
        assert not routes.cancelled.is_set()
