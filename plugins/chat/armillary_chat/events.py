"""The event /chat publishes: one `chat.turn` per turn served, on the kernel's firehose.

The envelope is a real one: `run_id` is the conversation id and `seq` the conversation's
item count after the turn (`armillary_chat.memory`), so it only grows within a
conversation; a turn that left nothing in memory (it failed, was blocked, or the client
left before any reply) repeats the count, and with memory off it is 0. Other plugins
(the `agents` counters) subscribe to the firehose and read the payload by its field
names; none of them imports this module.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

TURN_EVENT = "chat.turn"


class ChatTurn(BaseModel):
    """The payload of `chat.turn`."""

    agent: str = Field(description="The agent that served the turn")
    ok: bool = Field(description="The reply was complete")
    partial: bool = Field(description="A reply (or the wait for it) was cut short: by the "
                          "client leaving or by a provider failure after text came")
    disconnected: bool = Field(description="The client went away before the reply was "
                               "complete (not an agent error)")
    code: str | None = Field(default=None, description="The error code when not ok "
                             "(`client_closed_request` for a disconnect)")
    duration_s: float = Field(description="From the request to the end of the turn")
