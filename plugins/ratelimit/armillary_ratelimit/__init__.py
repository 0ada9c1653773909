"""Armillary plugin `ratelimit`: per-caller request limits by route class, concurrent
runs per key and model-token budgets per key, on the `limits` library (memory, or Redis
shared by several instances).

- `RateLimitMiddleware` (`armillary_ratelimit.middleware`): 429 `rate_limited` /
  `too_many_runs` / `token_budget_exceeded` with `Retry-After`, `RateLimit-*` and
  `X-RateLimit-*`; 503
  `rate_limit_unavailable` when the storage is down and `fail_open = false`
- `TokenBudget` (`armillary_ratelimit.budget`): reserved per request, settled by the
  kernel's `provider.call` events (`tokens_per_window`)
- `ratelimit.refused` {limit, route_class} and `ratelimit.storage_error` {fail} on the
  firehose
- settings in `[plugins.ratelimit]` (`armillary_ratelimit.settings.RateLimitSettings`)
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from armillary import Kernel, RegisterEventType, RegisterMiddleware, hookimpl
from armillary_ratelimit.settings import RateLimitSettings

#: inside auth (90), which names the caller
ORDER = 95


@hookimpl
def settings_model() -> type[RateLimitSettings]:
    return RateLimitSettings


@hookimpl
def register_middleware(register: RegisterMiddleware, settings: Any) -> None:
    from armillary_ratelimit.middleware import RateLimitMiddleware

    register(RateLimitMiddleware, order=ORDER, settings=settings)


class RefusedPayload(BaseModel):
    #: which limit refused: "requests", "concurrent_runs" or "tokens"
    limit: Literal["requests", "concurrent_runs", "tokens"]
    #: the request class that matched ("none" when none did)
    route_class: str


class StorageErrorPayload(BaseModel):
    #: what the limiter did about it
    fail: Literal["open", "closed"]


@hookimpl
def register_event_types(register: RegisterEventType) -> None:
    register("ratelimit.refused", RefusedPayload)
    register("ratelimit.storage_error", StorageErrorPayload)


@hookimpl
async def startup(kernel: Kernel) -> None:
    settings: RateLimitSettings = kernel.settings["ratelimit"]
    if settings.tokens_per_window is None:
        return
    from armillary_ratelimit.budget import TokenBudget
    from armillary_ratelimit.middleware import BUDGET_STATE, make_storage

    budget = TokenBudget(settings, make_storage(settings))
    await budget.start(kernel)
    kernel.state[BUDGET_STATE] = budget


@hookimpl
async def shutdown(kernel: Kernel) -> None:
    from armillary_ratelimit.middleware import BUDGET_STATE

    budget = kernel.state.pop(BUDGET_STATE, None)
    if budget is not None:
        await budget.stop()
