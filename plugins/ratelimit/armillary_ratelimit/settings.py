"""`[plugins.ratelimit]`: request classes and their limits, concurrent runs, storage."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class RequestClass(BaseModel):
    """Requests matching `methods` (None: any) and a `paths` prefix share one limit per
    caller, in the `limits` library's notation: "60/minute", "5/second", "1000/day"."""

    model_config = ConfigDict(extra="forbid")

    limit: str
    methods: list[str] | None = None
    paths: list[str] = Field(default_factory=lambda: ["/"])

    @field_validator("limit")
    @classmethod
    def _parses(cls, value: str) -> str:
        from limits import parse_many

        try:
            items = parse_many(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a rate like '60/minute' ({exc})") from None
        if len(items) != 1:
            # one limit per class keeps the decision to one atomic storage call
            raise ValueError("one rate per class (make another class for another window)")
        return value

    @field_validator("methods")
    @classmethod
    def _upper(cls, value: list[str] | None) -> list[str] | None:
        return [m.upper() for m in value] if value is not None else None


def _default_classes() -> dict[str, RequestClass]:
    return {"read": RequestClass(limit="600/minute", methods=["GET", "HEAD"]),
            "write": RequestClass(limit="120/minute")}


class RateLimitSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: "memory://" (this process) or "redis://host:6379/0" (shared by every instance)
    storage: str = "memory://"
    #: keys in the storage start with it: one prefix per deployment sharing a Redis
    key_prefix: str = "armillary"
    strategy: Literal["moving-window", "fixed-window", "sliding-window-counter"] = \
        "moving-window"
    #: the first class that matches a request counts it (table order)
    classes: dict[str, RequestClass] = Field(default_factory=_default_classes)
    #: never limited (exact paths)
    exempt_paths: list[str] = Field(default_factory=lambda: ["/health", "/v1/health"])
    #: the storage cannot be reached: let requests through (true) or answer 503
    fail_open: bool = True
    #: runs a caller may have queued, running or paused at once (None: no limit)
    max_concurrent_runs: int | None = Field(default=None, ge=1)
    #: "METHOD /path" patterns (fnmatch) of the requests that start a run
    run_routes: list[str] = Field(default_factory=lambda: [
        "POST /v1/tasks", "POST /agents/*/execute", "POST /debate/initialize",
        "POST /v1/sessions/*/prompt", "POST /api/agent-runs*"])
    #: take the client address from X-Forwarded-For (only behind a proxy you trust)
    trust_forwarded_for: bool = False
    #: model tokens (prompt + completion) each key may spend per `token_window`
    #: (None: no token budget); only authenticated keys have one
    tokens_per_window: int | None = Field(default=None, ge=1)
    #: the budget's fixed window, in the `limits` notation: "1 hour", "30 minutes", "1 day"
    token_window: str = "1 hour"
    #: reserved before each `token_routes` request; refused (429
    #: `token_budget_exceeded`) when less than this is left
    reserve_tokens: int = Field(default=1000, ge=1)
    #: "METHOD /path" patterns (fnmatch) of the requests that call a model
    token_routes: list[str] = Field(default_factory=lambda: [
        "POST /chat", "POST /chat/*", "POST /v1/tasks", "POST /agents/*/execute",
        "POST /debate/initialize", "POST /v1/sessions/*/prompt", "POST /api/agent-runs*"])
    #: a reservation of a request that starts a run (`run_routes`) is held until the
    #: run's first provider call settles it, or this long
    reservation_ttl_s: float = Field(default=300.0, gt=0)

    @field_validator("token_window")
    @classmethod
    def _window(cls, value: str) -> str:
        from limits import parse

        try:
            parse(f"1 per {value}")
        except ValueError:
            raise ValueError(f"{value!r} is not a window like '1 hour' or '30 minutes'") \
                from None
        return value

    @model_validator(mode="after")
    def _reservation_fits(self) -> RateLimitSettings:
        if self.tokens_per_window is not None and self.reserve_tokens > self.tokens_per_window:
            raise ValueError(f"reserve_tokens ({self.reserve_tokens}) is more than "
                             f"tokens_per_window ({self.tokens_per_window}): every request "
                             "would be refused")
        return self
