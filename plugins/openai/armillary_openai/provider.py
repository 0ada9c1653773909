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

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from armillary import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Message,
    ModelInfo,
    ModelNotFound,
    ProviderError,
    ProviderProtocolError,
    ToolCall,
    Usage,
)
from armillary_openai.platform import PLATFORM, PlatformAPI, error_message, error_of

#: `ChatRequest.options` keys sent as body fields; others belong to other providers
OPENAI_FIELDS = frozenset({
    "tool_choice", "parallel_tool_calls", "top_p", "frequency_penalty", "presence_penalty",
    "response_format", "logit_bias", "logprobs", "top_logprobs", "user", "n",
    "reasoning_effort", "service_tier", "metadata", "store", "min_p", "top_k",
    "repeat_penalty", "max_completion_tokens",
})


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


class OpenAIProvider(PlatformAPI):
    """One OpenAI-compatible server. Safe to share between concurrent requests.

    Besides the provider interface (chat completions), OpenAI's platform endpoints:
    `create_client_secret`, `create_response` / `stream_response`, `moderations`
    (`armillary_openai.platform`)."""

    health_path = "models"

    def __init__(self, *, name: str = "openai", base_url: str = "https://api.openai.com/v1",
                 api_key: str | None = None, model: str = "gpt-4o-mini",
                 organization: str | None = None, connect_timeout: float = 5.0,
                 chunk_timeout: float = 120.0, request_timeout: float = 600.0,
                 include_usage: bool = True, max_tokens_field: str = "max_tokens",
                 options: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        headers = dict(headers or {})
        self.api_key = api_key
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        if organization:
            headers["OpenAI-Organization"] = organization
        super().__init__(name=name, base_url=base_url, model=model,
                         connect_timeout=connect_timeout, chunk_timeout=chunk_timeout,
                         request_timeout=request_timeout, headers=headers)
        self.include_usage = include_usage
        self.max_tokens_field = max_tokens_field
        self.options = dict(options or {})

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

    def error_text(self, body: bytes) -> str:
        return error_message(body)[0]

    def status_error(self, status: int, body: bytes, model: str) -> ProviderError:
        if model == PLATFORM:
            return self._http_error(status, body)
        text, code = error_message(body)
        extra = {"provider": self.name, "upstream_status": status}
        lowered = text.lower()
        if code == "model_not_found" or (status == 404 and "model" in lowered and (
                "not found" in lowered or "does not exist" in lowered)):
            return ModelNotFound(f"{self.name}: {text}", extra=extra)
        return ProviderError(f"{self.name}: {text} (upstream HTTP {status})", extra=extra)

    def _protocol_error(self, what: str, line: bytes | str) -> ProviderProtocolError:
        text = line if isinstance(line, str) else line.decode("utf-8", "replace")
        return ProviderProtocolError(f"{self.name}: {what}: {text[:200]!r}",
                                     extra={"provider": self.name})

    # --- non-streaming ----------------------------------------------------------------

    async def chat(self, request: ChatRequest) -> ChatResponse:
        body = self.chat_body(request, stream=False)
        response = await self.request("POST", "chat/completions", json=body,
                                      model=body["model"])
        try:
            data = response.json()
        except ValueError:
            raise self._protocol_error("a reply that is not JSON", response.content) from None
        return self._whole(data, body["model"], response.content)

    def _whole(self, data: Any, model: str, raw: bytes) -> ChatResponse:
        if isinstance(data, dict) and "error" in data:
            raise self.upstream_error(error_of(data)[0])
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

    def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        body = self.chat_body(request, stream=True)
        model: str = body["model"]
        state = _StreamState(model)

        async def whole(response: httpx.Response) -> list[ChatChunk] | None:
            if "json" not in response.headers.get("content-type", ""):
                return None
            # a server that ignored "stream": answer from the whole reply
            raw = await response.aread()
            try:
                data = json.loads(raw)
            except ValueError:
                raise self._protocol_error("a reply that is not JSON", raw) from None
            reply = self._whole(data, model, raw)
            first = [ChatChunk(delta=reply.message.content, model=reply.model)] \
                if reply.message.content else []
            return [*first, ChatChunk(done=True, model=reply.model, usage=reply.usage,
                                      tool_calls=reply.message.tool_calls,
                                      finish_reason=reply.finish_reason)]

        def end() -> ChatChunk:
            if state.finish_reason is None:
                raise ProviderProtocolError(f"{self.name}: the stream ended without [DONE]",
                                            extra={"provider": self.name})
            # some servers end with the finish_reason chunk and no [DONE]
            return state.final()

        return self.stream_request("chat/completions", body, model=model,
                                   parse=lambda line: self._line(line, state), end=end,
                                   whole=whole)

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
            raise self.upstream_error(error_of(data)[0])
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

    # --- models ---------------------------------------------------------------------

    async def models(self) -> list[ModelInfo]:
        response = await self.request("GET", "models", timeout=self._stream_timeout)
        try:
            return [ModelInfo(name=m["id"], details={k: v for k, v in m.items() if k != "id"})
                    for m in response.json()["data"]]
        except (ValueError, KeyError, TypeError):
            raise self._protocol_error("not a model list", response.content) from None


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
