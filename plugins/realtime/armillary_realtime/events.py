"""The event types the realtime plugin emits, and the per-session push topic.

Run events (in an SDK turn's log, declared with `register_event_types`):

- `realtime.agent_switch` — the active agent changed (a `transfer_to_<agent>` handoff)
- `realtime.turn` — the turn's outcome: `final_output`, `new_items_len`, `tool_calls`,
  `last_agent` (what `/api/sdk/session/message` answers)

The built-in `message`, `token` (with `agent`), `tool_call` and `safety` are reused.

Push topic `realtime.session.<session_id>` on the event bus (with auth on, one per
owner and session id: `session_topic`): `agent_switch` (from a
handoff, or from `/api/orchestrate` recommending another root) and `tool_result` (a tool
run by an SDK turn or by `/api/tools/execute` for that session). The WebSocket
`/api/orchestration/{session_id}` follows it; through the bus it works across instances
once the bus is shared (Redis).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from armillary import Event, Kernel, new_id

AGENT_SWITCH = "realtime.agent_switch"
TURN = "realtime.turn"
TOOL_RESULT = "realtime.tool_result"


class AgentSwitch(BaseModel):
    model_config = ConfigDict(extra="allow")

    session_id: str
    from_agent: str | None
    to_agent: str
    reason: Literal["handoff", "orchestrate"] | str = "handoff"


class TurnOutcome(BaseModel):
    model_config = ConfigDict(extra="allow")

    session_id: str
    final_output: str
    new_items_len: int
    tool_calls: list[str] = Field(default_factory=list)
    last_agent: str


class ToolResultPushed(BaseModel):
    model_config = ConfigDict(extra="allow")

    session_id: str
    name: str
    ok: bool
    call_id: str | None = None
    result: Any = None
    error: dict[str, Any] | None = None


EVENT_TYPES: dict[str, type[BaseModel]] = {
    AGENT_SWITCH: AgentSwitch, TURN: TurnOutcome, TOOL_RESULT: ToolResultPushed}


def session_topic(session_id: str, owner: str | None = None) -> str:
    """The push topic of a session; with auth on, of the session as its owner sees it
    (`sessions.channel_owner`), so one id used by two keys is two channels."""
    if owner is None:
        return f"realtime.session.{session_id}"
    return f"realtime.session.{len(owner)}:{owner}:{session_id}"


async def push(kernel: Kernel, session_id: str, type: str, payload: BaseModel,
               *, run_id: str | None = None, owner: str | None = None) -> None:
    """Publish on the session's push topic (live only: a topic has no log)."""
    await kernel.bus.publish(session_topic(session_id, owner), Event(
        id=new_id("evt_"), run_id=run_id or session_id, seq=0, type=type,
        payload=payload.model_dump(mode="json")))
