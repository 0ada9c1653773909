"""The `[plugins.chat]` section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ChatSettings(BaseModel):
    """Settings for `/chat` and its conversation memory (kept in the kernel's store, so
    `[kernel] store` decides whether it survives a restart; the limits below are the
    store policy of the conversation kind "chat").

    ```toml
    [plugins.chat]
    default_agent = "general"
    memory_enabled = true
    memory_ttl_seconds = 3600
    memory_max_turns = 10
    memory_max_conversations = 1000
    ```
    """

    model_config = ConfigDict(extra="forbid")

    #: the agent a request that names none talks to
    default_agent: str = "general"
    #: keep history per conversation; off = every request stands alone, no store use
    memory_enabled: bool = True
    #: a conversation idle this long is forgotten
    memory_ttl_seconds: float = Field(default=3600.0, gt=0)
    #: exchanges (user message + reply) kept per conversation; older ones drop off
    memory_max_turns: int = Field(default=10, ge=1)
    #: conversations held at once; beyond it the least recently used is forgotten
    memory_max_conversations: int = Field(default=1000, ge=1)
    #: longest accepted message, in characters
    max_message_chars: int = Field(default=16_000, ge=1)
