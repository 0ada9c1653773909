"""SDK sessions: the kernel's conversations (kind `realtime.sdk`) in the run store, so
a restart with SQLite keeps them.

A session's conversation metadata holds its spec (`SessionSpec`: agent, instructions,
model, scenario); its items are the transcript: the user's inputs, each agent's replies
(with the tool calls it asked for in `data.tool_calls`) and tool results (`data.call_id`).
`transcript_items` renders them as the OpenAI Agents SDK lists a session's items:
`{"type": "message", "role", "content"}`, `{"type": "function_call", "call_id", "name",
"arguments"}` and `{"type": "function_call_output", "call_id", "output"}` (a handoff is a
`transfer_to_<agent>` function call, as the SDK presents it).

Ownership (auth on): a session belongs to the principal that created it (the kernel's
conversations stamp it); for any other non-admin principal it does not exist (404
`session_not_found`), and its push channel is closed to them (`check_access`).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from armillary import (
    ConversationItem,
    ConversationPolicy,
    Conversations,
    Kernel,
    Message,
    NotFound,
    ToolCall,
    current_principal,
)
from armillary_realtime.settings import AgentsSettings

KIND = "realtime.sdk"


class SessionSpec(BaseModel):
    """What a session was created with (its conversation's metadata)."""

    agent_name: str
    instructions: str | None = None
    model: str | None = None
    scenario_id: str | None = None


def policy(settings: AgentsSettings) -> ConversationPolicy:
    return ConversationPolicy(ttl_seconds=settings.sdk_session_ttl_seconds,
                              max_items=settings.sdk_max_items,
                              max_conversations=settings.sdk_max_sessions)


def conversations(kernel: Kernel, settings: AgentsSettings) -> Conversations:
    return kernel.conversations(KIND, policy(settings))


async def channel_owner(kernel: Kernel, settings: AgentsSettings, session_id: str
                        ) -> str | None:
    """Whose push channel `session_id` names for the caller: an SDK session's owner, else
    (a browser-only Realtime session id) the current principal's name; None without
    auth. Raises 404 `session_not_found` for an SDK session another principal owns (auth
    on, `armillary.current_principal()` not its owner nor an admin)."""
    view = conversations(kernel, settings)
    try:
        await view.check_access(session_id)
    except NotFound:
        raise NotFound(f"no session {session_id!r}", code="session_not_found",
                       extra={"session_id": session_id}) from None
    principal = current_principal()
    if principal is None:
        return None
    found = await view.get(session_id)
    return found.owner if found is not None else principal.name


def to_messages(items: list[ConversationItem]) -> list[Message]:
    """The transcript as provider messages (system prompts are added per step)."""
    out: list[Message] = []
    for item in items:
        if item.role == "user":
            out.append(Message(role="user", content=item.content))
        elif item.role == "assistant":
            calls = [ToolCall.model_validate(c) for c in item.data.get("tool_calls") or ()]
            out.append(Message(role="assistant", content=item.content,
                               tool_calls=calls or None))
        elif item.role == "tool":
            out.append(Message(role="tool", content=item.content,
                               tool_call_id=item.data.get("call_id"),
                               name=item.data.get("name")))
    return out


def render_item(item: ConversationItem) -> list[dict[str, Any]]:
    """One stored item as Agents-SDK-style transcript items (an assistant turn with tool
    calls is its text, if any, then one `function_call` per call)."""
    if item.role == "user":
        return [{"type": "message", "role": "user", "content": item.content}]
    if item.role == "tool":
        return [{"type": "function_call_output", "call_id": item.data.get("call_id"),
                 "name": item.data.get("name"), "output": item.content,
                 "agent": item.agent}]
    out: list[dict[str, Any]] = []
    if item.content or not item.data.get("tool_calls"):
        out.append({"type": "message", "role": "assistant", "content": item.content,
                    "agent": item.agent, **({"partial": True} if item.partial else {})})
    for call in item.data.get("tool_calls") or ():
        out.append({"type": "function_call", "call_id": call.get("id"),
                    "name": call.get("name"),
                    "arguments": json.dumps(call.get("arguments") or {}),
                    "agent": item.agent})
    return out


def transcript_items(items: list[ConversationItem]) -> list[dict[str, Any]]:
    return [rendered for item in items for rendered in render_item(item)]


def last_agent(items: list[ConversationItem]) -> str | None:
    """The agent that spoke last (where the next message starts)."""
    for item in reversed(items):
        if item.role in ("assistant", "tool") and item.agent:
            return item.agent
    return None
