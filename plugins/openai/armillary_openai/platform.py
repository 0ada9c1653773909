"""OpenAI's platform endpoints beyond chat completions, as methods of `OpenAIProvider`.

- `POST /v1/realtime/client_secrets`: an ephemeral key (`ek_…`) for a browser's Realtime
  session: `{"expires_after": {"anchor": "created_at", "seconds": N}, "session": {"type":
  "realtime", "model", "instructions", "audio": {"output": {"voice"}}}}` →
  `{"value": "ek_…", "expires_at": unix seconds, "session": {...}}`. (The beta
  `/v1/realtime/sessions` is retired upstream.)
- `POST /v1/responses`: the Responses API, a whole `response` object, or with
  `"stream": true` Server-Sent Events (`event: response.created` … `response.completed`,
  or `error` / `response.failed`).
- `POST /v1/moderations`: `{"model", "input"}` → `{"id", "model", "results": [{"flagged",
  "categories", "category_scores"}]}`.

Unlike the chat provider (whose failures are the provider contract's 502/503/504), these
are relayed to a browser that talks to OpenAI's own shapes, so an upstream HTTP error is
raised with the upstream's status and message (`upstream_error`), and a network failure
with 502 (its code still says which: `provider_unavailable`, `provider_timeout`).
Routes reach these methods through `kernel.provider(name)`; no plugin imports this one.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from armillary import HTTPProvider, ProviderError, ProviderProtocolError

#: `model` for `open_stream` meaning "a platform request": `status_error` then answers
#: `UpstreamHTTPError` (the upstream's status and message) instead of the chat contract's
PLATFORM = "\0platform"

#: the status a network failure is answered with (the upstream could not be asked)
NETWORK_STATUS = 502


class UpstreamHTTPError(ProviderError):
    """The OpenAI API answered an error status: relayed with that status and its message."""

    code = "upstream_error"


def error_message(body: bytes) -> tuple[str, str | None]:
    """The upstream's error message and code, from OpenAI's, vLLM's or FastAPI's shape
    (`{"error": {"message", "code"}}`, `{"detail"}`), or the body's text."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip()[:500] or "(empty body)", None
    return error_of(data)


def error_of(data: Any) -> tuple[str, str | None]:
    """`error_message` of an already parsed body."""
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            message = err.get("message") or err.get("detail") or json.dumps(err)[:500]
            code = err.get("code")
            return str(message), str(code) if code is not None else None
        if isinstance(err, str):
            return err, None
    return json.dumps(data)[:500], None


class PlatformAPI(HTTPProvider):
    """An `HTTPProvider` with the three platform endpoints (`OpenAIProvider` is one)."""

    #: the key sent as `Authorization: Bearer …` (set by the subclass)
    api_key: str | None = None

    @property
    def has_api_key(self) -> bool:
        """Whether an API key is configured (routes answer "Missing OPENAI_API_KEY" else)."""
        return bool(self.api_key)

    def _network_error(self, exc: httpx.HTTPError) -> ProviderError:
        error = self.transport_error(exc)
        error.status_code = NETWORK_STATUS  # type: ignore[misc]
        return error

    def _http_error(self, status: int, body: bytes) -> UpstreamHTTPError:
        message, code = error_message(body)
        return UpstreamHTTPError(message, status_code=status, extra={
            "provider": self.name, "upstream_status": status, "upstream_code": code})

    async def _post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self.client.post(path, json=body, timeout=self._whole_timeout)
        except httpx.HTTPError as exc:
            raise self._network_error(exc) from exc
        if response.status_code >= 400:
            raise self._http_error(response.status_code, response.content)
        try:
            data = response.json()
        except ValueError:
            raise ProviderProtocolError(f"{self.name}: {path} answered something that is "
                                        f"not JSON", status_code=NETWORK_STATUS,
                                        extra={"provider": self.name}) from None
        if not isinstance(data, dict):
            raise ProviderProtocolError(f"{self.name}: {path} answered JSON that is not an "
                                        f"object", status_code=NETWORK_STATUS,
                                        extra={"provider": self.name})
        return data

    # --- the endpoints ----------------------------------------------------------------

    async def create_client_secret(self, session: dict[str, Any], *,
                                   expires_after: dict[str, Any] | None = None
                                   ) -> dict[str, Any]:
        """Mint an ephemeral Realtime key: `{"value": "ek_…", "expires_at", "session"}`."""
        body: dict[str, Any] = {"session": session}
        if expires_after is not None:
            body["expires_after"] = expires_after
        data = await self._post_json("realtime/client_secrets", body)
        if not isinstance(data.get("value"), str):
            raise ProviderProtocolError(f"{self.name}: realtime/client_secrets answered "
                                        f"no key (no string `value`)",
                                        status_code=NETWORK_STATUS,
                                        extra={"provider": self.name})
        return data

    async def create_response(self, body: dict[str, Any]) -> dict[str, Any]:
        """`POST /v1/responses` for a whole reply (`stream` is taken out of the body)."""
        return await self._post_json("responses", {k: v for k, v in body.items()
                                                   if k != "stream"})

    async def moderations(self, input: str | list[Any], *,
                          model: str | None = None) -> dict[str, Any]:
        """`POST /v1/moderations` → `{"id", "model", "results": [...]}`."""
        body: dict[str, Any] = {"input": input}
        if model:
            body["model"] = model
        return await self._post_json("moderations", body)

    async def stream_response(self, body: dict[str, Any]) -> AsyncIterator[bytes]:
        """`POST /v1/responses` with `"stream": true`: the upstream's Server-Sent Events as
        they arrive, each yield one or more *whole* events (bytes ending in a blank line),
        never a part of one. An error status or a network failure before the stream
        starts is raised (see the module); a stream that breaks after it started yields one
        last `event: error` (OpenAI's `{"type": "error", "code", "message"}`) and ends.
        Closing the generator (a client that went away) closes the upstream request."""
        started = False
        try:
            async with self.open_stream("responses", json={**body, "stream": True},
                                        model=PLATFORM) as response:
                pending = b""
                async for data in response.aiter_bytes():
                    buffer = pending + data if pending else data
                    cut = _last_event_end(buffer)
                    if cut < 0:
                        pending = buffer
                        continue
                    pending = buffer[cut:]
                    started = True
                    yield buffer[:cut]
                if pending.strip():
                    # the upstream ended without the blank line after its last event
                    started = True
                    yield pending.rstrip(b"\r\n") + b"\n\n"
        except ProviderError as error:
            if isinstance(error, UpstreamHTTPError):
                raise
            error.status_code = NETWORK_STATUS  # type: ignore[misc]
            if not started:
                raise
            yield _error_event(error.code, error.detail)


def _last_event_end(buffer: bytes) -> int:
    """The offset just after the last blank line in `buffer` (the end of its last whole
    event), or -1. SSE lines may end in \\n or \\r\\n."""
    end = buffer.rfind(b"\n\n")
    crlf = buffer.rfind(b"\r\n\r\n")
    if crlf >= 0 and crlf + 4 > end + 2:
        return crlf + 4
    return end + 2 if end >= 0 else -1


def _error_event(code: str, message: str) -> bytes:
    from armillary import encode_event

    payload = {"type": "error", "code": code, "message": message, "param": None}
    return encode_event("error", json.dumps(payload, separators=(",", ":")))


__all__ = ["NETWORK_STATUS", "PLATFORM", "PlatformAPI", "UpstreamHTTPError",
           "error_message", "error_of"]
