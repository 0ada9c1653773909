"""`[plugins.ratelimit]`: request classes and their limits, concurrent runs, storage."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


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
