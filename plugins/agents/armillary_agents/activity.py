"""Per-agent counters, fed by `agent.activity` events on the kernel's event bus.

Plugins that serve an agent (chat turns now, agent tasks later) publish one event per
finished piece of work on topic `agent-activity` with payload
`{"agent", "ok", "partial", "code", "duration_s", "source", "disconnected"}`; this plugin
subscribes at startup. `disconnected: true` marks work cut short because the client went
away: counted as partial, never as an error (nor does it touch `last_error_code`).
Going through the bus keeps the plugins independent of each other, and with a
shared bus (Redis) every instance counts the work of all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from armillary.events import Subscription
from armillary.models import Event

log = logging.getLogger("armillary.agents")

ACTIVITY_TOPIC = "agent-activity"
ACTIVITY_EVENT = "agent.activity"


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts is not None else None


@dataclass
class AgentCounters:
    task_count: int = 0
    success_count: int = 0
    error_count: int = 0
    partial_count: int = 0
    total_duration_s: float = 0.0
    last_active_at: float | None = None
    last_error_code: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "task_count": self.task_count,
            "success_count": self.success_count,
            "error_count": self.error_count,
            "partial_count": self.partial_count,
            "success_rate": (self.success_count / self.task_count) if self.task_count else 0.0,
            "avg_task_duration": (self.total_duration_s / self.task_count)
            if self.task_count else None,
            "last_active_at": _iso(self.last_active_at),
            "last_error_code": self.last_error_code,
        }


class AgentActivity:
    """Counters by agent name, kept up to date from the bus while started."""

    def __init__(self) -> None:
        self.counters: dict[str, AgentCounters] = {}
        self.created_at = time.time()
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    def record(self, event: Event) -> None:
        if event.type != ACTIVITY_EVENT:
            return
        payload = event.payload
        name = payload.get("agent")
        if not isinstance(name, str):
            return
        c = self.counters.setdefault(name, AgentCounters())
        c.task_count += 1
        if payload.get("ok"):
            c.success_count += 1
        elif not payload.get("disconnected"):
            # a client that hung up is not the agent failing: that turn counts as partial
            c.error_count += 1
            code = payload.get("code")
            c.last_error_code = code if isinstance(code, str) and code else "unknown_error"
        if payload.get("partial"):
            c.partial_count += 1
        duration = payload.get("duration_s")
        if isinstance(duration, int | float):
            c.total_duration_s += float(duration)
        c.last_active_at = event.ts

    def of(self, agent: str) -> AgentCounters:
        return self.counters.get(agent) or AgentCounters()

    async def start(self, subscription: Subscription) -> None:
        self._subscription = subscription
        self._task = asyncio.create_task(self._follow(subscription), name="agents-activity")

    async def _follow(self, subscription: Subscription) -> None:
        async for event in subscription:
            self.record(event)

    def drain(self) -> None:
        """Take in what is already queued, so a read right after a turn counts it (the
        follower task may not have run yet)."""
        drain = getattr(self._subscription, "drain", None)
        if drain is not None:
            for event in drain():
                self.record(event)

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
