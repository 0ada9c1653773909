"""Armillary plugin `tools`: a pack of safe built-in tools.

- `calculator` — arithmetic, parsed with `ast` (no eval/exec)
- `current_time` — now, in an IANA time zone
- `http_get` — GET a URL; registered only when `http_get_allowlist` names hosts

Settings, `[plugins.tools]`: see `ToolsSettings`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from armillary import RegisterTool, hookimpl


class ToolsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: tools from this pack to leave out, by name
    disable: list[str] = Field(default_factory=list)
    #: hosts `http_get` may fetch from (`*.example.com` matches subdomains); empty = no http_get
    http_get_allowlist: list[str] = Field(default_factory=list)
    http_get_timeout: float = Field(default=10.0, gt=0)
    http_get_max_bytes: int = Field(default=200_000, ge=1)


@hookimpl
def settings_model() -> type[ToolsSettings]:
    return ToolsSettings


@hookimpl
def register_tools(register: RegisterTool, settings: ToolsSettings) -> None:
    from armillary_tools.calculator import calculator
    from armillary_tools.clock import current_time

    tools = [calculator, current_time]
    if settings.http_get_allowlist:
        from armillary_tools.web import make_http_get

        tools.append(make_http_get(settings.http_get_allowlist,
                                   timeout=settings.http_get_timeout,
                                   max_bytes=settings.http_get_max_bytes))
    for t in tools:
        if t.name not in settings.disable:
            register(t)
