"""Armillary plugin `ratelimit`: per-caller request limits by route class and concurrent
runs per key, on the `limits` library (memory, or Redis shared by several instances).

- `RateLimitMiddleware` (`armillary_ratelimit.middleware`): 429 `rate_limited` /
  `too_many_runs` with `Retry-After`, `RateLimit-*` and `X-RateLimit-*`; 503
  `rate_limit_unavailable` when the storage is down and `fail_open = false`
- settings in `[plugins.ratelimit]` (`armillary_ratelimit.settings.RateLimitSettings`)
"""

from __future__ import annotations

from typing import Any

from armillary import RegisterMiddleware, hookimpl
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
