"""The upstream side of the realtime plugin: its settings (`[plugins.realtime.upstream]`)
and the OpenAI platform client the routes use.

The client is the `openai` plugin's provider instance named by `provider`, reached as
`kernel.provider(name)` and used through the platform methods that provider offers
(`create_client_secret`, `create_response`, `stream_response`, `moderations`,
`has_api_key`): no import of another plugin, and one place for the API key, base URL,
timeouts and TLS (`[plugins.openai]`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from armillary import ArmillaryError, Kernel, ServiceUnavailable, UnknownProvider

#: what `/api/moderate` answers as the category (the seed's guardrail categories)
Category = Literal["OFFENSIVE", "OFF_BRAND", "VIOLENCE", "NONE"]

PLATFORM_METHODS = ("create_client_secret", "create_response", "stream_response",
                    "moderations")


class UpstreamSettings(BaseModel):
    """`[plugins.realtime.upstream]`.

    ```toml
    [plugins.openai]
    api_key = { "$env" = "OPENAI_API_KEY" }

    [plugins.realtime.upstream]
    realtime_model = "gpt-realtime"
    voice = "marin"
    moderation_model = "omni-moderation-latest"
    ```
    """

    model_config = ConfigDict(extra="forbid")

    #: the `openai` plugin's instance (provider name) that holds the key and base URL
    provider: str = "openai"
    #: the Realtime session minted by /api/session and /api/session2
    realtime_model: str = "gpt-realtime"
    voice: str = "marin"
    #: session instructions for /api/session (session2 uses the root agent's)
    instructions: str | None = None
    #: lifetime of an ephemeral key (`expires_after.seconds`, OpenAI allows 10 to 7200)
    expires_after_seconds: int = Field(default=600, ge=10, le=7200)
    #: the model of a /api/responses body that names none
    responses_model: str = "gpt-4.1-mini"
    #: /api/responses streams: events arriving faster than this are written together,
    #: at most one write per this many ms (a quiet stream's events go out at once);
    #: 0 writes every upstream read as it comes
    stream_flush_ms: float = Field(default=1.0, ge=0, le=50)
    #: upstream moderation in /api/moderate (None: only the kernel's safety checks)
    moderation_model: str | None = None
    #: the category a kernel safety block is reported as, by check code; others get
    #: `block_category`
    safety_categories: dict[str, Category] = Field(default_factory=dict)
    block_category: Category = "OFFENSIVE"
    #: /api/agent/run: the model, default instructions, and the kernel tools offered
    #: (None: every enabled tool); at most `max_parallel_tools` calls run at once
    agent_model: str = "gpt-4.1-mini"
    agent_instructions: str | None = None
    agent_tools: list[str] | None = None
    max_parallel_tools: int = Field(default=8, ge=1)


def upstream_settings(settings: Any) -> UpstreamSettings:
    """The upstream section of the plugin's settings (or the settings themselves)."""
    return settings if isinstance(settings, UpstreamSettings) else settings.upstream


class MissingAPIKey(ArmillaryError):
    """No OpenAI API key is configured for the upstream instance."""

    code = "missing_api_key"
    status_code = 500


#: the error statuses a route that calls OpenAI answers (declared in the OpenAPI document;
#: each is the shared error model, `{"detail", "code"}`)
UPSTREAM_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "OpenAI refused the request (`upstream_error`, with OpenAI's "
                         "message; `extra.upstream_status`, `extra.upstream_code`)"},
    401: {"description": "OpenAI refused the API key (`upstream_error`)"},
    403: {"description": "OpenAI refused the key's access (`upstream_error`)"},
    404: {"description": "OpenAI does not know the model (`upstream_error`)"},
    429: {"description": "OpenAI's rate limit or quota (`upstream_error`)"},
    500: {"description": "No API key configured for the openai instance "
                         "(`missing_api_key`: \"Missing OPENAI_API_KEY\"), OpenAI's own 500 "
                         "(`upstream_error`), or a bug (`internal_error`)"},
    502: {"description": "OpenAI could not be reached or answered garbage "
                         "(`provider_unavailable`, `provider_timeout`, "
                         "`provider_protocol_error`), or OpenAI's 502 (`upstream_error`)"},
    503: {"description": "The openai plugin is not enabled, or the instance named by "
                         "`[plugins.realtime.upstream] provider` does not speak the platform "
                         "API (`service_unavailable`, `extra.service`: \"openai\"); or "
                         "OpenAI's 503 (`upstream_error`)"},
    504: {"description": "OpenAI's 504 (`upstream_error`)"},
}


def upstream_errors(more: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """`UPSTREAM_ERRORS` with a route's own statuses (`more`: status → description; a
    status in both gets both descriptions)."""
    out = {k: dict(v) for k, v in UPSTREAM_ERRORS.items()}
    for status, text in (more or {}).items():
        out[status] = {"description": text + (f"; or {out[status]['description']}"
                                              if status in out else "")}
    return out


def platform_client(kernel: Kernel, settings: UpstreamSettings, *,
                    need_key: bool = True) -> Any:
    """The `openai` provider that speaks the platform API; `MissingAPIKey` (500, "Missing
    OPENAI_API_KEY") when it has no key, `ServiceUnavailable` (503) when no such provider
    is enabled."""
    try:
        provider = kernel.provider(settings.provider)
    except UnknownProvider:
        raise ServiceUnavailable(
            f"no provider named {settings.provider!r}: the realtime routes need the openai "
            f"plugin enabled ([plugins.realtime.upstream] provider names its instance)",
            extra={"service": "openai"}) from None
    if not all(callable(getattr(provider, m, None)) for m in PLATFORM_METHODS):
        raise ServiceUnavailable(
            f"provider {settings.provider!r} does not offer the OpenAI platform API "
            f"(client secrets, Responses, moderations): name an openai plugin instance",
            extra={"service": "openai"})
    if need_key and not getattr(provider, "has_api_key", False):
        raise MissingAPIKey("Missing OPENAI_API_KEY")
    return provider
