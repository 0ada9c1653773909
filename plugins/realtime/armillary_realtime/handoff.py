"""The `handoff` strategy: an agent loop over several agents with handoffs, as the OpenAI
Agents SDK runs one, on any provider (Ollama as well as OpenAI).

Each agent is offered its own tools plus one `transfer_to_<agent>` tool per agent it may
hand off to (the Agents SDK's presentation of a handoff). A step: the active agent's
instructions as the system prompt, the session's transcript, the tool specs → a streamed
reply through `ctx.provider()` (the input and output safety stages). Tool calls run
concurrently through `ctx.tools()` (the tool stage); a `transfer_to_<agent>` call makes
that agent the active one for the next step (one handoff per step: a second one in the
same reply is answered with an error). The loop ends when an agent answers without
calling a tool, or after `max_steps` (`max_steps_exceeded`).

The run's metadata says what to run (`HandoffPlan`); the transcript lives in the
session's conversation (`armillary_realtime.sessions`), which the strategy appends to as
items are produced, so a turn cut short keeps what was done. Handoffs and tool results
are published on the session's push topic as well as in the run's log.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from armillary import (
    SAFETY_FINISH,
    ArmillaryError,
    ChatChunk,
    ChatRequest,
    ConversationItem,
    ConversationPolicy,
    Kernel,
    Message,
    ProviderError,
    RunContext,
    SafetyBlocked,
    Strategy,
    Tool,
    ToolCall,
    ToolError,
    ToolSpec,
    close_stream,
)
from armillary_realtime import events
from armillary_realtime.sessions import to_messages

NAME = "handoff"
TRANSFER_PREFIX = "transfer_to_"
TOKEN_FLUSH_SECONDS = 0.05
MAX_LOGGED = 16_384


class PlannedAgent(BaseModel):
    name: str
    instructions: str = ""
    handoff_description: str = ""
    handoffs: list[str] = Field(default_factory=list)
    #: tool names (None: every tool the run's agent may use)
    tools: list[str] | None = None
    model: str | None = None
    provider: str | None = None


class HandoffPlan(BaseModel):
    """`run.metadata` of a handoff run."""

    session_id: str
    kind: str
    policy: dict[str, Any] = Field(default_factory=dict)
    agents: list[PlannedAgent]
    start_agent: str
    #: the session's model, for agents that name none
    model: str | None = None


def transfer_name(agent: str) -> str:
    return TRANSFER_PREFIX + re.sub(r"[^A-Za-z0-9_-]", "_", agent)


def transfer_spec(target: PlannedAgent) -> ToolSpec:
    description = f"Handoff to the {target.name} agent to handle the request."
    if target.handoff_description:
        description += " " + target.handoff_description
    return ToolSpec(name=transfer_name(target.name), description=description,
                    parameters={"type": "object", "properties": {}, "required": []})


def _render(result: Any) -> str:
    if isinstance(result, str):
        return result
    try:
        return json.dumps(result, default=str)
    except (TypeError, ValueError):
        return str(result)


@dataclass
class Outcome:
    """One tool call's result: `text` is what the model gets back."""

    call: ToolCall
    text: str
    result: Any = None
    error: dict[str, str] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def logged(self) -> Any:
        """The result as logs and the push channel carry it: whole when small, else the
        text cut at MAX_LOGGED characters."""
        return self.result if len(self.text) <= MAX_LOGGED else self.text[:MAX_LOGGED] + "…"


class HandoffStrategy(Strategy):
    name = NAME

    def __init__(self) -> None:
        #: set by the plugin's `startup` hook: the store and bus this strategy writes to
        self.kernel: Kernel | None = None

    def bind(self, kernel: Kernel) -> None:
        self.kernel = kernel

    async def execute(self, ctx: RunContext) -> str | None:
        kernel = self.kernel
        if kernel is None:
            raise ArmillaryError("the handoff strategy runs only in a started server with "
                                 "the realtime plugin", code="strategy_unavailable")
        try:
            plan = HandoffPlan.model_validate(ctx.run.metadata)
        except ValidationError:
            raise ArmillaryError("a handoff run needs the session plan the SDK session "
                                 "routes put in its metadata (run it through "
                                 "/api/sdk/session/message)", code="invalid_run") from None
        store = kernel.conversations(plan.kind, ConversationPolicy(**plan.policy))
        agents = {a.name: a for a in plan.agents}
        if plan.start_agent not in agents:
            raise ArmillaryError(f"no agent {plan.start_agent!r} in this session",
                                 code="agent_not_found")
        goal = await ctx.check_input(ctx.run.goal)
        conversation = await store.get(plan.session_id)
        history = to_messages(conversation.items) if conversation is not None else []
        # the push channel is the session owner's (auth on: see sessions.channel_owner)
        owner = (await store.append(plan.session_id,
                                    ConversationItem(role="user", content=goal))).owner
        messages = [*history, Message(role="user", content=goal)]
        await ctx.emit("message", {"role": "user", "content": goal})

        available = {t.name: t for t in ctx.tools()}
        current = agents[plan.start_agent]
        new_items = 0
        tool_names: list[str] = []
        for step in range(1, ctx.run.max_steps + 1):
            await ctx.checkpoint()
            started = time.time()
            tools = self._tools_of(current, available)
            transfers = {transfer_name(n): agents[n] for n in current.handoffs if n in agents}
            specs = [t.spec for t in tools.values()] + [transfer_spec(a)
                                                        for a in transfers.values()]
            request = ChatRequest(
                messages=[Message(role="system", content=current.instructions), *messages],
                model=current.model or plan.model, tools=specs or None)
            text, calls = await self._complete(
                ctx, ctx.provider(current.provider).stream(request), step, current.name)
            messages.append(Message(role="assistant", content=text, tool_calls=calls or None))
            await store.append(plan.session_id, ConversationItem(
                role="assistant", content=text, agent=current.name,
                data={"tool_calls": [c.model_dump() for c in calls]} if calls else {}))
            new_items += (1 if text or not calls else 0) + len(calls)
            await ctx.emit("message", {"role": "assistant", "content": text[:MAX_LOGGED],
                                       "agent": current.name})
            if not calls:
                await ctx.emit("step", {"step_number": step, "success": True,
                                        "duration_seconds": round(time.time() - started, 6)})
                await ctx.emit(events.TURN, {
                    "session_id": plan.session_id, "final_output": text,
                    "new_items_len": new_items, "tool_calls": tool_names,
                    "last_agent": current.name})
                return text
            tool_names += [c.name for c in calls]
            first = next((c for c in calls if c.name in transfers), None)
            handoff = transfers[first.name] if first is not None else None
            done: list[Outcome] = await asyncio.gather(*(
                self._call(ctx, tools, c, step) if c.name not in transfers
                else self._transfer(ctx, c, transfers[c.name] if c is first else None, step)
                for c in calls))
            for outcome in done:
                call = outcome.call
                messages.append(Message(role="tool", content=outcome.text,
                                        tool_call_id=call.id, name=call.name))
                await store.append(plan.session_id, ConversationItem(
                    role="tool", content=outcome.text, agent=current.name,
                    data={"call_id": call.id, "name": call.name, "ok": outcome.ok}))
                new_items += 1
                if call.name not in transfers:
                    await events.push(kernel, plan.session_id, events.TOOL_RESULT,
                                      events.ToolResultPushed(
                                          session_id=plan.session_id, name=call.name,
                                          ok=outcome.ok, call_id=call.id,
                                          result=outcome.logged, error=outcome.error),
                                      run_id=ctx.run.id, owner=owner)
            await ctx.emit("step", {"step_number": step,
                                    "success": all(o.ok for o in done),
                                    "duration_seconds": round(time.time() - started, 6),
                                    "tool_calls": [{"tool_name": c.name} for c in calls]})
            if handoff is not None:
                switch = events.AgentSwitch(session_id=plan.session_id,
                                            from_agent=current.name, to_agent=handoff.name,
                                            reason="handoff")
                await ctx.emit(events.AGENT_SWITCH, switch.model_dump())
                await events.push(kernel, plan.session_id, events.AGENT_SWITCH, switch,
                                  run_id=ctx.run.id, owner=owner)
                current = handoff
        raise ArmillaryError(f"no final answer after {ctx.run.max_steps} steps",
                             code="max_steps_exceeded")

    @staticmethod
    def _tools_of(agent: PlannedAgent, available: dict[str, Tool]) -> dict[str, Tool]:
        if agent.tools is None:
            return dict(available)
        return {n: available[n] for n in agent.tools if n in available}

    async def _complete(self, ctx: RunContext, stream: AsyncIterator[ChatChunk], step: int,
                        agent: str) -> tuple[str, list[ToolCall]]:
        """Consume one checked provider stream, emitting `token` events (with the agent)
        at most every TOKEN_FLUSH_SECONDS; raise on an error chunk (a safety block keeps
        the check's code). The stream is closed on the way out, a cancel included."""
        parts: list[str] = []
        calls: list[ToolCall] = []
        pending: list[str] = []
        last = time.monotonic()

        async def flush() -> None:
            nonlocal pending, last
            if pending:
                await ctx.emit("token", {"step_number": step, "delta": "".join(pending),
                                         "agent": agent})
                pending, last = [], time.monotonic()

        try:
            async for chunk in stream:
                if chunk.error is not None:
                    await flush()
                    if chunk.finish_reason == SAFETY_FINISH:
                        raise SafetyBlocked(chunk.error.detail, code=chunk.error.code)
                    raise ProviderError(chunk.error.detail, code=chunk.error.code)
                if chunk.delta:
                    parts.append(chunk.delta)
                    pending.append(chunk.delta)
                    if time.monotonic() - last >= TOKEN_FLUSH_SECONDS:
                        await flush()
                if chunk.tool_calls:
                    calls.extend(chunk.tool_calls)
                if chunk.done:
                    break
        finally:
            await close_stream(stream)
        await flush()
        return "".join(parts), calls

    @staticmethod
    async def _transfer(ctx: RunContext, call: ToolCall, target: PlannedAgent | None,
                        step: int) -> Outcome:
        """A `transfer_to_<agent>` call: `target` is the agent handed off to, None for a
        second handoff in the same reply (answered with an error)."""
        if target is not None:
            outcome = Outcome(call, json.dumps({"assistant": target.name}),
                              result={"assistant": target.name})
        else:
            outcome = Outcome(call, "error (multiple_handoffs): only one handoff per turn; "
                              "this one was ignored", error={
                                  "code": "multiple_handoffs",
                                  "detail": "only one handoff per turn"})
        await ctx.emit("tool_call", {
            "id": call.id, "tool_name": call.name, "parameters": call.arguments,
            "result": outcome.text, "success": outcome.ok, "error": outcome.error,
            "step_number": step, "handoff": True})
        return outcome

    async def _call(self, ctx: RunContext, tools: dict[str, Tool], call: ToolCall,
                    step: int) -> Outcome:
        started = time.time()
        error: dict[str, str] | None = None
        result: Any = None
        if call.name not in tools:
            error = {"code": "unknown_tool", "detail": f"no tool named {call.name!r}; "
                     f"available: {', '.join(tools) or 'none'}"}
        else:
            try:  # checked tools: the tool stage runs inside `invoke`
                result = await tools[call.name].invoke(call.arguments)
            except ToolError as exc:
                error = {"code": exc.code, "detail": exc.detail}
            except Exception as exc:
                error = {"code": "tool_error", "detail": f"{type(exc).__name__}: {exc}"}
        if error is not None:
            outcome = Outcome(call, f"error ({error['code']}): {error['detail']}", error=error)
        else:
            outcome = Outcome(call, _render(result), result=result)
        await ctx.emit("tool_call", {
            "id": call.id, "tool_name": call.name, "parameters": call.arguments,
            "result": outcome.logged if outcome.ok else outcome.text, "success": outcome.ok,
            "error": error, "duration_seconds": round(time.time() - started, 6),
            "step_number": step})
        return outcome
