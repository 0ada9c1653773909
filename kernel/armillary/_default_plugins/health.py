"""GET /health and /v1/health: readiness with each plugin's and provider's status.

Providers are checked in the background (at startup, then every
`[kernel] provider_check_interval` seconds) and /health reports the latest results, so a
probe every few seconds from a load balancer costs nothing and never fans out to the
model servers; `?fresh=true` checks them now.

Every detail and error shown here passes through `redact_text`: a provider's message that
names its URL shows it without the password (`http://user:***@host`), whoever wrote it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from armillary import __version__, hookimpl
from armillary._deps import KernelDep
from armillary._events import iso
from armillary._hookspecs import RegisterRouter
from armillary._kernel import Kernel
from armillary._models import ProviderHealth
from armillary._providers import Provider
from armillary._redact import redact_text

PROVIDER_CHECK_TIMEOUT = 2.0
STATE_KEY = "builtin:health"

router = APIRouter(tags=["health"])


async def _provider_health(provider: Provider) -> ProviderHealth:
    try:
        result = await asyncio.wait_for(provider.health(), PROVIDER_CHECK_TIMEOUT)
    except TimeoutError:
        return ProviderHealth(reachable=False, detail=f"no answer in {PROVIDER_CHECK_TIMEOUT}s")
    except Exception as exc:  # a provider's health() must not raise; report it if it does
        result = ProviderHealth(reachable=False, detail=f"{type(exc).__name__}: {exc}")
    if result.detail:  # a third-party provider may name its URL with the password in it
        result = result.model_copy(update={"detail": redact_text(result.detail)})
    return result


class ProviderChecks:
    """The latest reachability of every provider, refreshed in the background."""

    def __init__(self, kernel: Kernel) -> None:
        self.providers = [p for _, p in kernel.registry.providers.values()]
        self.interval = kernel.config.kernel.provider_check_interval
        self.results: dict[str, dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None

    async def check_now(self) -> None:
        results = await asyncio.gather(*(_provider_health(p) for p in self.providers))
        now = time.time()
        self.results = {p.name: {**r.model_dump(exclude_none=True), "checked_at": now}
                        for p, r in zip(self.providers, results, strict=True)}

    async def _loop(self) -> None:
        while True:
            await self.check_now()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        if self.providers:
            self._task = asyncio.create_task(self._loop(), name="armillary-provider-checks")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def report(self) -> dict[str, dict[str, Any]]:
        pending = {"reachable": None, "detail": "not checked yet"}
        return {p.name: self.results.get(p.name, pending) for p in self.providers}


async def health_report(kernel: Kernel, fresh: bool = False) -> dict[str, Any]:
    checks: ProviderChecks | None = kernel.state.get(STATE_KEY)
    if checks is None:  # not started (or started without this plugin's startup hook)
        checks = ProviderChecks(kernel)
        fresh = True
    if fresh:
        await checks.check_now()
    providers = checks.report()
    plugin_status = {
        i.name: {"status": i.status, **({"error": redact_text(i.error)} if i.error else {})}
        for i in kernel.plugins if i.enabled
    }
    failed = any(i["status"] == "failed" for i in plugin_status.values())
    unreachable = any(p["reachable"] is False for p in providers.values())
    return {
        "status": "degraded" if failed or unreachable else "ok",
        "ready": kernel.started,
        #: when this report was made (the multi-agent seed's clients read `timestamp`)
        "timestamp": iso(time.time()),
        "version": __version__,
        "plugins": plugin_status,
        "providers": providers,
    }


@router.get("/health")
@router.get("/v1/health")
async def health(kernel: KernelDep, fresh: bool = False) -> JSONResponse:
    """Readiness: 200 while the server serves (status "ok" or "degraded"), 503 before it is
    started. Degraded means a plugin failed to load or a provider is unreachable; provider
    results are from the last background check unless `fresh=true`."""
    report = await health_report(kernel, fresh)
    return JSONResponse(report, status_code=200 if report["ready"] else 503)


@hookimpl(trylast=True)
def register_routers(register: RegisterRouter) -> None:
    register(router)


@hookimpl
async def startup(kernel: Kernel) -> None:
    checks = ProviderChecks(kernel)
    kernel.state[STATE_KEY] = checks
    checks.start()


@hookimpl
async def shutdown(kernel: Kernel) -> None:
    checks: ProviderChecks | None = kernel.state.pop(STATE_KEY, None)
    if checks is not None:
        await checks.stop()
