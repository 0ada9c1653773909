"""`OpenAIProvider`: the kernel's provider interface over OpenAI-compatible chat completions.

Protocol: `POST {base_url}/chat/completions` answers one `chat.completion` object, or with
`"stream": true` Server-Sent Events whose `data:` lines are `chat.completion.chunk`
objects and the last is `data: [DONE]`. Text arrives in `choices[0].delta.content`; tool
calls arrive in fragments under `choices[0].delta.tool_calls`, keyed by `index` (the first
fragment of each has `id` and `function.name`, the rest append to `function.arguments`, a
JSON string). With `stream_options.include_usage` a last chunk with empty (or null)
`choices` carries `usage`. Errors are `{"error": {"message": ...}}` bodies with a 4xx/5xx
status, or such an object in a `data:` line mid-stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from armillary.errors import (
    ModelNotFound,
    ProviderError,
    ProviderProtocolError,
)
from armillary.models import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ErrorInfo,
    Message,
    ModelInfo,
    ProviderHealth,
    ToolCall,
    Usage,
)
from armillary.provider_http import tls_for, transport_error
from armillary.providers import Provider
from armillary.redact import redact_url

#: `ChatRequest.options` keys sent as body fields; others belong to other providers
OPENAI_FIELDS = frozenset({
    "tool_choice", "parallel_tool_calls", "top_p", "frequency_penalty", "presence_penalty",
    "response_format", "logit_bias", "logprobs", "top_logprobs", "user", "n",
    "reasoning_effort", "service_tier", "metadata", "store", "min_p", "top_k",
    "repeat_penalty", "max_completion_tokens",
})


def _hang_up(response: httpx.Response) -> None:
    """Shut the response's socket down at once, synchronously, so no cancel can cut it
    short: for a stream abandoned by a cancel, whose clean close (which awaits, inside
    httpx too) a second cancel could interrupt. The close that follows finds it gone."""
    network = response.extensions.get("network_stream")
    sock = network.get_extra_info("socket") if network is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


async def _close_response(response: httpx.Response) -> None:
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


def _error_text(body: bytes) -> tuple[str, str | None]:
    """The upstream's error message and code, from OpenAI's, vLLM's or FastAPI's shape."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip()[:500] or "(empty body)", None
    return _error_of(data)


def _error_of(data: Any) -> tuple[str, str | None]:
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            message = err.get("message") or err.get("detail") or json.dumps(err)[:500]
            code = err.get("code")
            return str(message), str(code) if code is not None else None
        if isinstance(err, str):
            return err, None
    return json.dumps(data)[:500], None


def _arguments(text: str) -> dict[str, Any]:
    """Tool-call arguments: a JSON object in a string. A model that writes something else
    gets `{"_raw": text}`, so the tool can report the bad call back to it."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {"_raw": text}
    return value if isinstance(value, dict) else {"_raw": text}


class _ToolCallParts:
    """Fragments of streamed tool calls, assembled by index."""

    def __init__(self) -> None:
        self.calls: dict[int, dict[str, Any]] = {}

    def add(self, fragments: list[dict[str, Any]]) -> None:
        for position, fragment in enumerate(fragments):
            index = fragment.get("index", position)
            call = self.calls.setdefault(index, {"id": None, "name": "", "arguments": ""})
            if fragment.get("id"):
                call["id"] = fragment["id"]
            fn = fragment.get("function") or {}
            # servers send the name once; some (llama.cpp) repeat it in every fragment
            if fn.get("name") and not call["name"]:
                call["name"] = fn["name"]
            if fn.get("arguments"):
                args = fn["arguments"]
                call["arguments"] += args if isinstance(args, str) else json.dumps(args)

    def done(self) -> list[ToolCall]:
        out = []
        for _, call in sorted(self.calls.items()):
            kwargs = {"id": call["id"]} if call["id"] else {}
            out.append(ToolCall(name=call["name"], arguments=_arguments(call["arguments"]),
                                **kwargs))
        return out


class OpenAIProvider(Provider):
    """One OpenAI-compatible server. Safe to share between concurrent requests."""

    def __init__(self, *, name: str = "openai", base_url: str = "https://api.openai.com/v1",
                 api_key: str | None = None, model: str = "gpt-4o-mini",
                 organization: str | None = None, connect_timeout: float = 5.0,
                 chunk_timeout: float = 120.0, request_timeout: float = 600.0,
                 include_usage: bool = True, max_tokens_field: str = "max_tokens",
                 options: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.name = name
        self.default_model = model
        self.base_url = base_url.rstrip("/")
        self.connect_timeout = connect_timeout
        self.include_usage = include_usage
        self.max_tokens_field = max_tokens_field
        self.options = dict(options or {})
        self._headers = dict(headers or {})
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        if organization:
            self._headers["OpenAI-Organization"] = organization
        self._stream_timeout = httpx.Timeout(chunk_timeout, connect=connect_timeout,
                                             pool=connect_timeout)
        self._whole_timeout = httpx.Timeout(request_timeout, connect=connect_timeout,
                                            pool=connect_timeout)
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.base_url + "/", headers=self._headers,
                verify=tls_for(self.base_url),
                timeout=self._whole_timeout,
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=20))
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def __repr__(self) -> str:
        return f"OpenAIProvider(name={self.name!r}, base_url={redact_url(self.base_url)!r})"

    # --- requests ---------------------------------------------------------------------

    @staticmethod
    def _message(message: Message) -> dict[str, Any]:
        out: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.tool_calls:
            # "" rather than null: OpenAI takes either, llama.cpp's server only a string
            out["tool_calls"] = [{"id": c.id, "type": "function",
                                  "function": {"name": c.name,
                                               "arguments": json.dumps(c.arguments)}}
                                 for c in message.tool_calls]
        if message.role == "tool":
            if message.tool_call_id:
                out["tool_call_id"] = message.tool_call_id
            if message.name:
                out["name"] = message.name
        return out

    def chat_body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        """The JSON body of `POST /chat/completions` for `request`."""
        body: dict[str, Any] = {
            "model": request.model or self.default_model,
            "messages": [self._message(m) for m in request.messages],
            **self.options,
            **{k: v for k, v in request.options.items() if k in OPENAI_FIELDS},
        }
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.max_tokens is not None:
            body[self.max_tokens_field] = request.max_tokens
        if request.stop:
            body["stop"] = request.stop
        if request.seed is not None:
            body["seed"] = request.seed
        if request.tools:
            body["tools"] = [{"type": "function",
                              "function": {"name": t.name, "description": t.description,
                                           "parameters": t.parameters}}
                             for t in request.tools]
        else:
            body.pop("tool_choice", None)
        if stream:
            body["stream"] = True
            if self.include_usage:
                body["stream_options"] = {"include_usage": True}
        return body

    # --- errors -----------------------------------------------------------------------

    def _status_error(self, status: int, body: bytes) -> ProviderError:
        text, code = _error_text(body)
        extra = {"provider": self.name, "upstream_status": status}
        lowered = text.lower()
        if code == "model_not_found" or (status == 404 and "model" in lowered and (
                "not found" in lowered or "does not exist" in lowered)):
            return ModelNotFound(f"{self.name}: {text}", extra=extra)
        return ProviderError(f"{self.name}: {text} (upstream HTTP {status})", extra=extra)

    def _transport_error(self, exc: httpx.HTTPError) -> ProviderError:
        return transport_error(exc, provider=self.name, base_url=self.base_url,
                               connect_timeout=self.connect_timeout)

    def _protocol_error(self, what: str, line: bytes | str) -> ProviderProtocolError:
        text = line if isinstance(line, str) else line.decode("utf-8", "replace")
        return ProviderProtocolError(f"{self.name}: {what}: {text[:200]!r}",
                                     extra={"provider": self.name})

    # --- non-streaming ----------------------------------------------------------------

    async def chat(self, request: ChatRequest) -> ChatResponse:
        body = self.chat_body(request, stream=False)
        try:
            response = await self.client.post("chat/completions", json=body,
                                              timeout=self._whole_timeout)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        if response.status_code != 200:
            raise self._status_error(response.status_code, response.content)
        try:
            data = response.json()
        except ValueError:
            raise self._protocol_error("a reply that is not JSON", response.content) from None
        return self._whole(data, body["model"], response.content)

    def _whole(self, data: Any, model: str, raw: bytes) -> ChatResponse:
        if isinstance(data, dict) and "error" in data:
            text, _ = _error_of(data)
            raise ProviderError(f"{self.name}: {text}", extra={"provider": self.name})
        try:
            choice = data["choices"][0]
            message = choice.get("message") or {}
            calls = [ToolCall(name=c["function"]["name"],
                              arguments=_arguments(c["function"].get("arguments") or ""),
                              **({"id": c["id"]} if c.get("id") else {}))
                     for c in message.get("tool_calls") or []]
            return ChatResponse(
                message=Message(role="assistant", content=message.get("content") or "",
                                tool_calls=calls or None),
                model=data.get("model") or model, usage=self._usage(data.get("usage")),
                finish_reason=choice.get("finish_reason"))
        except (KeyError, IndexError, TypeError, AttributeError, ValueError):
            # ValueError: pydantic's ValidationError (a field of the wrong type)
            raise self._protocol_error("not a chat.completion object", raw) from None

    @staticmethod
    def _usage(raw: Any) -> Usage | None:
        if not isinstance(raw, dict):
            return None
        def count(key: str) -> int | None:
            value = raw.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        return Usage(prompt_tokens=count("prompt_tokens"),
                     completion_tokens=count("completion_tokens"),
                     total_tokens=count("total_tokens"))

    # --- streaming --------------------------------------------------------------------

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        body = self.chat_body(request, stream=True)
        model: str = body["model"]
        state = _StreamState(model)
        started = False
        try:
            response = await self.client.send(
                self.client.build_request("POST", "chat/completions", json=body,
                                          timeout=self._stream_timeout),
                stream=True)
            try:
                if response.status_code != 200:
                    raise self._status_error(response.status_code, await response.aread())
                if "json" in response.headers.get("content-type", ""):
                    # a server that ignored "stream": answer from the whole reply
                    raw = await response.aread()
                    try:
                        data = json.loads(raw)
                    except ValueError:
                        raise self._protocol_error("a reply that is not JSON", raw) from None
                    whole = self._whole(data, model, raw)
                    if whole.message.content:
                        yield ChatChunk(delta=whole.message.content, model=whole.model)
                    yield ChatChunk(done=True, model=whole.model, usage=whole.usage,
                                    tool_calls=whole.message.tool_calls,
                                    finish_reason=whole.finish_reason)
                    return
                pending = b""
                async for data in response.aiter_bytes():
                    lines = (pending + data).split(b"\n")
                    pending = lines.pop()
                    for line in lines:
                        chunk = self._line(line, state)
                        if chunk is None:
                            continue
                        started = True
                        yield chunk
                        if chunk.done:
                            return
                if pending.strip():
                    chunk = self._line(pending, state)
                    if chunk is not None:
                        started = True
                        yield chunk
                        if chunk.done:
                            return
                if state.finish_reason is None:
                    raise ProviderProtocolError(
                        f"{self.name}: the stream ended without [DONE]",
                        extra={"provider": self.name})
                # some servers end with the finish_reason chunk and no [DONE]
                yield state.final()
                return
            except asyncio.CancelledError:
                _hang_up(response)
                raise
            finally:
                await _close_response(response)
        except httpx.HTTPError as exc:
            error: ProviderError = self._transport_error(exc)
            if not started:
                raise error from exc
        except ProviderError as exc:
            if not started:
                raise
            error = exc
        yield ChatChunk(done=True, model=model,
                        error=ErrorInfo(detail=error.detail, code=error.code))

    def _line(self, raw: bytes, state: _StreamState) -> ChatChunk | None:
        """One SSE line: None, a text chunk, or the final chunk at `[DONE]`."""
        line = raw.rstrip(b"\r")
        if not line:
            state.event = b""  # end of one event
            return None
        if line.startswith(b":"):
            return None  # a comment (keep-alive)
        field, sep, value = line.partition(b":")
        if not sep:
            raise self._protocol_error("a line that is not Server-Sent Events", line)
        if field == b"event":
            state.event = value.strip()
            return None
        if field != b"data":
            return None  # id:, retry:
        value = value[1:] if value.startswith(b" ") else value
        if value == b"[DONE]":
            return state.final()
        try:
            data = json.loads(value)
        except ValueError:
            raise self._protocol_error("a data line that is not JSON", line) from None
        if not isinstance(data, dict):
            raise self._protocol_error("a data line that is not an object", line)
        if "error" in data or state.event == b"error":
            text, _ = _error_of(data)
            raise ProviderError(f"{self.name}: {text}", extra={"provider": self.name})
        if data.get("usage"):
            state.usage = self._usage(data["usage"])
        choices = data.get("choices") or []
        if not choices:
            return None
        try:
            choice = choices[0]
            delta = choice.get("delta") or {}
            if choice.get("finish_reason"):
                state.finish_reason = choice["finish_reason"]
            if delta.get("tool_calls"):
                state.tools.add(delta["tool_calls"])
            content = delta.get("content")
        except (AttributeError, TypeError):
            raise self._protocol_error("not a chat.completion.chunk", line) from None
        if not content:
            return None
        if not isinstance(content, str):
            raise self._protocol_error("content that is not a string", line)
        return ChatChunk(delta=content, model=state.model)

    # --- models and health ------------------------------------------------------------

    async def _get_models(self, timeout: httpx.Timeout | None = None) -> httpx.Response:
        try:
            return await self.client.get("models", timeout=timeout or self._stream_timeout)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc

    async def models(self) -> list[ModelInfo]:
        response = await self._get_models()
        if response.status_code != 200:
            raise self._status_error(response.status_code, response.content)
        try:
            return [ModelInfo(name=m["id"], details={k: v for k, v in m.items() if k != "id"})
                    for m in response.json()["data"]]
        except (ValueError, KeyError, TypeError):
            raise self._protocol_error("not a model list", response.content) from None

    async def health(self) -> ProviderHealth:
        start = time.perf_counter()
        try:
            # a probe answers within the connect timeout or reports unreachable
            response = await self._get_models(httpx.Timeout(self.connect_timeout))
        except ProviderError as exc:
            return ProviderHealth(reachable=False, detail=exc.detail)
        latency = (time.perf_counter() - start) * 1000
        if response.status_code != 200:
            text, _ = _error_text(response.content)
            return ProviderHealth(reachable=False, latency_ms=latency,
                                  detail=f"{redact_url(self.base_url)}/models answered "
                                         f"{response.status_code}: {text}")
        return ProviderHealth(reachable=True, latency_ms=latency)


class _StreamState:
    __slots__ = ("event", "finish_reason", "model", "tools", "usage")

    def __init__(self, model: str) -> None:
        self.model = model
        self.tools = _ToolCallParts()
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.event = b""

    def final(self) -> ChatChunk:
        calls = self.tools.done()
        return ChatChunk(done=True, model=self.model, usage=self.usage,
                         tool_calls=calls or None,
                         finish_reason=self.finish_reason or ("tool_calls" if calls else "stop"))
