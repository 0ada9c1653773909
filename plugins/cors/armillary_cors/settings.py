"""`[plugins.cors]`: which origins, methods and headers browsers may use."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CORSSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: exact origins ("https://app.example.com"); ["*"] for any (never with credentials)
    allow_origins: list[str] = Field(default_factory=list)
    #: a regular expression origins may match instead
    allow_origin_regex: str | None = None
    allow_methods: list[str] = Field(
        default_factory=lambda: ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
    allow_headers: list[str] = Field(default_factory=lambda: [
        "Authorization", "Content-Type", "X-API-Key", "Last-Event-ID", "Accept"])
    expose_headers: list[str] = Field(default_factory=lambda: [
        "Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset",
        "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"])
    allow_credentials: bool = False
    max_age: int = Field(default=600, ge=0)
