"""Shared pieces for providers that talk HTTP through httpx.

`HTTPProvider` is the base of the Ollama and OpenAI providers (and of any third-party
one over HTTP): the lazily built `httpx.AsyncClient` (base URL, headers, the three
timeouts, TLS from `tls_for`), `aclose`, one-shot requests and streamed ones whose
failures are already provider errors, streams split into lines that close upstream to
the end even when cancelled twice, and a `health()` of one cheap GET. A subclass keeps
only its protocol: request bodies, parsing a line into a chunk, assembling tool calls.

`transport_error` (in `armillary._http_transport`) maps httpx's exceptions onto the
provider error codes, the same way for every HTTP provider, with the credentials in the
URL masked; the `httpx` and `httpcore` loggers get the same masking. `NamedInstances`
(in `armillary._provider_settings`) is the settings mixin for a provider plugin that can
register several named instances.

Imported only by provider plugins, so the kernel alone never imports httpx.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx

from armillary._errors import ProviderError
from armillary._http_transport import (
    _redacted,
    close_response,
    hang_up,
    tls_for,
    transport_error,
)
from armillary._models import ChatChunk, ErrorInfo, ProviderHealth
from armillary._provider_settings import NamedInstances
from armillary._providers import Provider
from armillary._redact import redact_text, redact_url

__all__ = ["HTTPProvider", "NamedInstances", "close_response", "hang_up", "tls_for",
           "transport_error"]


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
