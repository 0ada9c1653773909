"""HTTP plumbing shared by providers over httpx: TLS contexts (`tls_for`), httpx's
exceptions mapped onto the provider error codes (`transport_error`, credentials in URLs
masked), the `httpx`/`httpcore` log filter that masks them too, and closing a streamed
response to the end (`hang_up`, `close_response`).

Imported only by provider plugins (through `armillary._provider_http`), so the kernel
alone never imports httpx.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import ssl

import httpx

from armillary._errors import (
    ProviderError,
    ProviderProtocolError,
    ProviderTimeout,
    ProviderUnavailable,
)
from armillary._redact import redact_text, redact_url


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


# --- closing streamed responses -----------------------------------------------------------

def hang_up(response: httpx.Response) -> None:
    """Shut the response's socket down at once, synchronously, so no cancel can cut it
    short: for a stream abandoned by a cancel, whose clean close (which awaits, inside
    httpx too) a second cancel could interrupt. The close that follows finds it gone."""
    network = response.extensions.get("network_stream")
    sock = network.get_extra_info("socket") if network is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


async def close_response(response: httpx.Response) -> None:
    """Close a streamed response (and so its connection, when not read to the end) to the
    end, even if this task is cancelled meanwhile.

    httpx's close awaits, and a cancel landing in it (the run's task cancelled again, say)
    would cut it short: the socket stays open and the model generates on for nobody. So
    the close runs in a task of its own, which a cancel does not reach; a cancel that
    arrived meanwhile is raised once the close is done. An error while closing is not the
    answer's error (the answer is complete, or being abandoned), so it is dropped."""
    closing = asyncio.ensure_future(response.aclose())
    cancelled: asyncio.CancelledError | None = None
    while not closing.done():
        try:
            await asyncio.wait([closing])
        except asyncio.CancelledError as exc:
            cancelled = exc
    if cancelled is not None:
        if not closing.cancelled():
            closing.exception()  # retrieved: the cancel is what goes on
        raise cancelled
    if not closing.cancelled():
        with contextlib.suppress(httpx.HTTPError):
            closing.result()


def _redacted(error: ProviderError) -> ProviderError:
    """`error` with any URL in its message masked (an upstream's text may echo one)."""
    detail = redact_text(error.detail)
    if detail != error.detail:
        error.detail = detail
        error.args = (detail,)
    return error
