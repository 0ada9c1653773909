"""Shared pieces for providers that talk HTTP through httpx.

`HTTPProvider` is the base of the Ollama and OpenAI providers (and of any third-party
one over HTTP): the lazily built `httpx.AsyncClient` (base URL, headers, the three
timeouts, TLS from `tls_for`), `aclose`, one-shot requests and streamed ones whose
failures are already provider errors, streams split into lines that close upstream to
the end even when cancelled twice, and a `health()` of one cheap GET. A subclass keeps
only its protocol: request bodies, parsing a line into a chunk, assembling tool calls.

`transport_error` maps httpx's exceptions onto the provider error codes, the same way for
every HTTP provider, with the credentials in the URL masked (`armillary._redact`); the
`httpx` and `httpcore` loggers get the same masking. `NamedInstances` is the settings
mixin for a provider plugin that can register several named instances (two Ollama hosts,
say), one of them the default.

Imported only by provider plugins, so the kernel alone never imports httpx.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
from pydantic import BaseModel, model_validator

from armillary._errors import (
    ProviderError,
    ProviderProtocolError,
    ProviderTimeout,
    ProviderUnavailable,
)
from armillary._models import ChatChunk, ErrorInfo, ProviderHealth
from armillary._providers import Provider
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


#: one line of a streamed body (without its "\n") → a chunk, or None for nothing to yield
ParseLine = Callable[[bytes], ChatChunk | None]
#: the body ended before a `done` chunk → the final chunk, or raise a ProviderError
EndOfBody = Callable[[], ChatChunk]
#: a streamed request's 200 response → the whole reply's chunks when the server answered
#: it at once (ignoring "stream"), or None to read the body line by line
WholeReply = Callable[[httpx.Response], Awaitable[list[ChatChunk] | None]]


class HTTPProvider(Provider):
    """A provider over one HTTP server. Safe to share between concurrent requests; call
    `aclose()` once.

    Timeouts: `connect_timeout` bounds connecting (and waiting for a pooled connection);
    streamed requests allow `chunk_timeout` of silence between two reads; whole requests
    `request_timeout` for the reply. Subclasses set `health_path` (one cheap GET) and
    override `error_text` / `status_error` / `health_detail` for their protocol. Every
    message built here names the server with `redact_url`, never the real URL."""

    #: the path `health()` GETs: cheap, and answering 200 when the server is up
    health_path: str = "/"

    def __init__(self, *, name: str, base_url: str, model: str, connect_timeout: float = 5.0,
                 chunk_timeout: float = 120.0, request_timeout: float = 600.0,
                 headers: dict[str, str] | None = None) -> None:
        self.name = name
        self.default_model = model
        self.base_url = base_url.rstrip("/")
        self.connect_timeout = connect_timeout
        # streaming: `read` bounds the silence between two reads; whole replies: the reply
        self._stream_timeout = httpx.Timeout(chunk_timeout, connect=connect_timeout,
                                             pool=connect_timeout)
        self._whole_timeout = httpx.Timeout(request_timeout, connect=connect_timeout,
                                            pool=connect_timeout)
        self._headers = dict(headers or {})
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        """The HTTP client, built on first use (a provider that is never called costs no
        client, no connection pool and no TLS context)."""
        if self._client is None:
            # httpx joins relative paths onto base_url as if it ended with "/": both
            # "/api/chat" and "chat/completions" land under base_url's own path
            self._client = httpx.AsyncClient(
                base_url=self.base_url, headers=self._headers, timeout=self._whole_timeout,
                verify=tls_for(self.base_url),
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=20))
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, base_url={redact_url(self.base_url)!r})"

    # --- errors (override for the protocol) -------------------------------------------

    def error_text(self, body: bytes) -> str:
        """The upstream's message in an error reply's body (default: the body as text)."""
        return body.decode("utf-8", "replace").strip()[:500] or "(empty body)"

    def status_error(self, status: int, body: bytes, model: str) -> ProviderError:
        """The error for an HTTP error status (default: `provider_error` with the
        upstream's message); `model` is the one asked for, for a 404 that means it."""
        return ProviderError(f"{self.name}: {self.error_text(body)} (upstream HTTP {status})",
                             extra={"provider": self.name, "upstream_status": status})

    def transport_error(self, exc: httpx.HTTPError) -> ProviderError:
        """The error for an httpx failure (the module's `transport_error`)."""
        return transport_error(exc, provider=self.name, base_url=self.base_url,
                               connect_timeout=self.connect_timeout)

    def upstream_error(self, message: str) -> ProviderError:
        """`provider_error` for an error the upstream reported in a 200 reply or a stream."""
        return ProviderError(f"{self.name}: {redact_text(message)}",
                             extra={"provider": self.name})

    # --- requests ---------------------------------------------------------------------

    async def request(self, method: str, path: str, *, json: Any = None, model: str = "",
                      timeout: httpx.Timeout | None = None) -> httpx.Response:
        """One whole request; the 200 response, or a `ProviderError` (transport failures
        and error statuses mapped, with `status_error`)."""
        try:
            response = await self.client.request(method, path, json=json,
                                                 timeout=timeout or self._whole_timeout)
        except httpx.HTTPError as exc:
            raise self.transport_error(exc) from exc
        if response.status_code != 200:
            raise _redacted(self.status_error(response.status_code, response.content, model))
        return response

    @contextlib.asynccontextmanager
    async def open_stream(self, path: str, *, json: Any, model: str,
                          method: str = "POST") -> AsyncIterator[httpx.Response]:
        """A streamed request: the 200 response, for the block to read.

        A transport failure, here or while the block reads, is raised as its provider
        error; an error status as `status_error`'s. On leaving the block the response is
        closed to the end, even when the task is cancelled again meanwhile; leaving it by
        a cancel shuts the socket down first, so the server sees the hang-up at once."""
        try:
            response = await self.client.send(
                self.client.build_request(method, path, json=json,
                                          timeout=self._stream_timeout), stream=True)
            try:
                if response.status_code != 200:
                    raise _redacted(self.status_error(response.status_code,
                                                      await response.aread(), model))
                yield response
            except asyncio.CancelledError:
                hang_up(response)
                raise
            finally:
                await close_response(response)
        except httpx.HTTPError as exc:
            raise self.transport_error(exc) from exc

    async def stream_request(self, path: str, body: Any, *, model: str, parse: ParseLine,
                             end: EndOfBody, whole: WholeReply | None = None,
                             ) -> AsyncIterator[ChatChunk]:
        """The provider contract's stream over `open_stream`.

        Each line of the body goes through `parse`, and the chunks it returns are
        yielded up to the first `done` one; a body that ends first yields `end()` (which
        raises `ProviderProtocolError` when that is not how the protocol ends). `whole`,
        when given, may answer the chunks of a reply the server sent whole instead.
        A `ProviderError` before the first chunk is raised; after it, it becomes one last
        error chunk (`done=True`).

        Lines end at `\n` only (a trailing `\r` is left for `parse`: JSON ignores it, an
        SSE reader strips it). Not httpx's `aiter_lines`: that splits at every Unicode
        line boundary (U+2028, U+0085, …), which a JSON string may carry unescaped
        (Python's and llama.cpp's encoders leave them as is), cutting one NDJSON object
        or SSE event in two; it also decodes every chunk to text first. The lines are
        split here, in this one generator, because each generator between the socket and
        the caller costs about a microsecond a line, which a relay of thousands of
        tokens a second feels."""
        started = False
        try:
            async with self.open_stream(path, json=body, model=model) as response:
                chunks = await whole(response) if whole is not None else None
                if chunks is not None:
                    for chunk in chunks:
                        started = True
                        yield chunk
                    return
                pending = b""
                async for data in response.aiter_bytes():
                    if b"\n" not in data:
                        pending += data
                        continue
                    lines = (pending + data if pending else data).split(b"\n")
                    pending = lines.pop()
                    for line in lines:
                        parsed = parse(line)
                        if parsed is None:
                            continue
                        started = True
                        yield parsed
                        if parsed.done:
                            return
                if pending.strip():
                    parsed = parse(pending)
                    if parsed is not None:
                        started = True
                        yield parsed
                        if parsed.done:
                            return
                final = end()
                started = True
                yield final
                return
        except ProviderError as exc:
            if not started:
                raise
            error = _redacted(exc)
        yield ChatChunk(done=True, model=model,
                        error=ErrorInfo(detail=error.detail, code=error.code))

    # --- health -----------------------------------------------------------------------

    def health_detail(self, response: httpx.Response) -> str | None:
        """What a healthy answer to `health_path` says (a version, say); default None."""
        return None

    async def health(self) -> ProviderHealth:
        """One GET of `health_path`, bounded by the connect timeout: a readiness probe
        answers quickly or reports unreachable, it never waits a stream's chunk_timeout."""
        start = time.perf_counter()
        try:
            response = await self.client.get(self.health_path,
                                             timeout=httpx.Timeout(self.connect_timeout))
        except httpx.HTTPError as exc:
            return ProviderHealth(reachable=False, detail=self.transport_error(exc).detail)
        latency = (time.perf_counter() - start) * 1000
        if response.status_code != 200:
            where = f"{redact_url(self.base_url)}/{self.health_path.lstrip('/')}"
            text = redact_text(self.error_text(response.content))
            return ProviderHealth(reachable=False, latency_ms=latency,
                                  detail=f"{where} answered {response.status_code}: {text}")
        return ProviderHealth(reachable=True, latency_ms=latency,
                              detail=self.health_detail(response))


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
