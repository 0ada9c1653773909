"""GET /health and /v1/health: readiness with each plugin's and provider's status."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from armillary import __version__, hookimpl
from armillary.deps import KernelDep
from armillary.hookspecs import RegisterRouter
from armillary.models import ProviderHealth
from armillary.providers import Provider

PROVIDER_CHECK_TIMEOUT = 2.0

router = APIRouter(tags=["health"])


async def _provider_health(provider: Provider) -> ProviderHealth:
    try:
        return await asyncio.wait_for(provider.health(), PROVIDER_CHECK_TIMEOUT)
    except TimeoutError:
        return ProviderHealth(reachable=False, detail=f"no answer in {PROVIDER_CHECK_TIMEOUT}s")
    except Exception as exc:  # a provider's health() must not raise; report it if it does
        return ProviderHealth(reachable=False, detail=f"{type(exc).__name__}: {exc}")


async def health_report(kernel: KernelDep) -> dict[str, Any]:
    providers = [p for _, p in kernel.registry.providers.values()]
    results = await asyncio.gather(*(_provider_health(p) for p in providers))
    plugin_status = {
        i.name: {"status": i.status, **({"error": i.error} if i.error else {})}
        for i in kernel.plugins if i.enabled
    }
    failed = any(i["status"] == "failed" for i in plugin_status.values())
    unreachable = any(not r.reachable for r in results)
    return {
        "status": "degraded" if failed or unreachable else "ok",
        "ready": kernel.started,
        "version": __version__,
        "plugins": plugin_status,
        "providers": {p.name: r.model_dump(exclude_none=True)
                      for p, r in zip(providers, results, strict=True)},
    }


@router.get("/health")
@router.get("/v1/health")
async def health(kernel: KernelDep) -> JSONResponse:
    """Readiness: 200 while the server serves (status "ok" or "degraded"), 503 before it is
    started. Degraded means a plugin failed to load or a provider is unreachable."""
    report = await health_report(kernel)
    return JSONResponse(report, status_code=200 if report["ready"] else 503)


@hookimpl(trylast=True)
def register_routers(register: RegisterRouter) -> None:
    register(router)
