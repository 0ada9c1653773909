"""One error model for the whole server: `{"detail": str, "code": str}` with a stable code.

Raise an `ArmillaryError` (or a subclass) anywhere below a route and the app renders it with
its HTTP status. Provider errors are part of the provider interface: every provider maps
its failures onto these classes so clients see the same codes whatever the backend.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field


class ArmillaryError(Exception):
    """Base of every error the server reports to clients."""

    code: ClassVar[str] = "internal_error"
    status_code: ClassVar[int] = 500

    def __init__(self, detail: str, *, code: str | None = None, status_code: int | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code  # type: ignore[misc]
        if status_code is not None:
            self.status_code = status_code  # type: ignore[misc]
        self.extra = extra or {}

    def to_dict(self) -> dict[str, Any]:
        return {"detail": self.detail, "code": self.code, **self.extra}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, detail={self.detail!r})"


class NotFound(ArmillaryError):
    code = "not_found"
    status_code = 404


class Conflict(ArmillaryError):
    code = "conflict"
    status_code = 409


class InvalidRequest(ArmillaryError):
    code = "invalid_request"
    status_code = 422


class FieldError(BaseModel):
    """One problem with one input (a 422 `validation_error` lists them all)."""

    loc: list[str | int] = Field(description='Where: `["body", "task"]`, '
                                 '`["query", "offset"]`, `["header", "last-event-id"]`')
    msg: str = Field(description="What is wrong, for people")
    type: str = Field(description="A stable kind of problem, e.g. `missing`, `int_type`, "
                      "`less_than_equal`, `json_invalid`")


class ErrorResponse(BaseModel):
    """The body of every error answer, whatever the route or status. Some codes add
    fields of their own (`task_finished` adds `status`, provider errors add `provider`)."""

    model_config = ConfigDict(extra="allow")

    detail: str = Field(description="A sentence for people")
    code: str = Field(description="A stable code for programs, e.g. `task_not_found`")
    errors: list[FieldError] | None = Field(
        default=None, description="422 `validation_error` only: every problem found")


# --- provider errors -------------------------------------------------------------------

class ProviderError(ArmillaryError):
    """An upstream model server answered with an error; `detail` carries its message."""

    code = "provider_error"
    status_code = 502


class ProviderUnavailable(ProviderError):
    """The upstream could not be reached (connection refused, DNS, reset before a reply)."""

    code = "provider_unavailable"
    status_code = 503


class ModelNotFound(ProviderError):
    code = "model_not_found"
    status_code = 404


class ProviderTimeout(ProviderError):
    """Connecting took too long, or too long passed between two stream chunks."""

    code = "provider_timeout"
    status_code = 504


class ProviderProtocolError(ProviderError):
    """The upstream answered something that is not its protocol (a malformed line)."""

    code = "provider_protocol_error"
    status_code = 502


class UnknownProvider(NotFound):
    code = "provider_not_found"


class ServiceUnavailable(ArmillaryError):
    """A route needs a service (a transport, say) that no enabled plugin offers."""

    code = "service_unavailable"
    status_code = 503


# --- startup errors (never reach a client; the CLI prints them) ------------------------

class StartupError(Exception):
    """A problem found while loading configuration or plugins. The message says it all."""


class ConfigError(StartupError):
    """plugins.toml (or the environment) is wrong. `problems` lists each as one line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class PluginLoadError(StartupError):
    """An explicitly enabled plugin failed to import or to register."""


class RegistrationError(StartupError):
    """Two plugins claimed one name or one route, or a registration was malformed."""
