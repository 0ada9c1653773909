"""Orchestration strategies and the context a run gives them.

A strategy turns a goal into an answer by talking to providers and tools. It reports
everything it does through `ctx.emit(...)` (each call appends one event to the run's log)
and calls `ctx.checkpoint()` between steps so pause and cancel take effect there.

Safety comes with the context: `ctx.provider()` and `ctx.tools()` are checked through the
run's `Guard` (input before each model call, output on the stream, the tool stage before
each tool), so a strategy gets every registered check without calling one. Bypassing
them takes `ctx.unchecked_provider()`, on purpose.
"""

from __future__ import annotations

import abc
from typing import Any

from armillary._guard import Guard
from armillary._models import AgentSpec, Event, Run
from armillary._providers import Provider
from armillary._safety import SafetyPipeline
from armillary._tools import Tool


class RunContext(abc.ABC):
    """What the runner hands a strategy for one run."""

    run: Run
    agent: AgentSpec
    safety: SafetyPipeline
    #: the safety pipeline bound to this run: what `provider()` and `tools()` go through
    guard: Guard

    @abc.abstractmethod
    async def emit(self, type: str, payload: dict[str, Any]) -> Event:
        """Append an event to the run's log and publish it."""

    @abc.abstractmethod
    async def checkpoint(self) -> None:
        """Wait while the run is paused; raise `asyncio.CancelledError` when it is cancelled
        or stopped. Call it at every step boundary."""

    def provider(self, name: str | None = None) -> Provider:
        """The named provider, or the agent's, or the default one, checked by the run's
        guard: `chat` and `stream` run the input and output stages (a blocked stream ends
        with an error chunk whose code is the check's)."""
        return self.guard.provider(self.unchecked_provider(name))

    @abc.abstractmethod
    def unchecked_provider(self, name: str | None = None) -> Provider:
        """The provider itself, with no safety checks: only for a strategy that runs the
        checks its own way (and says so in its docs)."""

    def tools(self) -> list[Tool]:
        """The tools this run's agent may use, each checked by the `tool` stage before it
        runs (a refusal raises `ToolError`, code from the check)."""
        return [self.guard.tool(t) for t in self.unchecked_tools()]

    @abc.abstractmethod
    def unchecked_tools(self) -> list[Tool]:
        """The agent's tools with no `tool`-stage check."""

    async def check_input(self, text: str) -> str:
        """The input stage on `text`: the text as allowed (maybe redacted); raises
        `SafetyBlocked` (fails the run with the check's code)."""
        return await self.guard.check_input(text)

    async def check_output(self, text: str) -> str:
        """The output stage on a whole text (a streamed reply from `provider()` has had
        it already)."""
        return await self.guard.check_output(text)


class Strategy(abc.ABC):
    """Registered by name through `register_strategies`."""

    name: str = ""

    @abc.abstractmethod
    async def execute(self, ctx: RunContext) -> str | None:
        """Run to completion and return the final answer. Raise to fail the run; a
        `ProviderError` is recorded with its code."""
