"""POST /api/orchestrate (root-agent selection) and the orchestration push channel,
WebSocket /api/orchestration/{session_id}.

Scoring (deterministic, no model call, so it costs microseconds and runs on a Pi):

1. Each agent's profile is the set of words of its name, `handoff_description` and
   `keywords` (lower-cased, split on non-letters, words under 3 letters and common stop
   words dropped, a trailing "s" removed so "refunds" matches "refund").
2. raw(agent) = |profile ∩ words of the user's message|
   + `orchestration_agent_weight` (0.5) * |profile ∩ words of the agent's last message|
   + `orchestration_stickiness` (0.5) for the current agent (so a weak signal does not
   flap between agents).
3. scores are raw / Σ raw (they sum to 1). When no word matched any agent there is no
   signal: every score is 0 and the current agent (else the scenario's default root)
   stays.
4. The recommendation is the best score; ties go to the current agent, then the default
   root, then scenario order. `switch` is true when it differs from `current_agent`.

Everything is validated against the scenario: an unknown scenario or current agent is a
404. With `session_id`, a recommended switch is pushed as an `agent_switch` event
(`reason: "orchestrate"`) on that session's channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from typing import Literal

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field

from armillary import (
    InvalidRequest,
    KernelDep,
    NotFound,
    close_stream,
    follow_topic,
    iso,
    to_json,
)
from armillary_realtime import events, sessions
from armillary_realtime.scenarios import get_agent, get_scenario
from armillary_realtime.settings import AgentSettings, AgentsSettings, ScenarioSettings

_STOP = (
    "the and for you your with that this from have has are was were will would can could "
    "should what when where which who how not but all any our out about into than then "
    "them they their there here its i'm please help want need like just agent")
STOP_WORDS = frozenset(_STOP.split())
MAX_TEXT = 16_000


def words(text: str) -> set[str]:
    out = set()
    for word in re.findall(r"[a-z]+", text.lower()):
        if len(word) < 3 or word in STOP_WORDS:
            continue
        out.add(word[:-1] if len(word) > 3 and word.endswith("s") else word)
    return out


def profile(agent: AgentSettings) -> set[str]:
    return words(" ".join([agent.name.replace("_", " ").replace("-", " "),
                           agent.handoff_description, *agent.keywords]))


class OrchestrateMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant", "agent", "system"]
    content: str = Field(max_length=MAX_TEXT)


class OrchestrateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scenario_id: str | None = None
    current_agent: str | None = None
    user_message: str | None = Field(default=None, max_length=MAX_TEXT)
    agent_message: str | None = Field(default=None, max_length=MAX_TEXT)
    #: a transcript instead: its last user and last assistant message are used
    messages: list[OrchestrateMessage] = Field(default_factory=list, max_length=200)
    session_id: str | None = Field(default=None, max_length=200)


class OrchestrationDecision(BaseModel):
    scenario_id: str
    recommended_root: str
    current_agent: str | None
    switch: bool
    scores: dict[str, float]
    reason: str
    matched: list[str] = Field(default_factory=list)


def decide(scenario_id: str, scenario: ScenarioSettings, current: str | None,
           user: str, said: str, settings: AgentsSettings) -> OrchestrationDecision:
    user_words, said_words = words(user), words(said)
    raw: dict[str, float] = {}
    hits: dict[str, list[str]] = {}
    for agent in scenario.agents:
        mine = profile(agent)
        matched_user, matched_said = mine & user_words, mine & said_words
        raw[agent.name] = (len(matched_user)
                           + settings.orchestration_agent_weight * len(matched_said)
                           + (settings.orchestration_stickiness
                              if agent.name == current else 0.0))
        hits[agent.name] = sorted(matched_user | matched_said)
    # no word matched any agent: nothing to decide on (the stickiness alone says nothing)
    total = sum(raw.values()) if any(hits.values()) else 0.0
    order = [a.name for a in scenario.agents]
    preference = [n for n in (current, scenario.root) if n] + order

    def rank(name: str) -> tuple[float, int]:
        return (-raw[name], preference.index(name))

    best = min(order, key=rank)
    if total == 0:
        best = current or scenario.root
        scores = dict.fromkeys(order, 0.0)
        reason = "no signal in the messages: keeping " + (
            "the current agent" if current else "the scenario's default root")
    else:
        scores = {n: round(raw[n] / total, 4) for n in order}
        if hits[best]:
            reason = (f"{best!r} matched {', '.join(repr(w) for w in hits[best])}"
                      + (" (and is the current agent)" if best == current else ""))
        else:
            reason = f"{best!r} is the current agent and nothing matched another agent better"
    return OrchestrationDecision(scenario_id=scenario_id, recommended_root=best,
                                 current_agent=current, switch=current is not None
                                 and best != current, scores=scores, reason=reason,
                                 matched=hits[best])


def make_router(settings: AgentsSettings) -> APIRouter:
    router = APIRouter(tags=["realtime"])

    @router.post("/api/orchestrate", response_model=OrchestrationDecision, responses={
        404: {"description": "`scenario_not_found`, `agent_not_found` for a "
                             "`current_agent` the scenario does not have, or "
                             "`session_not_found` (another principal's SDK session)"},
        422: {"description": "No message to decide on (`empty_input`), or an invalid body"}})
    async def orchestrate(body: OrchestrateRequest, kernel: KernelDep
                          ) -> OrchestrationDecision:
        """Recommend the root agent for the last user and agent messages (the scoring is
        in the module docs and docs/api.md)."""
        scenario = get_scenario(settings, body.scenario_id)
        sid = body.scenario_id or next(k for k, v in settings.scenarios.items()
                                       if v is scenario)
        if body.current_agent is not None:
            get_agent(scenario, body.current_agent, scenario_id=sid)
        user, said = body.user_message, body.agent_message
        for message in reversed(body.messages):
            if user is None and message.role == "user":
                user = message.content
            if said is None and message.role in ("assistant", "agent"):
                said = message.content
        if not (user or said or "").strip():
            raise InvalidRequest("give user_message, agent_message or messages with a "
                                 "user or assistant message", code="empty_input")
        decision = decide(sid, scenario, body.current_agent, user or "", said or "",
                          settings)
        owner = None
        if body.session_id:
            owner = await sessions.channel_owner(kernel, settings, body.session_id)
        if body.session_id and decision.switch:
            switch = events.AgentSwitch(
                session_id=body.session_id, from_agent=body.current_agent,
                to_agent=decision.recommended_root, reason="orchestrate",
                scores=decision.scores, decision_reason=decision.reason)
            await events.push(kernel, body.session_id, events.AGENT_SWITCH, switch,
                              owner=owner)
        return decision

    @router.websocket("/api/orchestration/{session_id}")
    async def channel(ws: WebSocket, session_id: str, kernel: KernelDep) -> None:
        """A session's push channel: `agent_switch` and `tool_result` messages
        (`{"type", "session_id", "run_id", "payload", "ts"}`), `heartbeat` when idle.
        The first message, `subscribed`, says the subscription is live. An SDK session
        another principal owns (auth on) is closed at once with code 4404
        (`session_not_found`)."""
        await ws.accept()
        try:
            owner = await sessions.channel_owner(kernel, settings, session_id)
        except NotFound:
            await ws.close(4404, "session_not_found")
            return
        batches = follow_topic(kernel.bus, events.session_topic(session_id, owner),
                               stop=kernel.stopping)

        async def pump() -> None:
            # subscribed before `subscribed` goes out: nothing published after it is lost
            first = asyncio.ensure_future(anext(batches))
            await asyncio.sleep(0)
            await ws.send_text(to_json({"type": "subscribed", "session_id": session_id}))
            try:
                batch = await first
            except StopAsyncIteration:
                return
            while True:
                if not batch:
                    await ws.send_text(to_json({"type": "heartbeat",
                                                "payload": {"ts": iso(time.time())}}))
                for event in batch:
                    await ws.send_text(to_json({
                        "type": event.type.removeprefix("realtime."),
                        "session_id": session_id, "run_id": event.run_id,
                        "payload": event.payload, "ts": iso(event.ts)}))
                try:
                    batch = await anext(batches)
                except StopAsyncIteration:  # the server is stopping
                    return

        async def listen() -> None:
            with contextlib.suppress(WebSocketDisconnect):
                while True:
                    await ws.receive_text()  # the channel takes nothing; a frame is ignored

        tasks = [asyncio.create_task(pump()), asyncio.create_task(listen())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await close_stream(batches)
            with contextlib.suppress(Exception):
                await ws.close(1001 if kernel.stopping.is_set() else 1000)

    return router
