"""Run, tool, safety, chat, provider and rate-limit metrics, read from the kernel's
firehose (`armillary.FIREHOSE`: every event of every run, plus what routes publish there),
so no plugin is instrumented and this plugin imports none of them.

What each event type counts (payload fields read by name):

| event | metrics |
|---|---|
| `queued` (`agent`, `strategy`) | runs_submitted; the run is tracked (queue depth) |
| `running`, `paused`, `queued` again (resume) | queue depth, runs in flight, queue wait |
| `completed`/`failed`/`cancelled`/`stopped`/`interrupted` | runs_total, run duration |
| `tool_call` (`tool_name`, `success`, `duration_seconds`) | tool_calls, tool duration |
| `safety.verdict` (`check`, `stage`, `action`), else `safety` | safety_verdicts |
| `chat.turn` (`agent`, `ok`, `disconnected`, `duration_s`) | chat_turns, turn duration |
| `provider.call` (`provider`, `model`, `ok`, `code`, `duration_s`, `ttft_s`) | provider_* |
| `ratelimit.refused` (`limit`, `route_class`) | rate_limit_refusals_by_limit |
| `ratelimit.storage_error` (`fail`: `open`/`closed`) | rate_limit_storage_errors |

`provider.call` also reads `prompt_tokens` and `completion_tokens`. The kernel
publishes it for every model call made through a guard; the ratelimit plugin publishes
the `ratelimit.*` events.

`safety.verdict` is the safety plugin's audit event: every verdict of every guard (runs,
`/chat`, sessions), allowed ones included, `check` naming the checks that acted
(comma-separated: one sample each). When that event type is declared, it is counted and
the runs' own `safety` events (the same verdicts again) are not.

With a shared bus (Redis) every instance sees every instance's runs, so each exposes the
same run counts and gauges: aggregate them with `max`, not `sum`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from armillary import END_EVENT_TYPES, Event, Run, RunStatus, Subscription
from armillary_metrics.collectors import UNKNOWN, Metrics

log = logging.getLogger("armillary.metrics.runs")

#: runs tracked between their queueing and their end; beyond it the oldest is dropped
#: (and taken out of the gauges), so a firehose without end events cannot grow memory
MAX_TRACKED_RUNS = 10_000
#: what a `safety.verdict` may say
_ACTIONS = frozenset({"allowed", "flagged", "redacted", "blocked", "error"})
#: the check label of a verdict no check acted on (allowed)
NONE = "(none)"
#: the states the gauges show
_QUEUED, _RUNNING, _PAUSED = "queued", "running", "paused"


@dataclass
class _Tracked:
    agent: str
    strategy: str
    state: str
    queued_at: float
    started_at: float | None = None


class FirehoseMetrics:
    """Turns firehose events into metric updates while started."""

    def __init__(self, metrics: Metrics, *, known_tools: set[str] | None = None,
                 log_runs: bool = True, verdict_events: bool = False) -> None:
        self.m = metrics
        self.known_tools = known_tools
        self.log_runs = log_runs
        self.runs: OrderedDict[str, _Tracked] = OrderedDict()
        self._gauges = {_QUEUED: metrics.run_queue_depth,
                        _RUNNING: metrics.runs_in_flight.labels(_RUNNING),
                        _PAUSED: metrics.runs_in_flight.labels(_PAUSED)}
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._handlers = {
            RunStatus.QUEUED.value: self._queued,
            RunStatus.RUNNING.value: self._running,
            RunStatus.PAUSED.value: self._paused,
            "tool_call": self._tool_call,
            **({"safety.verdict": self._verdict} if verdict_events
               else {"safety": self._safety}),
            "chat.turn": self._chat_turn,
            "provider.call": self._provider_call,
            "ratelimit.refused": self._ratelimit_refused,
            "ratelimit.storage_error": self._ratelimit_storage_error,
            **dict.fromkeys(END_EVENT_TYPES, self._ended),
        }

    # --- following -----------------------------------------------------------------

    def seed(self, runs: list[Run]) -> None:
        """Track runs that were queued, running or paused before we subscribed (queued
        again after a restart), so the gauges start right."""
        for run in sorted(runs, key=lambda r: r.created_at):
            state = {RunStatus.QUEUED: _QUEUED, RunStatus.RUNNING: _RUNNING,
                     RunStatus.PAUSED: _PAUSED}.get(run.status)
            if state is None or run.id in self.runs:
                continue
            self._track(run.id, _Tracked(self.m.agent_cap(run.agent),
                                         self.m.strategy_cap(run.strategy), state,
                                         run.created_at, run.started_at))

    async def start(self, subscription: Subscription) -> None:
        self._subscription = subscription
        self._task = asyncio.create_task(self._follow(subscription), name="metrics-firehose")

    async def _follow(self, subscription: Subscription) -> None:
        async for event in subscription:
            self.record(event)

    def drain(self) -> None:
        """Take in what is queued already, so a scrape right after a run counts it."""
        if self._subscription is not None:
            for event in self._subscription.drain():
                self.record(event)

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def record(self, event: Event) -> None:
        """Count one event; types not in the table are ignored (tokens, most of all)."""
        subscription = self._subscription
        if subscription is not None and subscription.lagged:
            subscription.lagged = False
            self.m.firehose_lagged.inc()
        handler = self._handlers.get(event.type)
        if handler is None:
            return
        try:
            handler(event, event.payload)
        except Exception:  # a malformed payload costs its sample, never the follower
            log.debug("metrics: cannot count %s event", event.type, exc_info=True)

    # --- runs ------------------------------------------------------------------------

    def _track(self, run_id: str, tracked: _Tracked) -> None:
        self.runs[run_id] = tracked
        self._gauges[tracked.state].inc()
        while len(self.runs) > MAX_TRACKED_RUNS:
            _, dropped = self.runs.popitem(last=False)
            self._gauges[dropped.state].dec()

    def _move(self, tracked: _Tracked, state: str) -> None:
        if tracked.state != state:
            self._gauges[tracked.state].dec()
            self._gauges[state].inc()
            tracked.state = state

    def _queued(self, event: Event, p: dict[str, Any]) -> None:
        tracked = self.runs.get(event.run_id)
        if tracked is not None:  # resumed before it ever started: queued again
            self._move(tracked, _QUEUED)
            return
        agent, strategy = self.m.agent_cap(p.get("agent")), self.m.strategy_cap(p.get("strategy"))
        self.m.runs_submitted.labels(agent, strategy).inc()
        self._track(event.run_id, _Tracked(agent, strategy, _QUEUED, event.ts))

    def _running(self, event: Event, p: dict[str, Any]) -> None:
        tracked = self.runs.get(event.run_id)
        if tracked is None:
            return
        if tracked.started_at is None:
            tracked.started_at = event.ts
            self.m.run_queue_wait.labels(tracked.agent, tracked.strategy).observe(
                max(event.ts - tracked.queued_at, 0.0))
        self._move(tracked, _RUNNING)

    def _paused(self, event: Event, p: dict[str, Any]) -> None:
        tracked = self.runs.get(event.run_id)
        if tracked is not None:
            self._move(tracked, _PAUSED)

    def _ended(self, event: Event, p: dict[str, Any]) -> None:
        tracked = self.runs.pop(event.run_id, None)
        status = event.type
        if tracked is None:  # queued before we subscribed and not seeded, or dropped
            agent = strategy = UNKNOWN
            since = None
        else:
            self._gauges[tracked.state].dec()
            agent, strategy = tracked.agent, tracked.strategy
            since = tracked.started_at or tracked.queued_at
        self.m.runs.labels(agent, strategy, status).inc()
        duration = max(event.ts - since, 0.0) if since is not None else None
        if duration is not None:
            self.m.run_duration.labels(agent, strategy, status).observe(duration)
        if self.log_runs:
            error = p.get("error")
            code = error.get("code") if isinstance(error, dict) else None
            log.info("run %s %s", event.run_id, status, extra={
                "run_id": event.run_id, "agent": agent, "strategy": strategy,
                "status": status, "duration_s": round(duration, 6) if duration else None,
                "code": code, "steps": p.get("steps_taken")})

    # --- the rest --------------------------------------------------------------------

    def _tool_call(self, event: Event, p: dict[str, Any]) -> None:
        name = p.get("tool_name")
        # the model names the tool: only registered ones become label values
        if self.known_tools is not None and name not in self.known_tools:
            tool = UNKNOWN
        else:
            tool = self.m.tool_cap(name)
        self.m.tool_calls.labels(tool, "true" if p.get("success") else "false").inc()
        duration = p.get("duration_seconds")
        if isinstance(duration, int | float):
            self.m.tool_duration.labels(tool).observe(max(float(duration), 0.0))

    def _safety(self, event: Event, p: dict[str, Any]) -> None:
        stage = p.get("stage") if p.get("stage") in ("input", "output", "tool") else UNKNOWN
        action = p.get("action") if p.get("action") in ("redacted", "blocked") else UNKNOWN
        self.m.safety_verdicts.labels(self.m.check_cap(p.get("check")), stage, action).inc()

    def _verdict(self, event: Event, p: dict[str, Any]) -> None:
        stage = p.get("stage") if p.get("stage") in ("input", "output", "tool") else UNKNOWN
        action = p.get("action") if p.get("action") in _ACTIONS else UNKNOWN
        checks = p.get("check")
        names = [c.strip() for c in checks.split(",") if c.strip()] \
            if isinstance(checks, str) else []
        for name in names or [NONE]:
            self.m.safety_verdicts.labels(self.m.check_cap(name), stage, action).inc()

    def _chat_turn(self, event: Event, p: dict[str, Any]) -> None:
        agent = self.m.agent_cap(p.get("agent"))
        outcome = "ok" if p.get("ok") else "disconnected" if p.get("disconnected") \
            else "error"
        self.m.chat_turns.labels(agent, outcome).inc()
        duration = p.get("duration_s")
        if isinstance(duration, int | float):
            self.m.chat_turn_duration.labels(agent).observe(max(float(duration), 0.0))

    def _provider_call(self, event: Event, p: dict[str, Any]) -> None:
        labels = (self.m.provider_cap(p.get("provider")), self.m.model_cap(p.get("model")))
        outcome = "ok" if p.get("ok", True) else self.m.code_cap(p.get("code") or "error")
        self.m.provider_requests.labels(*labels, outcome).inc()
        for key, histogram in (("duration_s", self.m.provider_duration),
                               ("ttft_s", self.m.provider_ttft)):
            value = p.get(key)
            if isinstance(value, int | float):
                histogram.labels(*labels).observe(max(float(value), 0.0))
        for key, kind in (("prompt_tokens", "prompt"), ("completion_tokens", "completion")):
            value = p.get(key)
            if isinstance(value, int) and value > 0:
                self.m.provider_tokens.labels(*labels, kind).inc(value)

    def _ratelimit_refused(self, event: Event, p: dict[str, Any]) -> None:
        self.m.rate_limit_decisions.labels(self.m.limit_cap(p.get("limit")),
                                           self.m.route_cap(p.get("route_class"))).inc()

    def _ratelimit_storage_error(self, event: Event, p: dict[str, Any]) -> None:
        fail = p.get("fail") if p.get("fail") in ("open", "closed") else UNKNOWN
        self.m.rate_limit_storage_errors.labels(fail).inc()
