"""Orchestration strategies and the context a run gives them.

A strategy turns a goal into an answer by talking to providers and tools. It reports
everything it does through `ctx.emit(...)` (each call appends one event to the run's log)
and calls `ctx.checkpoint()` between steps so pause and cancel take effect there.
"""

from __future__ import annotations

import abc
from typing import Any

from armillary.models import AgentSpec, Event, Run
from armillary.providers import Provider
from armillary.safety import SafetyPipeline
from armillary.tools import Tool


class RunContext(abc.ABC):
    """What the runner hands a strategy for one run."""

    run: Run
    agent: AgentSpec
    safety: SafetyPipeline

    @abc.abstractmethod
    async def emit(self, type: str, payload: dict[str, Any]) -> Event:
        """Append an event to the run's log and publish it."""

    @abc.abstractmethod
    async def checkpoint(self) -> None:
        """Wait while the run is paused; raise `asyncio.CancelledError` when it is cancelled
        or stopped. Call it at every step boundary."""

    @abc.abstractmethod
    def provider(self, name: str | None = None) -> Provider:
        """The named provider, or the agent's, or the default one."""

    @abc.abstractmethod
    def tools(self) -> list[Tool]:
        """The tools this run's agent may use."""


class Strategy(abc.ABC):
    """Registered by name through `register_strategies`."""

    name: str = ""

    @abc.abstractmethod
    async def execute(self, ctx: RunContext) -> str | None:
        """Run to completion and return the final answer. Raise to fail the run; a
        `ProviderError` is recorded with its code."""
