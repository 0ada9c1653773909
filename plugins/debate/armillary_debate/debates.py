"""Debates as the store keeps them.

`initialize` stores the configuration as a conversation of kind `debate` (so an
initialized debate survives a restart with the SQLite store); `start` submits a run with
the `debate` strategy under the debate's id — from then on the debate *is* that run
(status, events, `/v1/tasks/{id}`, restarts: the runner's rules) and the record is
dropped. The runner has no way to hold a submitted run back (a queued run starts as soon
as a worker is free), which is why the split is a record first and a run at start.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from armillary import (
    Conflict,
    ConversationPolicy,
    Conversations,
    Event,
    InvalidRequest,
    Kernel,
    NotFound,
    Run,
    iso,
    new_id,
    visible,
)
from armillary_debate.schemas import (
    EVENT_TYPES,
    ArgumentView,
    ConsensusView,
    DebateConfigurationRequest,
    DebateView,
    ErrorView,
    OutcomeView,
    RoundView,
)
from armillary_debate.settings import DebateSettings
from armillary_debate.strategy import NAME

KIND = "debate"
#: how many debate-or-not answers the updates socket remembers about run ids
KNOWN_LIMIT = 10_000


@dataclass
class DebateState:
    """What the plugin keeps in `kernel.state["debate"]`."""

    #: serialises `start`, so one debate becomes one run
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: run id → (is it a debate, its owner), for the updates socket's filters
    known: dict[str, tuple[bool, str | None]] = field(default_factory=dict)

    async def lookup(self, kernel: Kernel, run_id: str) -> tuple[bool, str | None]:
        found = self.known.get(run_id)
        if found is None:
            run = await kernel.store.get_run(run_id)
            found = (run is not None and run.strategy == NAME,
                     run.owner if run is not None else None)
            if len(self.known) >= KNOWN_LIMIT:
                self.known.clear()
            self.known[run_id] = found
        return found


def records(kernel: Kernel) -> Conversations:
    """Initialized debates not started yet (conversations of kind `debate`)."""
    settings: DebateSettings = kernel.settings[KIND]
    return kernel.conversations(KIND, ConversationPolicy(
        ttl_seconds=settings.initialized_ttl_seconds,
        max_conversations=settings.max_initialized))


def state(kernel: Kernel) -> DebateState:
    return kernel.state.setdefault(KIND, DebateState())  # type: ignore[no-any-return]


def _not_found(debate_id: str) -> NotFound:
    return NotFound(f"no debate {debate_id!r}", code="debate_not_found")


# --- initialize ---------------------------------------------------------------------------


def _roles(body: DebateConfigurationRequest, settings: DebateSettings) -> dict[str, str | None]:
    rules = body.debate_rules
    for key in ("moderator", "synthesizer"):
        if key in rules and not isinstance(rules[key], str):
            raise InvalidRequest(f"debate_rules.{key}: expected an agent name, got "
                                 f"{type(rules[key]).__name__}", code="invalid_debate_rules")
    moderator = None
    if body.debate_mode == "autonomous":
        moderator = rules.get("moderator") or settings.moderator_agent or \
            body.selected_agents[0]
    synthesizer = rules.get("synthesizer") or moderator or body.selected_agents[0]
    return {"moderator": moderator, "synthesizer": synthesizer}


def check_agents(kernel: Kernel, body: DebateConfigurationRequest,
                 settings: DebateSettings) -> dict[str, str | None]:
    """The moderator and synthesizer; 422 when an agent is unknown, none is selected or
    one is selected twice."""
    agents = body.selected_agents
    if not agents:
        raise InvalidRequest("selected_agents: select at least one agent", code="no_agents")
    twice = sorted({a for a in agents if agents.count(a) > 1})
    if twice:
        raise InvalidRequest(f"selected_agents: selected more than once: {', '.join(twice)}",
                             code="duplicate_agents", extra={"duplicate_agents": twice})
    roles = _roles(body, settings)
    wanted = [*agents, *(r for r in roles.values() if r is not None and r not in agents)]
    unknown = [a for a in dict.fromkeys(wanted) if a not in kernel.registry.agents]
    if unknown:
        have = ", ".join(kernel.registry.agents) or "none"
        raise InvalidRequest(f"unknown agents: {', '.join(unknown)} (have: {have})",
                             code="unknown_agents", extra={"unknown_agents": unknown})
    return roles


async def initialize(kernel: Kernel, body: DebateConfigurationRequest,
                     settings: DebateSettings) -> str:
    check_agents(kernel, body, settings)
    debate_id = new_id("debate_")
    await records(kernel).open(debate_id, metadata={
        "config": body.model_dump(mode="json"), "created_at": time.time()})
    return debate_id


# --- start and control ----------------------------------------------------------------


def _participants(kernel: Kernel, names: list[str]) -> list[dict[str, Any]]:
    default = kernel.provider().name
    out = []
    for name in names:
        spec = kernel.agent(name)
        out.append({"name": name, "instructions": spec.system_prompt(),
                    "provider": spec.provider or default, "model": spec.model,
                    "options": spec.options})
    return out


async def start(kernel: Kernel, debate_id: str, settings: DebateSettings) -> Run:
    async with state(kernel).lock:
        run = await kernel.store.get_run(debate_id)
        if run is not None and not visible(run.owner):
            raise _not_found(debate_id)  # another key's debate does not exist for this one
        if run is not None:
            raise Conflict(f"debate {debate_id!r} was started already (it is "
                           f"{run.status.value})", code="debate_already_started",
                           extra={"status": run.status.value})
        record = await records(kernel).get(debate_id)
        if record is None:
            raise _not_found(debate_id)
        body = DebateConfigurationRequest.model_validate(record.metadata["config"])
        roles = check_agents(kernel, body, settings)  # plugins.toml may have changed
        names = list(dict.fromkeys([*body.selected_agents,
                                    *(r for r in roles.values() if r is not None)]))
        # owned by who initialized it (an admin starting it does not take it over)
        run = Run(id=debate_id, goal=body.debate_topic, agent=body.selected_agents[0],
                  strategy=NAME, owner=record.owner, metadata={
                      "debate": body.model_dump(mode="json"),
                      "participants": _participants(kernel, names), **roles,
                      "initialized_at": record.metadata.get("created_at")})
        run = await kernel.runner.submit(run)
        state(kernel).known[run.id] = (True, run.owner)
        await records(kernel).delete(debate_id)
        return run


async def _debate_run(kernel: Kernel, debate_id: str) -> Run:
    run = await kernel.store.get_run(debate_id)
    if run is not None and not visible(run.owner):
        raise _not_found(debate_id)
    if run is not None and run.strategy == NAME:
        return run
    if run is None and await records(kernel).get(debate_id) is not None:
        raise Conflict(f"debate {debate_id!r} has not been started (start it first)",
                       code="debate_not_started", extra={"status": "initialized"})
    raise _not_found(debate_id)


async def control(kernel: Kernel, debate_id: str, action: str,
                  settings: DebateSettings) -> Run:
    """Apply a control action. Pause and resume follow the runner (pausing a paused
    debate or resuming a running one changes nothing); 409 for a debate not started
    (pause, resume, stop), started twice, or already finished."""
    if action == "start":
        return await start(kernel, debate_id, settings)
    run = await _debate_run(kernel, debate_id)
    if run.status.finished:
        raise _finished(run)
    runner = kernel.runner
    call = {"pause": runner.pause, "resume": runner.resume, "stop": runner.stop_run}[action]
    try:
        return await call(debate_id)
    except Conflict:
        raise _finished(await _debate_run(kernel, debate_id)) from None


def _finished(run: Run) -> Conflict:
    return Conflict(f"debate {run.id!r} is already {run.status.value}",
                    code="debate_finished", extra={"status": run.status.value})


# --- the view -------------------------------------------------------------------------


async def exists(kernel: Kernel, debate_id: str) -> bool:
    """Whether `view` would find the debate (without reading its events)."""
    run = await kernel.store.get_run(debate_id)
    if run is not None and run.strategy == NAME:
        return visible(run.owner)
    return await records(kernel).get(debate_id) is not None


async def view(kernel: Kernel, debate_id: str) -> DebateView:
    """The debate as the current principal may see it: another key's is not found."""
    run = await kernel.store.get_run(debate_id)
    if run is not None and run.strategy == NAME and not visible(run.owner):
        raise _not_found(debate_id)
    if run is None or run.strategy != NAME:
        record = await records(kernel).get(debate_id)
        if record is None:
            raise _not_found(debate_id)
        config = record.metadata["config"]
        return _view(debate_id, "initialized", config, [],
                     created=record.metadata.get("created_at") or record.created_at)
    events: list[Event] = []
    while True:
        page = await kernel.store.events(run.id, after_seq=events[-1].seq if events else 0,
                                         types=list(EVENT_TYPES), limit=1000)
        events += page
        if len(page) < 1000:
            break
    return _view(run.id, run.status.value, run.metadata["debate"], events,
                 created=run.metadata.get("initialized_at") or run.created_at, run=run)


def _view(debate_id: str, status: str, config: dict[str, Any], events: list[Event], *,
          created: float, run: Run | None = None) -> DebateView:
    rounds: dict[int, RoundView] = {}
    outcome: OutcomeView | None = None
    for event in events:
        p = event.payload
        if event.type == "debate.round_started":
            rounds[p["round"]] = RoundView(round=p["round"], phase=p["phase"])
            continue
        current = rounds.get(p.get("round", -1))
        if event.type == "debate.argument" and current is not None:
            current.arguments.append(ArgumentView(
                agent=p["agent"], iteration=p["iteration"], phase=p["phase"], text=p["text"],
                status=p["status"], position=p.get("position"), code=p.get("code"),
                duration_seconds=p["duration_seconds"], timestamp=iso(event.ts)))
            current.arguments_by_agent.setdefault(p["agent"], []).append(p["text"])
        elif event.type == "debate.consensus" and current is not None:
            current.consensus = ConsensusView.model_validate(p)
        elif event.type == "debate.moderator" and current is not None:
            current.moderator_decisions.append(
                {k: p.get(k) for k in ("moderator", "decision", "agent", "fallback")})
        elif event.type == "debate.concluded":
            outcome = OutcomeView.model_validate(p)
    ordered = [rounds[k] for k in sorted(rounds)]
    error = run.error if run is not None else None
    return DebateView(
        debate_id=debate_id, status=status, debate_topic=config["debate_topic"],
        problem_statement=config["problem_statement"], debate_mode=config["debate_mode"],
        selected_agents=config["selected_agents"], configuration=config,
        current_round=ordered[-1].round if ordered else 0, rounds=ordered,
        consensus_scores=[r.consensus.score for r in ordered if r.consensus is not None],
        final_outcome=outcome,
        error=ErrorView(detail=error.detail, code=error.code) if error else None,
        created_at=iso(created),
        started_at=iso(run.started_at) if run and run.started_at else None,
        finished_at=iso(run.finished_at) if run and run.finished_at else None,
        stream_url=f"/v1/stream/tasks/{debate_id}" if run is not None else None)


