"""Per-agent counters, fed by the kernel's firehose (every event, on one bus topic).

Two kinds of work are counted, both read from events other plugins and the kernel
publish, so this plugin imports none of them:

- `chat.turn` (the chat plugin, one per turn): payload `{agent, ok, partial,
  disconnected, code, duration_s}`.
- runs: the `queued` event names the run's agent; its end event (`completed`, `failed`,
  `interrupted`, `cancelled`, `stopped`) counts it. A run cancelled or stopped by its
  caller is partial, not an error. Its duration runs from its first `running` event
  (time waiting in a queue is not the agent's) to its end, as a TaskResult's
  `execution_time_seconds` does; a run that never started counts none.

`disconnected: true` marks work cut short because the client went away: counted as
partial, never as an error (nor does it touch `last_error_code`). With a shared bus
(Redis) every instance counts the work of all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from armillary import END_EVENT_TYPES, LIFECYCLE_EVENT_TYPES, Event, RunStatus, Subscription, iso

log = logging.getLogger("armillary.agents")

#: what the chat plugin publishes per turn (by name: this plugin does not import it)
CHAT_TURN_EVENT = "chat.turn"
#: runs whose agent is remembered until their end event; beyond it the oldest are dropped
#: (their ends go uncounted) so a firehose without end events cannot grow memory
MAX_OPEN_RUNS = 10_000
#: ends that are the caller's doing, not the agent failing
_STOPPED_BY_CALLER = frozenset({RunStatus.CANCELLED.value, RunStatus.STOPPED.value})


#: the events that change what /agents and /system/status show (token events do not)
CHANGES = LIFECYCLE_EVENT_TYPES | {CHAT_TURN_EVENT}


def iso_or_none(ts: float | None) -> str | None:
    """ISO 8601 UTC with `Z` (`armillary.iso`), or None."""
    return iso(ts) if ts is not None else None


@dataclass
class AgentCounters:
    task_count: int = 0
    success_count: int = 0
    error_count: int = 0
    partial_count: int = 0
    total_duration_s: float = 0.0
    #: tasks with a duration (a run cancelled while queued has none)
    timed_count: int = 0
    last_active_at: float | None = None
    last_error_code: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "task_count": self.task_count,
            "success_count": self.success_count,
            "error_count": self.error_count,
            "partial_count": self.partial_count,
            "success_rate": (self.success_count / self.task_count) if self.task_count else 0.0,
            "avg_task_duration": (self.total_duration_s / self.timed_count)
            if self.timed_count else None,
            "last_active_at": iso_or_none(self.last_active_at),
            "last_error_code": self.last_error_code,
        }


class AgentActivity:
    """Counters by agent name, kept up to date from the firehose while started."""

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        #: called after an event that changes an agent's status (not token events)
        self.on_change = on_change
        self.counters: dict[str, AgentCounters] = {}
        self.created_at = time.time()
        #: run id → (agent, first started at), for runs whose end has not been seen yet
        self.open_runs: OrderedDict[str, tuple[str, float | None]] = OrderedDict()
        #: agent → how many of `open_runs` are its
        self._open_by_agent: Counter[str] = Counter()
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    def record(self, event: Event) -> bool:
        """Count one firehose event (events of other types are ignored); True when it
        changed what the status routes show."""
        self._record(event)
        return event.type in CHANGES

    def _record(self, event: Event) -> None:
        if event.type == CHAT_TURN_EVENT:
            self._count_turn(event)
        elif event.type == RunStatus.QUEUED.value:
            agent = event.payload.get("agent")
            if isinstance(agent, str) and event.run_id not in self.open_runs:
                self.open_runs[event.run_id] = (agent, None)
                self._open_by_agent[agent] += 1
                while len(self.open_runs) > MAX_OPEN_RUNS:
                    _, (dropped, _) = self.open_runs.popitem(last=False)
                    self._open_by_agent[dropped] -= 1
        elif event.type == RunStatus.RUNNING.value:
            opened = self.open_runs.get(event.run_id)
            if opened is not None and opened[1] is None:  # (a resume is not a start)
                self.open_runs[event.run_id] = (opened[0], event.ts)
        elif event.type in END_EVENT_TYPES:
            self._count_run_end(event)

    def _count(self, agent: str, *, ok: bool, partial: bool, disconnected: bool,
               code: Any, duration: Any, at: float) -> None:
        c = self.counters.setdefault(agent, AgentCounters())
        c.task_count += 1
        if ok:
            c.success_count += 1
        elif not disconnected:
            # a client that hung up is not the agent failing: that turn counts as partial
            c.error_count += 1
            c.last_error_code = code if isinstance(code, str) and code else "unknown_error"
        if partial:
            c.partial_count += 1
        if isinstance(duration, int | float):
            c.total_duration_s += float(duration)
            c.timed_count += 1
        c.last_active_at = at

    def _count_turn(self, event: Event) -> None:
        payload = event.payload
        name = payload.get("agent")
        if not isinstance(name, str):
            return
        self._count(name, ok=bool(payload.get("ok")), partial=bool(payload.get("partial")),
                    disconnected=bool(payload.get("disconnected")), code=payload.get("code"),
                    duration=payload.get("duration_s"), at=event.ts)

    def _count_run_end(self, event: Event) -> None:
        opened = self.open_runs.pop(event.run_id, None)
        if opened is None:  # queued before we subscribed (or dropped): not ours to count
            return
        agent, started_at = opened
        self._open_by_agent[agent] -= 1
        error = event.payload.get("error")
        code = error.get("code") if isinstance(error, dict) else None
        stopped = event.type in _STOPPED_BY_CALLER
        self._count(agent, ok=event.type == RunStatus.COMPLETED.value, partial=stopped,
                    disconnected=stopped, code=code or event.type,
                    duration=max(event.ts - started_at, 0.0) if started_at is not None
                    else None, at=event.ts)

    def of(self, agent: str) -> AgentCounters:
        return self.counters.get(agent) or AgentCounters()

    async def start(self, subscription: Subscription) -> None:
        self._subscription = subscription
        self._task = asyncio.create_task(self._follow(subscription), name="agents-activity")

    async def _follow(self, subscription: Subscription) -> None:
        async for event in subscription:
            changed = self.record(event)
            if changed and self.on_change is not None:
                self.on_change()

    def active_runs(self, agent: str) -> int:
        """Runs of `agent` queued or in progress (seen queued, end not yet seen)."""
        return self._open_by_agent[agent]

    def drain(self) -> None:
        """Take in what is already queued, so a read right after a turn counts it (the
        follower task may not have run yet)."""
        drain = getattr(self._subscription, "drain", None)
        if drain is not None:
            changed = False
            for event in drain():
                changed = self.record(event) or changed
            if changed and self.on_change is not None:
                self.on_change()

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
