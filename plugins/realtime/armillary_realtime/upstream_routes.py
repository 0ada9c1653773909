"""The realtime plugin's upstream routes in one router: `make_router(settings)`.

`GET /api/health`, `GET /api/session`, `GET /api/session2`, `POST /api/responses`,
`POST /api/moderate`, `POST /api/agent/run`. The paths carry `/api` already: register the
router without a prefix. `settings` is the plugin's settings (its `upstream` section is
read) or an `UpstreamSettings`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from armillary import KernelDep
from armillary_realtime import moderate, responses, responses_agent, session
from armillary_realtime.upstream import upstream_settings


def make_router(settings: Any) -> APIRouter:
    router = APIRouter()
    upstream = upstream_settings(settings)

    @router.get("/api/health", summary="Health of the realtime API")
    async def health(kernel: KernelDep) -> dict[str, Any]:
        """`{"status": "ok", "upstream": {"provider", "api_key"}}`: no upstream call (a
        liveness answer); `api_key` says whether one is configured."""
        provider = kernel.registry.providers.get(upstream.provider)
        has_key = bool(getattr(provider[1], "has_api_key", False)) if provider else False
        return {"status": "ok", "upstream": {"provider": upstream.provider,
                                             "enabled": provider is not None,
                                             "api_key": has_key}}

    session.add_routes(router, settings)
    responses.add_routes(router, settings)
    moderate.add_routes(router, settings)
    responses_agent.add_routes(router, settings)
    return router


__all__ = ["make_router"]
