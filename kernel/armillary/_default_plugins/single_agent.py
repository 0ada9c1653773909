"""The single-agent tool-calling strategy (`single_agent`), the default for every agent.

The loop: send the messages and the tool specs to the provider (streaming), run the tool
calls it asks for (concurrently), feed the results back, until the model answers without
calling a tool or `max_steps` is reached. Events, in the run's log:

- `message` — every message added to the conversation (the run's working memory)
- `token` — streamed text, coalesced to at most one event per `TOKEN_FLUSH_SECONDS`
- `tool_call` — name, parameters, result, success, duration, error
- `plan_update` — when the model calls the built-in `update_plan` tool
- `step` — one per provider round trip: number, timing, success, the tool calls made
- `memory_summary` — at the end: what was done, in a few lines
- `log` — notable things (a tool call a safety check refused)
- `safety` — every redaction or block (emitted by the run context, not here)

Safety is the run's guard's, never this module's: the goal passes the input stage before
anything is logged (so a redacted goal is what the log keeps), the model is called only
through `ctx.provider()` (output stage on the stream, with the hold-back window) and tools
only through `ctx.tools()` (the tool stage). So `token` and `message` events, the memory
view and the result only ever carry text the checks let through. A blocked goal or a
blocked stream fails the run with the check's code.

A tool that raises, an unknown tool, or arguments that fail the tool's schema (or a tool
call the tool stage refuses): the error goes back to the model as the tool's result and
the run goes on.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from armillary import hookimpl
from armillary._errors import ArmillaryError, ProviderError
from armillary._guard import close_stream
from armillary._hookspecs import RegisterStrategy
from armillary._models import ChatChunk, ChatRequest, ErrorInfo, Message, ToolCall, ToolSpec
from armillary._safety import SafetyBlocked
from armillary._strategies import RunContext, Strategy
from armillary._tools import Tool, ToolError

TOKEN_FLUSH_SECONDS = 0.2
#: tool results larger than this are cut in the event log (the model still gets all of it)
MAX_LOGGED_RESULT = 16_384

PLAN_TOOL = ToolSpec(
    name="update_plan",
    description="Record or revise your plan: the remaining steps, and optionally a short "
                "reflection on progress so far. Call it whenever the plan changes.",
    parameters={
        "type": "object",
        "properties": {
            "steps": {"type": "array", "items": {"type": "string"}},
            "reflection": {"type": "string"},
        },
        "required": ["steps"],
    },
)


def _render(result: Any) -> str:
    if isinstance(result, str):
        return result
    try:
        return json.dumps(result, default=str)
    except (TypeError, ValueError):
        return str(result)


def _capped(text: str) -> str:
    return text if len(text) <= MAX_LOGGED_RESULT else text[:MAX_LOGGED_RESULT] + "…"


def _loggable(result: Any) -> Any:
    """A tool result as the event log keeps it: whole when small, else capped text."""
    text = _render(result)
    if isinstance(result, dict) and len(text) <= MAX_LOGGED_RESULT:
        return result
    return _capped(text)


def _message_payload(message: Message) -> dict[str, Any]:
    """A message as the event log keeps it: long contents (a fetched page) are capped;
    the model itself still gets the whole text."""
    payload = message.model_dump(exclude_none=True)
    content = payload.get("content", "")
    if len(content) > MAX_LOGGED_RESULT:
        payload["content"] = _capped(content)
        payload["truncated"] = True
    return payload


class SingleAgentStrategy(Strategy):
    name = "single_agent"

    async def execute(self, ctx: RunContext) -> str | None:
        agent, run = ctx.agent, ctx.run
        # checked before anything is logged: the log keeps the goal as the checks left it
        goal = await ctx.check_input(run.goal)
        messages: list[Message] = []
        system = agent.system_prompt()
        if system:
            messages.append(Message(role="system", content=system))
        messages.append(Message(role="user", content=goal))
        for message in messages:
            await ctx.emit("message", _message_payload(message))

        tools = {t.name: t for t in ctx.tools()}
        specs = [t.spec for t in tools.values()]
        if agent.options.get("plan_tool", True) and PLAN_TOOL.name not in tools:
            specs.append(PLAN_TOOL)
        provider = ctx.provider()
        options = {k: v for k, v in agent.options.items() if k != "plan_tool"}
        tools_used: list[str] = []

        for step in range(1, run.max_steps + 1):
            await ctx.checkpoint()
            started = time.time()
            request = ChatRequest(messages=messages, model=agent.model, tools=specs or None,
                                  options=options)
            text, calls = await self._complete(ctx, provider.stream(request), step)
            assistant = Message(role="assistant", content=text, tool_calls=calls or None)
            messages.append(assistant)
            await ctx.emit("message", _message_payload(assistant))
            if not calls:  # the stream had the output stage already: `text` is guarded
                await ctx.emit("step", self._step(step, started, True, [], final=True,
                                                  messages=len(messages)))
                await ctx.emit("memory_summary", {"summary": self._summary(
                    step, tools_used, text)})
                return text
            results = await asyncio.gather(*(self._call(ctx, tools, c, step) for c in calls))
            for call, (result_text, _) in zip(calls, results, strict=True):
                tools_used.append(call.name)
                tool_message = Message(role="tool", content=result_text, tool_call_id=call.id,
                                       name=call.name)
                messages.append(tool_message)
                await ctx.emit("message", _message_payload(tool_message))
            summary = [{"tool_name": c.name, "success": ok}
                       for c, (_, ok) in zip(calls, results, strict=True)]
            await ctx.emit("step", self._step(step, started, all(ok for _, ok in results),
                                              summary, final=False, messages=len(messages)))
        raise ArmillaryError(f"no final answer after {run.max_steps} steps",
                             code="max_steps_exceeded")

    # --- pieces --------------------------------------------------------------------

    @staticmethod
    def _step(number: int, started: float, success: bool, calls: list[dict[str, Any]], *,
              final: bool, messages: int) -> dict[str, Any]:
        return {"step_number": number, "started_at": started,
                "duration_seconds": round(time.time() - started, 6), "success": success,
                "tool_calls": calls,
                "state_snapshot": {"final": final, "messages": messages}}

    @staticmethod
    def _summary(steps: int, tools_used: list[str], answer: str | None) -> str:
        used = ", ".join(dict.fromkeys(tools_used)) or "no tools"
        head = (answer or "").strip().replace("\n", " ")
        return (f"Answered in {steps} step{'s' if steps != 1 else ''} using {used}. "
                f"Answer: {head[:200]}{'…' if len(head) > 200 else ''}")

    @staticmethod
    def _failure(error: ErrorInfo, finish_reason: str | None) -> ArmillaryError:
        """What an error chunk fails the run with: a safety block (the checked provider's
        `finish_reason="safety"`) keeps the check's code, like any provider error."""
        if finish_reason == "safety":
            return SafetyBlocked(error.detail, code=error.code)
        return ProviderError(error.detail, code=error.code)

    async def _complete(self, ctx: RunContext, stream: AsyncIterator[ChatChunk], step: int
                        ) -> tuple[str, list[ToolCall]]:
        """Consume one (checked) provider stream; coalesce token events; raise on an error
        chunk. The stream is closed on the way out, also when the run is cancelled."""
        parts: list[str] = []
        calls: list[ToolCall] = []
        pending: list[str] = []
        last_flush = time.monotonic()
        try:
            async for chunk in stream:
                if chunk.error is not None:
                    if pending:  # what was let through before the failure is not lost
                        await ctx.emit("token", {"step_number": step,
                                                 "delta": "".join(pending)})
                    raise self._failure(chunk.error, chunk.finish_reason)
                if chunk.delta:
                    parts.append(chunk.delta)
                    pending.append(chunk.delta)
                    now = time.monotonic()
                    if now - last_flush >= TOKEN_FLUSH_SECONDS:
                        await ctx.emit("token", {"step_number": step, "delta": "".join(pending)})
                        pending, last_flush = [], now
                if chunk.tool_calls:
                    calls.extend(chunk.tool_calls)
                if chunk.done:
                    break
        finally:
            await close_stream(stream)
        if pending:
            await ctx.emit("token", {"step_number": step, "delta": "".join(pending)})
        return "".join(parts), calls

    async def _call(self, ctx: RunContext, tools: dict[str, Tool], call: ToolCall,
                    step: int) -> tuple[str, bool]:
        """Run one tool call; any failure becomes the result text. Returns (text, ok)."""
        started = time.time()
        result: Any
        error: dict[str, str] | None = None
        if call.name == PLAN_TOOL.name and PLAN_TOOL.name not in tools:
            steps = call.arguments.get("steps")
            if isinstance(steps, list) and all(isinstance(s, str) for s in steps):
                reflection = call.arguments.get("reflection")
                await ctx.emit("plan_update", {
                    "current_plan": steps, "step_number": step,
                    "last_reflection": reflection if isinstance(reflection, str) else None})
                result = "plan recorded"
            else:
                error = {"code": "invalid_tool_arguments",
                         "detail": "update_plan needs `steps`: a list of strings"}
        elif call.name not in tools:
            error = {"code": "unknown_tool", "detail": f"no tool named {call.name!r}; "
                     f"available: {', '.join(tools) or 'none'}"}
        else:
            try:  # a tool from `ctx.tools()`: the tool stage runs inside `invoke`
                result = await tools[call.name].invoke(call.arguments)
            except ToolError as exc:
                error = {"code": exc.code, "detail": exc.detail}
                if exc.extra.get("stage") == "tool":  # refused by a check: worth a line
                    await ctx.emit("log", {"level": "warning", "message": exc.detail,
                                           "tool_name": call.name})
            except Exception as exc:
                error = {"code": "tool_error", "detail": f"{type(exc).__name__}: {exc}"}
        ok = error is None
        text = _render(result) if ok else f"error ({error['code']}): {error['detail']}"  # type: ignore[index]
        await ctx.emit("tool_call", {
            "id": call.id, "tool_name": call.name, "parameters": call.arguments,
            "result": _loggable(result) if ok else text, "success": ok,
            "error": error, "duration_seconds": round(time.time() - started, 6),
            "timestamp": started, "step_number": step})
        return text, ok


@hookimpl(trylast=True)
def register_strategies(register: RegisterStrategy) -> None:
    register(SingleAgentStrategy())
