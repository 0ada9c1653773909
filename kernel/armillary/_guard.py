"""One way to call a model: the safety pipeline bound to a run or a conversation.

`Guard` is what strategies (through `RunContext`) and routes (through
`Kernel.guard(...)`) call models and tools with:

- `guard.provider(p)` wraps a provider: before each call the newest user message goes
  through the `input` stage (redacted or refused); the reply goes through `output` — for
  a stream, with a bounded hold-back window (`OutputGuard`), so text reaches the caller
  at most `window` characters behind the model, and a span a check blocks or redacts
  never reaches it at all. A blocked stream ends with one error chunk (`done=True`)
  whose code is the check's.
- `guard.tool(t)` wraps a tool: the `tool` stage runs before every call, and a refusal is
  a `ToolError` the model sees as the tool's result.

Every verdict (allowed ones too) also goes to the pipeline's listeners as a
`VerdictRecord` (`SafetyPipeline.add_listener`): one per checked input, tool call or
whole reply — for a stream, one when it is blocked or when it ends, with every flag the
checks raised on the way, or (`complete=False`) when the caller stopped reading first.
The record names the guard's scope (its `run_id`, `conversation_id` or `session_id` from
the context, else a fresh `grd_…` id) and never carries the checked text.

Bypassing the checks takes a deliberate call (`RunContext.unchecked_provider`,
`Kernel.provider`): anything handed out as "the provider" is the checked one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from armillary._errors import ArmillaryError
from armillary._models import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ErrorInfo,
    ModelInfo,
    ProviderHealth,
    Verdict,
    current_principal,
    new_id,
)
from armillary._providers import Provider
from armillary._safety import (
    Action,
    SafetyBlocked,
    SafetyCheck,
    SafetyPipeline,
    Stage,
    VerdictRecord,
    flags_of,
)
from armillary._tools import Tool, ToolError

#: called with (stage, verdict) whenever a check redacts or blocks (once per check per
#: stream); runs emit a `safety` event from it
log = logging.getLogger("armillary.guard")

VerdictListener = Callable[[Stage, Verdict], Awaitable[None]]
#: told of every provider call a guard's provider made, once it is over (see `CallRecord`)
CallListener = Callable[["CallRecord"], None]


@dataclasses.dataclass
class CallRecord:
    """One provider call through a guard, as `provider.call` events on the firehose say
    it: who, how long, how long to the first token, tokens, and how it ended (`ok`, or
    the error `code`; `cancelled` when the caller left). Never the text."""

    scope: str
    provider: str
    model: str
    stream: bool
    started: float
    #: the principal the call was made for (a request's key, or a run's owner); None
    #: without auth — what per-key token budgets settle against
    owner: str | None = None
    duration_s: float = 0.0
    ttft_s: float | None = None
    ok: bool = True
    code: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    def payload(self) -> dict[str, Any]:
        fields = dataclasses.asdict(self)
        del fields["scope"], fields["started"]
        return fields

#: audit records of abandoned streams still being handed to the listeners
_pending_audits: set[asyncio.Future[None]] = set()

#: context keys that name a guard's scope, most specific first
SCOPE_KEYS = ("run_id", "conversation_id", "session_id")


def action_of(verdict: Verdict) -> Action:
    if not verdict.allowed:
        return "blocked"
    if verdict.redacted is not None:
        return "redacted"
    return "flagged" if flags_of(verdict) else "allowed"


async def close_stream(stream: Any) -> None:
    """Close an async iterator (a provider stream) to the end, even if the caller is
    cancelled meanwhile: a close cut short leaves the upstream connection open. A cancel
    that arrived during the close is raised again once it is done."""
    aclose = getattr(stream, "aclose", None)
    if aclose is None:
        return
    task = asyncio.ensure_future(aclose())
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                break
            cancelled = True
    error = None if task.cancelled() else task.exception()
    if cancelled:
        raise asyncio.CancelledError  # the close's own error, if any, was retrieved above
    if error is not None:
        raise error


class Guard:
    """The safety pipeline bound to one run or conversation (`context` goes to every
    check: run_id or conversation_id, agent, …)."""

    def __init__(self, pipeline: SafetyPipeline, context: dict[str, Any] | None = None,
                 on_verdict: VerdictListener | None = None,
                 on_call: CallListener | None = None,
                 checked_inputs: Iterable[str] = ()) -> None:
        self.pipeline = pipeline
        self.context = dict(context or {})
        self.on_verdict = on_verdict
        self.on_call = on_call
        #: what the audit files this guard's verdicts under
        self.scope = next((str(self.context[k]) for k in SCOPE_KEYS if self.context.get(k)),
                          None) or new_id("grd_")
        #: input texts already checked, and what they became (so a strategy that checks
        #: its goal first is not checked again on every step); `checked_inputs` are texts
        #: the caller had checked already, as they came out (a run's goal, at submit)
        self._inputs: dict[str, str] = {text: text for text in checked_inputs}

    async def _report(self, stage: Stage, verdict: Verdict) -> None:
        if self.on_verdict is not None:
            await self.on_verdict(stage, verdict)

    async def audit(self, stage: Stage, action: Action, *, check: str = "",
                    code: str | None = None, flags: list[str] | None = None,
                    streamed: bool = False, complete: bool = True) -> None:
        """Hand one verdict to the pipeline's listeners (see the module docstring)."""
        if not self.pipeline.listeners:
            return
        ids = {k: str(self.context[k]) for k in SCOPE_KEYS if self.context.get(k)}
        await self.pipeline.report(VerdictRecord(
            stage=stage, action=action, check=check, code=code, flags=flags or [],
            scope=self.scope, **ids, streamed=streamed, complete=complete,
            context={k: v for k, v in self.context.items()
                     if isinstance(v, str) and k not in SCOPE_KEYS},
            logged=self.on_verdict is not None and action in ("blocked", "redacted")))

    async def _audit(self, stage: Stage, verdict: Verdict) -> None:
        await self.audit(stage, action_of(verdict), check=verdict.check, code=verdict.code,
                         flags=flags_of(verdict))

    async def check(self, stage: Stage, text: str, *, checks: list[SafetyCheck] | None = None,
                    **context: Any) -> str:
        """The text as the checks let it through (redacted, maybe); raises `SafetyBlocked`."""
        if not (self.pipeline.for_stage(stage) if checks is None else checks):
            return text
        try:
            verdict = await self.pipeline.run(stage, text, {**self.context, **context},
                                              checks=checks)
        except ArmillaryError as exc:
            await self.audit(stage, "error", code=exc.code)
            raise
        if not verdict.allowed:
            await self._report(stage, verdict)
            await self._audit(stage, verdict)
            raise SafetyBlocked.from_verdict(stage, verdict)
        if verdict.redacted is not None:
            await self._report(stage, verdict)
            await self._audit(stage, verdict)
            return verdict.redacted
        await self._audit(stage, verdict)
        return text

    async def check_input(self, text: str) -> str:
        """The input as the checks let it through; a text this guard already checked (or
        was given as checked) is not checked again."""
        if text in self._inputs:
            return self._inputs[text]
        result = await self.check("input", text)
        self._inputs[text] = self._inputs[result] = result
        return result

    async def check_output(self, text: str) -> str:
        return await self.check("output", text)

    async def check_tool(self, name: str, arguments: dict[str, Any]) -> None:
        await self.check("tool", f"{name} {json.dumps(arguments, default=str)}", tool=name,
                         arguments=arguments)

    def output(self) -> OutputGuard:
        """A fresh hold-back window for one streamed reply."""
        return OutputGuard(self)

    def provider(self, provider: Provider) -> Provider:
        if isinstance(provider, CheckedProvider) and provider.guard is self:
            return provider
        return CheckedProvider(provider, self)

    def tool(self, tool: Tool) -> Tool:
        return CheckedTool(**{f.name: getattr(tool, f.name)
                              for f in dataclasses.fields(tool)}, guard=self)


class OutputGuard:
    """The output stage on a stream. `feed(delta)` returns the text that may go out now;
    `finish()` the rest, once the stream ended. Both raise `SafetyBlocked`.

    Incremental checks scan the text not yet released; everything but its last `window`
    characters (the largest `span` of those checks) is then released. A match no longer
    than `span` is therefore always wholly inside the unreleased text when it completes,
    so it is redacted or blocked before any of it leaves. A whole-text check holds
    everything until `finish()`."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        checks = guard.pipeline.for_stage("output")
        self._incremental = [c for c in checks if c.incremental]
        self._whole = [c for c in checks if not c.incremental]
        self.window = max((max(c.span, 1) for c in self._incremental), default=0)
        self._pending = ""
        self._reported: set[str] = set()
        #: what the checks found and who acted, over the whole stream (for the audit)
        self._flags: list[str] = []
        self._acted: list[str] = []
        self._redacted = False
        #: the stream's one audit record went out (blocked, ended, or a check failed)
        self.audited = False
        self.released = 0

    @property
    def active(self) -> bool:
        return bool(self._incremental or self._whole)

    async def _scan(self, checks: list[SafetyCheck], final: bool) -> None:
        try:
            verdict = await self.guard.pipeline.run(
                "output", self._pending, {**self.guard.context, "final": final,
                                          "released_chars": self.released}, checks=checks)
        except ArmillaryError as exc:
            self.audited = True
            await self.guard.audit("output", "error", code=exc.code, flags=self._flags,
                                   streamed=True)
            raise
        self._flags = list(dict.fromkeys([*self._flags, *flags_of(verdict)]))
        if verdict.check:
            self._acted = list(dict.fromkeys([*self._acted, *verdict.check.split(",")]))
        if not verdict.allowed:
            await self.guard._report("output", verdict)
            self.audited = True
            await self.guard.audit("output", "blocked", check=verdict.check,
                                   code=verdict.code, flags=self._flags, streamed=True)
            raise SafetyBlocked.from_verdict("output", verdict)
        if verdict.redacted is not None:
            self._redacted = True
            self._pending = verdict.redacted
            if verdict.check not in self._reported:
                self._reported.add(verdict.check)
                await self.guard._report("output", verdict)

    def _release(self, upto: int) -> str:
        out, self._pending = self._pending[:upto], self._pending[upto:]
        self.released += len(out)
        return out

    async def feed(self, delta: str) -> str:
        if not self.active:
            return delta
        self._pending += delta
        if self._whole or not delta:
            return ""
        await self._scan(self._incremental, final=False)
        cut = len(self._pending) - self.window
        return self._release(cut) if cut > 0 else ""

    async def finish(self) -> str:
        if self._incremental:
            await self._scan(self._incremental, final=True)
        if self._whole:
            await self._scan(self._whole, final=True)
        self.audited = True
        await self.guard.audit("output", self._action(), check=",".join(self._acted),
                               flags=self._flags, streamed=True)
        return self._release(len(self._pending))

    def _action(self) -> Action:
        return "redacted" if self._redacted else "flagged" if self._flags else "allowed"

    def abandon(self) -> None:
        """The stream ended before `finish()` (the caller stopped reading: a client that
        left, a cancel): its record goes out, `complete=False`, from a task of its own,
        since the caller may be being cancelled."""
        if self.audited or not self.active or not self.guard.pipeline.listeners:
            return
        self.audited = True
        task = asyncio.ensure_future(self.guard.audit(
            "output", self._action(), check=",".join(self._acted), flags=self._flags,
            streamed=True, complete=False))
        _pending_audits.add(task)
        task.add_done_callback(_pending_audits.discard)


#: the `finish_reason` of the error chunk a guarded stream ends with when a check blocks
SAFETY_FINISH = "safety"


def _ended_by(exc: ArmillaryError, model: str | None = None) -> ChatChunk:
    """The last chunk of a stream a check ended: a block as `SAFETY_FINISH`, a check that
    failed (a moderation model out of reach) as `error`, with its code."""
    reason = SAFETY_FINISH if isinstance(exc, SafetyBlocked) else "error"
    return ChatChunk(done=True, model=model, finish_reason=reason,
                     error=ErrorInfo(detail=exc.detail, code=exc.code))


class CheckedProvider(Provider):
    """A provider whose every call goes through a `Guard` (see the module docstring).
    `unchecked` is the provider underneath."""

    def __init__(self, provider: Provider, guard: Guard) -> None:
        self.unchecked = provider
        self.guard = guard
        self.name = provider.name
        self.default_model = provider.default_model

    async def _request(self, request: ChatRequest) -> ChatRequest:
        messages = request.messages
        if not messages or messages[-1].role != "user":
            return request
        text = await self.guard.check_input(messages[-1].content)
        if text == messages[-1].content:
            return request
        last = messages[-1].model_copy(update={"content": text})
        return request.model_copy(update={"messages": [*messages[:-1], last]})

    def _call(self, request: ChatRequest, *, stream: bool) -> CallRecord | None:
        if self.guard.on_call is None:
            return None
        principal = current_principal()
        return CallRecord(scope=self.guard.scope, provider=self.name,
                          model=request.model or self.default_model or "", stream=stream,
                          started=time.perf_counter(),
                          owner=principal.name if principal is not None else None)

    def _called(self, call: CallRecord | None) -> None:
        if call is None or self.guard.on_call is None:
            return
        call.duration_s = time.perf_counter() - call.started
        try:
            self.guard.on_call(call)
        except Exception:  # an observer never fails the call it observes
            log.exception("a provider-call listener failed")

    async def chat(self, request: ChatRequest) -> ChatResponse:
        checked = await self._request(request)
        call = self._call(checked, stream=False)
        try:
            reply = await self.unchecked.chat(checked)
            if call is not None and reply.usage is not None:
                call.prompt_tokens = reply.usage.prompt_tokens
                call.completion_tokens = reply.usage.completion_tokens
        except ArmillaryError as exc:
            if call is not None:
                call.ok, call.code = False, exc.code
            raise
        except asyncio.CancelledError:
            if call is not None:
                call.ok, call.code = False, "cancelled"
            raise
        finally:
            self._called(call)
        text = await self.guard.check_output(reply.message.content)
        if text == reply.message.content:
            return reply
        return reply.model_copy(update={"message": reply.message.model_copy(
            update={"content": text})})

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        checked = await self._request(request)
        window = self.guard.output()
        upstream = self.unchecked.stream(checked)
        call = self._call(checked, stream=True)
        finished = False  # the upstream's last chunk came (a caller may close after it)
        try:
            async for chunk in upstream:
                if call is not None:
                    if call.ttft_s is None and chunk.delta:
                        call.ttft_s = time.perf_counter() - call.started
                    if chunk.usage is not None:
                        call.prompt_tokens = chunk.usage.prompt_tokens
                        call.completion_tokens = chunk.usage.completion_tokens
                    if chunk.error is not None:
                        call.ok, call.code = False, chunk.error.code
                    if chunk.done:
                        finished = True
                try:
                    if chunk.error is not None:
                        rest = await window.finish()
                        if rest:
                            yield ChatChunk(delta=rest, model=chunk.model)
                        yield chunk
                        return
                    out = await window.feed(chunk.delta) if chunk.delta else ""
                    if chunk.done:
                        out += await window.finish()
                except ArmillaryError as exc:
                    yield _ended_by(exc, chunk.model)
                    return
                if out != chunk.delta:
                    chunk = chunk.model_copy(update={"delta": out})
                if chunk.delta or chunk.done or chunk.tool_calls or chunk.usage:
                    yield chunk
                if chunk.done:
                    return
            # a provider that ended without its done chunk: what the window still holds
            # is judged and goes out all the same (the caller ends the stream)
            try:
                rest = await window.finish()
            except ArmillaryError as exc:
                yield _ended_by(exc)
                return
            if rest:
                yield ChatChunk(delta=rest)
        except (GeneratorExit, asyncio.CancelledError):
            if call is not None and call.ok and not finished:
                call.ok, call.code = False, "cancelled"
            raise
        finally:
            window.abandon()
            try:
                await close_stream(upstream)
            finally:  # reported even when the close is cancelled (a relay torn down)
                self._called(call)

    async def models(self) -> list[ModelInfo]:
        return await self.unchecked.models()

    async def health(self) -> ProviderHealth:
        return await self.unchecked.health()

    async def aclose(self) -> None:
        """Nothing: the provider underneath belongs to the kernel, which closes it."""


@dataclasses.dataclass
class CheckedTool(Tool):
    """A tool whose every call first goes through the `tool` stage."""

    guard: Guard | None = None

    async def invoke(self, arguments: dict[str, Any]) -> Any:
        if self.guard is not None:
            try:
                await self.guard.check_tool(self.name, arguments)
            except SafetyBlocked as exc:
                raise ToolError(f"blocked by safety check {exc.extra.get('check')!r}: "
                                f"{exc.detail}", code=exc.code, status_code=exc.status_code,
                                extra=exc.extra) from None
        return await super().invoke(arguments)
