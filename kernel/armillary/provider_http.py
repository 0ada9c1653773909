"""Shared pieces for providers that talk HTTP through httpx.

`transport_error` maps httpx's exceptions onto the provider error codes, the same way for
every HTTP provider, with the credentials in the URL masked (`armillary.redact`); the
`httpx` and `httpcore` loggers get the same masking. `NamedInstances` is the settings
mixin for a provider plugin that can register several named instances (two Ollama hosts,
say), one of them the default.

Imported only by provider plugins, so the kernel alone never imports httpx.
"""

from __future__ import annotations

import functools
import logging
import ssl
from typing import Any

import httpx
from pydantic import BaseModel, model_validator

from armillary.errors import (
    ProviderError,
    ProviderProtocolError,
    ProviderTimeout,
    ProviderUnavailable,
)
from armillary.redact import redact_text, redact_url


class RedactURLs(logging.Filter):
    """Masks credentials in URLs a log record carries: httpx logs every request as
    `HTTP Request: POST http://user:password@host/...` at INFO, password and all."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own error report
            return True
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def _install_log_filter() -> None:
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactURLs) for f in logger.filters):
            logger.addFilter(RedactURLs())


_install_log_filter()


@functools.cache
def _default_tls() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=_ca_bundle())


def _ca_bundle() -> str | None:
    try:
        import certifi  # httpx's own CA bundle, when installed
    except ImportError:
        return None
    return str(certifi.where())


def tls_for(base_url: str) -> ssl.SSLContext | bool:
    """The `verify=` for an httpx client of `base_url`.

    An `http://` server needs no TLS, so no CA bundle is loaded for it (loading one costs
    about 20 ms a client, and a Pi talking to a local Ollama never needs it). `https://`
    servers share one default context, built once."""
    if base_url.lower().startswith("http://"):
        return False
    return _default_tls()


def _read_timeout(exc: httpx.TimeoutException) -> float | None:
    try:
        read = exc.request.extensions.get("timeout", {}).get("read")
    except RuntimeError:  # the exception carries no request
        return None
    return float(read) if read is not None else None


#: httpcore's message when the server closed the connection before any of the reply
_NOTHING_RECEIVED = "without sending a response"


def transport_error(exc: httpx.HTTPError, *, provider: str, base_url: str,
                    connect_timeout: float | None) -> ProviderError:
    """The provider error for an httpx failure: refused, or closed before any reply →
    `provider_unavailable`; connect or read timeout → `provider_timeout`; an HTTP exchange
    broken after the reply started → `provider_protocol_error`.

    The message names `base_url` with its credentials masked (`redact_url`), and so is
    httpx's own text, which may carry the URL too: it reaches clients, stored run errors
    and logs."""
    extra = {"provider": provider}
    url = redact_url(base_url)
    text = redact_text(str(exc))
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return ProviderTimeout(f"{provider}: connecting to {url} took longer than "
                               f"{connect_timeout}s", extra=extra)
    if isinstance(exc, httpx.TimeoutException):
        waited = _read_timeout(exc)
        within = f"within {waited}s" if waited is not None else "in time"
        return ProviderTimeout(f"{provider}: no reply from {url} {within}", extra=extra)
    if isinstance(exc, httpx.ConnectError):
        return ProviderUnavailable(f"{provider}: cannot connect to {url} "
                                   f"({text or type(exc).__name__})", extra=extra)
    if isinstance(exc, httpx.RemoteProtocolError) and _NOTHING_RECEIVED in text:
        # the connection closed before a byte of the reply: the server is gone (crashed,
        # restarting, a proxy dropping it), which is what refused is
        return ProviderUnavailable(f"{provider}: {url} disconnected without sending "
                                   f"a response", extra=extra)
    if isinstance(exc, httpx.RemoteProtocolError):
        return ProviderProtocolError(f"{provider}: {url} broke the HTTP protocol or "
                                     f"closed the connection mid-reply ({text})", extra=extra)
    return ProviderUnavailable(f"{provider}: connection to {url} failed "
                               f"({type(exc).__name__}: {text})", extra=extra)


#: settings never inherited by an instance on another host (see `per_instance`)
PRIVATE_FIELDS = frozenset({"api_key", "headers", "organization"})


class NamedInstances(BaseModel):
    """Settings mixin: a main instance called `name`, more under `instances.<name>`
    (unset fields fall back to the main section, credentials only on the same host), and
    `default` naming the default one.

    Subclasses declare `instances: dict[str, TheirInstanceModel]`."""

    name: str
    instances: dict[str, Any] = {}
    default: str | None = None

    @model_validator(mode="after")
    def _check_instance_names(self) -> NamedInstances:
        if self.name in self.instances:
            raise ValueError(f"instances: {self.name!r} is already the main instance's name")
        if self.default is not None and self.default not in self.instance_names():
            raise ValueError(f"default: no instance named {self.default!r} "
                             f"(have: {', '.join(self.instance_names())})")
        return self

    def instance_names(self) -> list[str]:
        return [self.name, *self.instances]

    def default_name(self) -> str:
        return self.default or self.name

    def per_instance(self, fields: set[str], *,
                     private: frozenset[str] | set[str] = PRIVATE_FIELDS,
                     ) -> dict[str, dict[str, Any]]:
        """Each instance's values for `fields`, by provider name: the main section's,
        overridden by what the instance sets.

        `private` fields (credentials: an API key, headers that may carry a token) are
        inherited only by an instance on the main section's `base_url`: a key written for
        one host is never sent to another. An instance on another host that needs one
        sets its own."""
        main = {k: getattr(self, k) for k in fields}
        main_url = _same_url(getattr(self, "base_url", None))
        out = {self.name: main}
        for name, inst in self.instances.items():
            own = {k: getattr(inst, k) for k in fields if getattr(inst, k, None) is not None}
            inherited = main
            if "base_url" in own and _same_url(own["base_url"]) != main_url:
                inherited = {k: (None if k in private else v) for k, v in main.items()}
            out[name] = {**inherited, **own}
        return out


def _same_url(url: str | None) -> str | None:
    return url.rstrip("/").lower() if isinstance(url, str) else url
