"""The shared vocabulary: messages, chat requests and replies, tools, events, runs, agents.

Every plugin speaks these types; seed-specific wire formats are renderings of them in the
plugin that owns the route.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant", "tool"]


def new_id(prefix: str = "") -> str:
    """A short random id, optionally prefixed (`run_3f2a…`)."""
    return f"{prefix}{uuid.uuid4().hex}"


class ToolCall(BaseModel):
    """One call the model asks for: a complete name and object arguments."""

    id: str = Field(default_factory=lambda: new_id("call_"))
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Message(BaseModel):
    """One chat message. `tool_call_id` and `name` are set on role "tool" results."""

    role: Role
    content: str = ""
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None


class ToolSpec(BaseModel):
    """What a provider is told about a tool: name, description, JSON schema of arguments."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class Usage(BaseModel):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None


class ChatRequest(BaseModel):
    """A provider-neutral chat request. `model=None` means the provider's default model.

    `options` carries provider-specific knobs (Ollama's `num_ctx`, `keep_alive`, …) that
    providers read when they understand them and ignore otherwise.
    """

    messages: list[Message]
    model: str | None = None
    tools: list[ToolSpec] | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    seed: int | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class ChatResponse(BaseModel):
    """A whole reply: the assistant message (text and/or tool calls), model and usage."""

    message: Message
    model: str
    usage: Usage | None = None
    finish_reason: str | None = None


class ErrorInfo(BaseModel):
    """The error model everywhere: a human sentence and a stable machine code."""

    detail: str
    code: str


class ChatChunk(BaseModel):
    """One piece of a streamed reply.

    `delta` is new text. `tool_calls` carries complete calls (providers assemble fragments).
    The last chunk has `done=True` and, where the provider reports it, `usage`. A stream
    that fails after it started ends with one chunk whose `error` is set and `done=True`.
    """

    delta: str = ""
    tool_calls: list[ToolCall] | None = None
    done: bool = False
    model: str | None = None
    usage: Usage | None = None
    finish_reason: str | None = None
    error: ErrorInfo | None = None


class ModelInfo(BaseModel):
    name: str
    size: int | None = None
    modified_at: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class ProviderHealth(BaseModel):
    reachable: bool
    latency_ms: float | None = None
    detail: str | None = None


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"

    @property
    def finished(self) -> bool:
        return self in _FINISHED


_FINISHED = {
    RunStatus.COMPLETED,
    RunStatus.FAILED,
    RunStatus.CANCELLED,
    RunStatus.STOPPED,
    RunStatus.INTERRUPTED,
}


class Event(BaseModel):
    """The one event envelope. `seq` is monotonic per run, starting at 1."""

    id: str
    run_id: str
    seq: int
    type: str
    ts: float = Field(default_factory=time.time)
    payload: dict[str, Any] = Field(default_factory=dict)


class Run(BaseModel):
    """One execution of a strategy for a goal."""

    id: str = Field(default_factory=lambda: new_id("run_"))
    goal: str
    agent: str = "default"
    #: None: decided at submit (the agent's strategy, else `[kernel] default_strategy`);
    #: a stored run always names the strategy it runs
    strategy: str | None = None
    status: RunStatus = RunStatus.QUEUED
    max_steps: int = 50
    #: queue order: a higher priority starts first; equal ones first come, first served
    #: (the multi-agent seed's low/normal/high/urgent are 0/1/2/3)
    priority: int = 0
    steps_taken: int = 0
    created_at: float = Field(default_factory=time.time)
    started_at: float | None = None
    updated_at: float = Field(default_factory=time.time)
    finished_at: float | None = None
    result: str | None = None
    error: ErrorInfo | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    #: who submitted it (a principal's `name`, once auth is on); None: anyone may see it.
    #: Stores stamp the current principal when it is None (see `RunStore.create_run`).
    owner: str | None = None


class Principal(BaseModel):
    """Who is calling: an API key's or a JWT subject's `name` and its scopes
    (`read`, `submit`, `admin`, or a plugin's own). Set by an auth plugin for the
    duration of a request; read with `current_principal()`."""

    model_config = ConfigDict(frozen=True)

    name: str
    scopes: frozenset[str] = frozenset()
    #: how it was proven: "api_key", "jwt", …
    via: str = "api_key"

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes

    def can_see(self, owner: str | None) -> bool:
        """Whether this principal may see and control what `owner` owns: its own, or
        anything with the `admin` scope (an unowned thing is an admin's only)."""
        return self.is_admin or (owner is not None and owner == self.name)


_PRINCIPAL: ContextVar[Principal | None] = ContextVar("armillary_principal", default=None)


def current_principal() -> Principal | None:
    """The principal of the request (or run) being served; None when no auth plugin
    authenticated one (auth off, or a public route)."""
    return _PRINCIPAL.get()


@contextmanager
def acting_as(principal: Principal | None) -> Iterator[None]:
    """Make `principal` the current one for the block (what an auth plugin does around
    each request; tasks started inside inherit it)."""
    token = _PRINCIPAL.set(principal)
    try:
        yield
    finally:
        _PRINCIPAL.reset(token)


def owner_filter() -> str | None:
    """The owner a listing should be restricted to: the current principal's name, or
    None (everything) when there is no principal or it is an admin."""
    principal = _PRINCIPAL.get()
    return None if principal is None or principal.is_admin else principal.name


def visible(owner: str | None) -> bool:
    """Whether the current principal may see what `owner` owns (always, without one)."""
    principal = _PRINCIPAL.get()
    return principal is None or principal.can_see(owner)


class AgentSpec(BaseModel):
    """An agent: who it is (instructions), what it talks to, which tools it may use.

    `tools=None` means every enabled tool; `provider=None` the default provider.
    `instructions_file` is resolved against the folder of plugins.toml.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    instructions: str | None = None
    instructions_file: Path | None = None
    provider: str | None = None
    model: str | None = None
    tools: list[str] | None = None
    strategy: str | None = None
    max_steps: int | None = Field(default=None, ge=1)
    options: dict[str, Any] = Field(default_factory=dict)

    def system_prompt(self) -> str:
        """The instructions text, read from `instructions_file` when that is set."""
        if self.instructions is not None:
            return self.instructions
        if self.instructions_file is not None:
            return self.instructions_file.read_text(encoding="utf-8").strip()
        return ""


class Verdict(BaseModel):
    """A safety check's answer. `redacted`, when set, replaces the content checked."""

    allowed: bool = True
    check: str = ""
    reason: str | None = None
    code: str | None = None
    redacted: str | None = None
