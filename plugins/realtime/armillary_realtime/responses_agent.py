"""`POST /api/agent/run`: one server-side agent turn over the Responses API (§19).

The `messages` become the Responses `input`; the kernel's tools (`agent_tools`, or the
request's `tools`, or every enabled tool) are offered as function tools with
`parallel_tool_calls` on. Every `function_call` the model returns is run at once (up to
`max_parallel_tools` together), each through the guard's `tool` stage, and its result —
or its error, with a code — is in the reply. One turn: the results are not sent back to
the model; a later turn does that with them in `messages` (`{"type": "function_call",
call_id, name, arguments}` and `{"type": "function_call_output", call_id, output}` items
besides the `{role, content}` messages).

The last user message goes through the `input` checks first (a redaction is what the
model sees, a block is the error answer); the reply's text through the `output` checks.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_jsonable_python

from armillary import (
    ArmillaryError,
    InvalidRequest,
    KernelDep,
    Tool,
    cancel_on_disconnect,
    to_json,
)
from armillary_realtime.responses import output_text
from armillary_realtime.upstream import (
    UpstreamSettings,
    platform_client,
    upstream_errors,
    upstream_settings,
)


class AgentMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: optional, as in a Responses `input` item
    type: Literal["message"] | None = None
    role: Literal["user", "assistant", "system", "developer"]
    content: str


class FunctionCallItem(BaseModel):
    """A tool call of an earlier turn (a `tool_calls` entry of its reply), so a later
    turn can give the model the call and its result."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["function_call"]
    call_id: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=128)
    #: the arguments as JSON text (as the Responses API takes them) or as an object
    arguments: str | dict[str, Any] = "{}"


class FunctionCallOutputItem(BaseModel):
    """The result of an earlier turn's tool call (its `output`, or its `error`)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1, max_length=200)
    #: text, or any JSON (sent on as JSON text)
    output: Any = None


def input_item(item: AgentMessage | FunctionCallItem | FunctionCallOutputItem
               ) -> dict[str, Any]:
    """A request item as the Responses API's `input` takes it."""
    if isinstance(item, AgentMessage):
        return item.model_dump(exclude_none=True)
    if isinstance(item, FunctionCallItem):
        arguments = item.arguments if isinstance(item.arguments, str) else \
            json.dumps(item.arguments)
        return {"type": "function_call", "call_id": item.call_id, "name": item.name,
                "arguments": arguments}
    output = item.output if isinstance(item.output, str) else \
        to_json(to_jsonable_python(item.output, fallback=str))
    return {"type": "function_call_output", "call_id": item.call_id, "output": output}


class AgentRunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: the conversation so far: messages, and earlier turns' tool calls and results
    messages: list[AgentMessage | FunctionCallItem | FunctionCallOutputItem] = Field(
        min_length=1)
    instructions: str | None = None
    model: str | None = None
    #: kernel tool names to offer (default: `agent_tools`, else every enabled tool)
    tools: list[str] | None = None
    parallel_tool_calls: bool = True


class ToolCallResult(BaseModel):
    call_id: str
    name: str
    arguments: dict[str, Any]
    ok: bool
    output: Any = None
    error: dict[str, str] | None = None


class AgentRunReply(BaseModel):
    id: str
    model: str | None = None
    #: every text segment of the reply, in order, and them joined
    segments: list[str]
    output_text: str
    tool_calls: list[ToolCallResult]
    usage: dict[str, Any] | None = None


def _tools(kernel: Any, names: list[str] | None) -> dict[str, Tool]:
    registered = {name: entry[1] for name, entry in kernel.registry.tools.items()}
    if names is None:
        return registered
    unknown = [n for n in names if n not in registered]
    if unknown:
        raise InvalidRequest(f"unknown tools: {', '.join(unknown)} (enabled: "
                             f"{', '.join(registered) or 'none'})", code="tool_not_found")
    return {n: registered[n] for n in names}


def _arguments(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw or "{}")
    except (TypeError, ValueError):
        return {"_raw": raw}
    return value if isinstance(value, dict) else {"_raw": raw}


async def run_turn(kernel: Any, settings: UpstreamSettings,
                   body: AgentRunRequest) -> AgentRunReply:
    client = platform_client(kernel, settings)
    tools = _tools(kernel, body.tools if body.tools is not None else settings.agent_tools)
    guard = kernel.guard(route="realtime.agent_run")
    messages = [input_item(m) for m in body.messages]
    for message in reversed(messages):
        if message.get("role") == "user":
            message["content"] = await guard.check_input(message["content"])
            break
    request: dict[str, Any] = {"model": body.model or settings.agent_model,
                               "input": messages}
    instructions = body.instructions or settings.agent_instructions
    if instructions:
        request["instructions"] = instructions
    if tools:
        request["tools"] = [{"type": "function", "name": t.name,
                             "description": t.description, "parameters": t.parameters,
                             "strict": False} for t in tools.values()]
        request["parallel_tool_calls"] = body.parallel_tool_calls
    response = await client.create_response(request)

    segments = []
    for item in response.get("output") or []:
        if isinstance(item, dict) and item.get("type") == "message":
            text = output_text({"output": [item]})
            if text:
                segments.append(await guard.check_output(text))
    calls = [item for item in response.get("output") or []
             if isinstance(item, dict) and item.get("type") == "function_call"]
    limit = asyncio.Semaphore(settings.max_parallel_tools)

    async def call(item: dict[str, Any]) -> ToolCallResult:
        name = str(item.get("name", ""))
        arguments = _arguments(item.get("arguments"))
        result = ToolCallResult(call_id=str(item.get("call_id") or item.get("id") or ""),
                                name=name, arguments=arguments, ok=False)
        tool = tools.get(name)
        if tool is None:
            result.error = {"code": "tool_not_found",
                            "detail": f"the model called {name!r}, which is not offered"}
            return result
        async with limit:
            try:
                # as JSON: a tool may return anything (NaN, datetimes, models, objects)
                output = await guard.tool(tool).invoke(arguments)
                result.output = json.loads(to_json(to_jsonable_python(output, fallback=str)))
                result.ok = True
            except ArmillaryError as exc:
                result.error = {"code": exc.code, "detail": exc.detail}
        return result

    results = await asyncio.gather(*(call(c) for c in calls))
    return AgentRunReply(id=str(response.get("id", "")), model=response.get("model"),
                         segments=segments, output_text="".join(segments),
                         tool_calls=list(results), usage=response.get("usage"))


def add_routes(router: APIRouter, settings: Any) -> None:
    upstream = upstream_settings(settings)

    @router.post("/api/agent/run", summary="One server-side agent turn (Responses API)",
                 responses=upstream_errors({
                     400: "A safety check blocked the last user message (the check's "
                          "code)",
                     422: "An invalid body, or `tools` names a tool no plugin registers "
                          "(`tool_not_found`)"}))
    async def agent_run(request: Request, kernel: KernelDep,
                        body: AgentRunRequest) -> AgentRunReply:
        """`{id, model, segments, output_text, tool_calls: [{call_id, name, arguments, ok,
        output, error}], usage}`."""
        return await cancel_on_disconnect(request, run_turn(kernel, upstream, body))
