"""The seed's request and reply bodies for `/chat`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from armillary import ToolCall, Usage

#: what a client-chosen conversation id may look like (it is echoed in a header)
CONVERSATION_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"


class ChatRequest(BaseModel):
    """POST /chat. Without `conversation_id` a new conversation starts and its id comes back
    in the reply (and the `X-Conversation-Id` header)."""

    # strict, like the task API: `"stream": "yes"` or `"message": 5` are mistakes
    model_config = ConfigDict(strict=True)

    message: str = Field(min_length=1, description="What the user says")
    agent: str | None = Field(default=None, description="Agent name (default: general)")
    stream: bool = Field(default=False, description="Stream the reply as it is generated")
    conversation_id: str | None = Field(default=None, pattern=CONVERSATION_ID_PATTERN)


class ChatResponse(BaseModel):
    """A whole reply (non-stream), and the payload of the SSE `done` event."""

    conversation_id: str
    agent: str
    reply: str
    model: str | None = None
    usage: Usage | None = None
    tool_calls: list[ToolCall] | None = Field(
        default=None, description="Present only when the model asked for tools anyway: "
        "/chat sends none and runs none, so `reply` may then be short or empty")


class ExchangeOut(BaseModel):
    user: str
    assistant: str
    partial: bool
    agent: str | None
    #: when the exchange was made: ISO 8601 UTC, as on every surface
    at: str


class ConversationOut(BaseModel):
    """GET /chat/{conversation_id}: the remembered exchanges, oldest first."""

    conversation_id: str
    turns: list[ExchangeOut]
