"""`OllamaProvider`: the kernel's provider interface over Ollama's HTTP API.

Protocol (ollama/ollama docs/api.md): `POST /api/chat` and `POST /api/generate` answer a
stream of NDJSON objects (or one object with `"stream": false`); the last has
`"done": true` with the token counts. Tool calls arrive complete, with object arguments;
a tool's result goes back as a `role: "tool"` message with `tool_name`. Errors are
`{"error": "..."}`, with a 4xx/5xx status before the stream starts, or as a line in the
middle of it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from armillary import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    HTTPProvider,
    Message,
    ModelInfo,
    ModelNotFound,
    ProviderError,
    ProviderProtocolError,
    ToolCall,
    Usage,
    redact_url,
)

#: Ollama's model parameters (Modelfile PARAMETERs); other `ChatRequest.options` keys are
#: for other providers and are not sent.
OLLAMA_OPTIONS = frozenset({
    "num_keep", "seed", "num_predict", "top_k", "top_p", "min_p", "typical_p",
    "repeat_last_n", "temperature", "repeat_penalty", "presence_penalty",
    "frequency_penalty", "penalize_newline", "stop", "numa", "num_ctx", "num_batch",
    "num_gpu", "main_gpu", "use_mmap", "num_thread", "mirostat", "mirostat_tau",
    "mirostat_eta", "tfs_z",
})
#: request-level fields a `ChatRequest.options` key may set
OLLAMA_FIELDS = frozenset({"keep_alive", "format", "think"})


def _error_text(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip()[:500] or "(empty body)"
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return str(data["error"])
    return json.dumps(data)[:500]


class OllamaProvider(HTTPProvider):
    """One Ollama host. Safe to share between concurrent requests; call `aclose()` once."""

    health_path = "/api/version"

    def __init__(self, *, name: str = "ollama", base_url: str = "http://127.0.0.1:11434",
                 model: str = "llama3.2", connect_timeout: float = 5.0,
                 chunk_timeout: float = 120.0, request_timeout: float = 600.0,
                 keep_alive: str | int | None = None, options: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(name=name, base_url=base_url, model=model,
                         connect_timeout=connect_timeout, chunk_timeout=chunk_timeout,
                         request_timeout=request_timeout, headers=headers)
        self.keep_alive = keep_alive
        self.options = dict(options or {})

    # --- requests ---------------------------------------------------------------------

    def _options(self, request: ChatRequest) -> dict[str, Any]:
        options = {**self.options,
                   **{k: v for k, v in request.options.items() if k in OLLAMA_OPTIONS}}
        if request.temperature is not None:
            options["temperature"] = request.temperature
        if request.max_tokens is not None:
            options["num_predict"] = request.max_tokens
        if request.stop:
            options["stop"] = request.stop
        if request.seed is not None:
            options["seed"] = request.seed
        return options

    def _common(self, request: ChatRequest, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"model": request.model or self.default_model,
                                "stream": stream}
        options = self._options(request)
        if options:
            body["options"] = options
        keep_alive = request.options.get("keep_alive", self.keep_alive)
        if keep_alive is not None:
            body["keep_alive"] = keep_alive
        for key in OLLAMA_FIELDS - {"keep_alive"}:
            if key in request.options:
                body[key] = request.options[key]
        return body

    @staticmethod
    def _message(message: Message) -> dict[str, Any]:
        out: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.tool_calls:
            out["tool_calls"] = [{"id": c.id, "function": {"name": c.name,
                                                            "arguments": c.arguments}}
                                 for c in message.tool_calls]
        if message.role == "tool":
            if message.name:
                out["tool_name"] = message.name
            if message.tool_call_id:
                out["tool_call_id"] = message.tool_call_id
        return out

    def chat_body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        """The JSON body of `POST /api/chat` for `request`."""
        body = self._common(request, stream)
        body["messages"] = [self._message(m) for m in request.messages]
        if request.tools:
            body["tools"] = [{"type": "function",
                              "function": {"name": t.name, "description": t.description,
                                           "parameters": t.parameters}}
                             for t in request.tools]
        return body

    def generate_body(self, prompt: str, request: ChatRequest | None = None, *,
                      stream: bool, system: str | None = None) -> dict[str, Any]:
        """The JSON body of `POST /api/generate`."""
        body = self._common(request or ChatRequest(messages=[]), stream)
        body["prompt"] = prompt
        if system is not None:
            body["system"] = system
        return body

    # --- errors -----------------------------------------------------------------------

    def error_text(self, body: bytes) -> str:
        return _error_text(body)

    def status_error(self, status: int, body: bytes, model: str) -> ProviderError:
        text = _error_text(body)
        extra = {"provider": self.name, "upstream_status": status}
        if status == 404 and "model" in text and "not found" in text:
            return ModelNotFound(f"{self.name}: {text}", extra=extra)
        if status == 404:
            return ProviderError(f"{self.name}: {redact_url(self.base_url)} answered 404 "
                                 f"({text}); is base_url an Ollama server?", extra=extra)
        return ProviderError(f"{self.name}: {text} (upstream HTTP {status})", extra=extra)

    def _protocol_error(self, line: bytes | str) -> ProviderProtocolError:
        text = line if isinstance(line, str) else line.decode("utf-8", "replace")
        return ProviderProtocolError(f"{self.name}: a line that is not Ollama's protocol: "
                                     f"{text[:200]!r}", extra={"provider": self.name})

    # --- non-streaming ----------------------------------------------------------------

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.request("POST", path, json=body, model=body["model"])
        try:
            data = response.json()
        except ValueError:
            raise self._protocol_error(response.content) from None
        if not isinstance(data, dict):
            raise self._protocol_error(response.content)
        if "error" in data:
            raise self.upstream_error(str(data["error"]))
        return data

    @staticmethod
    def _usage(data: dict[str, Any]) -> Usage | None:
        prompt, completion = _count(data.get("prompt_eval_count")), _count(data.get("eval_count"))
        if prompt is None and completion is None:
            return None
        return Usage(prompt_tokens=prompt, completion_tokens=completion,
                     total_tokens=(prompt or 0) + (completion or 0))

    def _tool_calls(self, raw: Any, line: Any) -> list[ToolCall]:
        calls = []
        try:
            for item in raw or []:
                fn = item["function"]
                args = fn.get("arguments") or {}
                if isinstance(args, str):  # some models' templates give a JSON string
                    args = json.loads(args) if args.strip() else {}
                kwargs = {"id": item["id"]} if item.get("id") else {}
                calls.append(ToolCall(name=fn["name"], arguments=args, **kwargs))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise self._protocol_error(json.dumps(line)) from None
        return calls

    async def chat(self, request: ChatRequest) -> ChatResponse:
        data = await self._post("/api/chat", self.chat_body(request, stream=False))
        message = data.get("message") or {}
        if not isinstance(message, dict):
            raise self._protocol_error(json.dumps(data))
        calls = self._tool_calls(message.get("tool_calls"), data)
        try:
            return ChatResponse(
                message=Message(role="assistant", content=message.get("content") or "",
                                tool_calls=calls or None),
                model=data.get("model") or request.model or self.default_model,
                usage=self._usage(data),
                finish_reason="tool_calls" if calls else data.get("done_reason"))
        except ValueError:  # pydantic's ValidationError: a field of the wrong type
            raise self._protocol_error(json.dumps(data)) from None

    async def generate(self, prompt: str, request: ChatRequest | None = None, *,
                       system: str | None = None) -> ChatResponse:
        """`POST /api/generate` (a completion of `prompt`, no chat template history)."""
        body = self.generate_body(prompt, request, stream=False, system=system)
        data = await self._post("/api/generate", body)
        try:
            return ChatResponse(
                message=Message(role="assistant", content=data.get("response") or ""),
                model=data.get("model") or body["model"], usage=self._usage(data),
                finish_reason=data.get("done_reason"))
        except ValueError:  # pydantic's ValidationError: a field of the wrong type
            raise self._protocol_error(json.dumps(data)) from None

    # --- streaming --------------------------------------------------------------------

    def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        return self._stream("/api/chat", self.chat_body(request, stream=True), _chat_text)

    def stream_generate(self, prompt: str, request: ChatRequest | None = None, *,
                        system: str | None = None) -> AsyncIterator[ChatChunk]:
        """`POST /api/generate`, streamed."""
        body = self.generate_body(prompt, request, stream=True, system=system)
        return self._stream("/api/generate", body, _generate_text)

    def _stream(self, path: str, body: dict[str, Any],
                text_of: Callable[[dict[str, Any]], tuple[str, Any]],
                ) -> AsyncIterator[ChatChunk]:
        model: str = body["model"]
        calls: list[ToolCall] = []  # Ollama sends them on a line of their own

        def parse(line: bytes) -> ChatChunk | None:
            return self._chunk(line, model, calls, text_of) if line.strip() else None

        def end() -> ChatChunk:
            raise ProviderProtocolError(
                f"{self.name}: the stream ended without its final (done) line",
                extra={"provider": self.name})

        return self.stream_request(path, body, model=model, parse=parse, end=end)

    def _chunk(self, line: bytes, model: str, calls: list[ToolCall],
               text_of: Callable[[dict[str, Any]], tuple[str, Any]]) -> ChatChunk | None:
        try:
            data = json.loads(line)
        except ValueError:
            raise self._protocol_error(line) from None
        if not isinstance(data, dict):
            raise self._protocol_error(line)
        if "error" in data:
            raise self.upstream_error(str(data["error"]))
        try:
            text, raw_calls = text_of(data)
        except (AttributeError, TypeError):
            raise self._protocol_error(line) from None
        if not isinstance(text, str):
            raise self._protocol_error(line)
        if raw_calls:
            calls.extend(self._tool_calls(raw_calls, data))
        if data.get("done"):
            return ChatChunk(delta=text, done=True, model=data.get("model") or model,
                             usage=self._usage(data), tool_calls=list(calls) or None,
                             finish_reason="tool_calls" if calls else data.get("done_reason"))
        if not text:
            return None
        return ChatChunk(delta=text, model=model)

    # --- models and health ------------------------------------------------------------

    async def models(self) -> list[ModelInfo]:
        response = await self.request("GET", "/api/tags", timeout=self._stream_timeout)
        try:
            entries = response.json()["models"]
            return [ModelInfo(name=m["name"], size=m.get("size"),
                              modified_at=m.get("modified_at"), details=m.get("details") or {})
                    for m in entries]
        except (ValueError, KeyError, TypeError):
            raise self._protocol_error(response.content) from None

    def health_detail(self, response: httpx.Response) -> str | None:
        try:
            version = response.json().get("version")
        except (ValueError, AttributeError):
            version = None
        return f"ollama {version}" if version else None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _chat_text(data: dict[str, Any]) -> tuple[str, Any]:
    message = data.get("message") or {}
    return message.get("content") or "", message.get("tool_calls")


def _generate_text(data: dict[str, Any]) -> tuple[str, Any]:
    return data.get("response") or "", None
