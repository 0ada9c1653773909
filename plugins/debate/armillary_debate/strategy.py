"""The `debate` strategy: rounds of arguments among agents, a consensus check after each
round, a synthesis at the end.

Modes (`debate_mode`):

- `structured`: a fixed turn order (the order of `selected_agents`), one argument per
  agent per round. Round 1 is the opening (each agent argues on its own, seeing no one
  else's statement), the last round (when there is more than one) the closing, the
  rounds between rebuttals that quote the arguments so far.
- `freeform`: agents reply to the latest arguments: each turn quotes only the newest
  argument of every other agent. A round is up to `max_iterations_per_round` passes in
  which every agent speaks once (the order rotates); it ends early once a pass leaves
  every agent's position where it was.
- `autonomous`: a moderator agent picks each next speaker (`NEXT: <agent>`) up to
  `max_iterations_per_round` turns a round, and ends the debate when it answers `STOP`.
  A reply naming nobody known (or a moderator that times out or fails) gives the floor to
  the agent that has waited longest, and is recorded as a fallback.

After each round the consensus is measured (`consensus`); the debate stops at the
threshold or after `max_rounds`, then the synthesis agent writes the outcome, which is
the run's result. Each argument is bounded by the time limit (`speaking`); a timeout or
a failed argument is recorded and the debate goes on, unless nobody in a round managed
an argument, which fails the run with the last error's code. Pause and stop take effect
between arguments (`ctx.checkpoint()`); stop also closes an argument in flight.
"""

from __future__ import annotations

import re
from typing import Any

from armillary import ArmillaryError, RunContext, Strategy
from armillary_debate import prompts
from armillary_debate.consensus import Consensus, measure, normalise, stated_position
from armillary_debate.prompts import PHASE_TASKS, Said
from armillary_debate.settings import DebateSettings
from armillary_debate.speaking import Participant, Spoken, speak

NAME = "debate"
_NEXT = re.compile(r"^[\s*_>-]*next[\s*_]*[:=]\s*(.+?)\s*$", re.IGNORECASE)
_STOP = re.compile(r"^[\s*_>-]*stop\b", re.IGNORECASE)


class DebateStrategy(Strategy):
    name = NAME

    def __init__(self, settings: DebateSettings) -> None:
        self.settings = settings

    async def execute(self, ctx: RunContext) -> str | None:
        return await _Debate(ctx, self.settings).run()


class _Debate:
    """One debate's state while it runs."""

    def __init__(self, ctx: RunContext, settings: DebateSettings) -> None:
        meta = ctx.run.metadata
        self.ctx = ctx
        self.config: dict[str, Any] = meta["debate"]
        self.participants = {p["name"]: Participant.model_validate(p)
                             for p in meta["participants"]}
        self.agents: list[str] = list(self.config["selected_agents"])
        self.mode: str = self.config["debate_mode"]
        self.moderator: str | None = meta.get("moderator")
        self.synthesizer: str = meta.get("synthesizer") or self.agents[0]
        limit = float(self.config["time_limit_per_argument"])
        if settings.max_time_per_argument is not None:
            limit = min(limit, settings.max_time_per_argument)
        self.limit = limit
        self.window = settings.transcript_arguments
        self.said: list[Said] = []
        self.positions: dict[str, str | None] = {}
        #: turn number of each agent's latest argument (who has waited longest)
        self.last_turn: dict[str, int] = {}
        self.turns = 0
        self.round_ok = 0
        self.failure: Spoken | None = None

    # --- the debate ------------------------------------------------------------------

    async def run(self) -> str | None:
        cfg = self.config
        threshold = float(cfg["consensus_threshold"])
        await self.ctx.emit("debate.started", {
            "topic": cfg["debate_topic"], "mode": self.mode, "agents": self.agents,
            "max_rounds": cfg["max_rounds"], "consensus_threshold": threshold,
            "time_limit_seconds": self.limit, "moderator": self.moderator})
        reason, rounds = "max_rounds", 0
        consensus = measure(self.agents, self.positions)
        for number in range(1, int(cfg["max_rounds"]) + 1):
            rounds = number
            phase = self._phase(number)
            await self.ctx.checkpoint()
            await self.ctx.emit("debate.round_started", {"round": number, "phase": phase})
            self.round_ok, self.failure = 0, None
            stopped = await self._round(number, phase)
            consensus = measure(self.agents, self.positions)
            reached = consensus.score >= threshold
            await self.ctx.emit("debate.consensus", {
                "round": number, "score": consensus.score, "reached": reached,
                "threshold": threshold, "majority": consensus.majority,
                "positions": consensus.positions})
            if stopped:
                reason = "moderator"
                break
            if self.round_ok == 0 and self.failure is not None:
                failure = self.failure
                raise ArmillaryError(f"no agent managed an argument in round {number}: "
                                     f"{failure.detail}", code=failure.code or "debate_failed")
            if reached:
                reason = "consensus"
                break
        synthesis = await self._synthesise(reason, consensus)
        await self.ctx.emit("debate.concluded", {
            "reason": reason, "rounds": rounds, "consensus_score": consensus.score,
            "consensus_reached": consensus.score >= threshold,
            "majority": consensus.majority, "synthesis": synthesis,
            "synthesis_agent": self.synthesizer})
        return synthesis

    def _phase(self, number: int) -> str:
        if self.mode == "structured":
            if number == 1:
                return "opening"
            return "closing" if number == int(self.config["max_rounds"]) else "rebuttal"
        return "exchange" if self.mode == "freeform" else "moderated"

    async def _round(self, number: int, phase: str) -> bool:
        """Play one round; True when the moderator stopped the debate."""
        if self.mode == "structured":
            await self._structured(number, phase)
        elif self.mode == "freeform":
            await self._freeform(number)
        else:
            return await self._autonomous(number)
        return False

    # --- the modes -------------------------------------------------------------------

    async def _structured(self, number: int, phase: str) -> None:
        for agent in self.agents:
            quoted = [] if phase == "opening" else self.said[-self.window:]
            await self._argue(number, 1, agent, phase, quoted, "Arguments so far",
                              PHASE_TASKS[phase])

    async def _freeform(self, number: int) -> None:
        count = len(self.agents)
        for iteration in range(1, int(self.config["max_iterations_per_round"]) + 1):
            before = dict(self.positions)
            start = (number - 1 + iteration - 1) % count
            for agent in self.agents[start:] + self.agents[:start]:
                latest = self._latest_of_others(agent)
                phase = "reply" if latest else "opening"
                await self._argue(number, iteration, agent, phase, latest,
                                  "Latest arguments", PHASE_TASKS[phase])
            if before and self.positions == before:
                break  # the exchange has settled

    def _latest_of_others(self, agent: str) -> list[Said]:
        latest: dict[str, Said] = {}
        for said in self.said:
            if said.agent != agent:
                latest.pop(said.agent, None)  # re-inserted: keeps the order they spoke in
                latest[said.agent] = said
        return list(latest.values())

    async def _autonomous(self, number: int) -> bool:
        spoken: list[str] = []
        for turn in range(1, int(self.config["max_iterations_per_round"]) + 1):
            await self.ctx.checkpoint()
            agent = await self._moderate(number, turn, spoken)
            if agent is None:
                return True
            await self._argue(number, turn, agent, "turn", self.said[-self.window:],
                              "The debate so far", PHASE_TASKS["turn"])
            spoken.append(agent)
        return False

    async def _moderate(self, number: int, turn: int, spoken: list[str]) -> str | None:
        """Who the moderator gives the floor to; None when it stops the debate."""
        moderator = self.moderator or self.agents[0]
        prompt = prompts.moderator(self.config, self.agents, round=number, turn=turn,
                                   quoted=self.said[-self.window:], spoken_this_round=spoken)
        reply = await speak(self.ctx, self.participants[moderator], prompt, self.limit)
        decision, agent = self._decision(reply.text) if reply.status == "ok" else (None, None)
        fallback = decision is None
        if fallback:
            decision, agent = "next", self._longest_waiting()
        await self.ctx.emit("debate.moderator", {
            "round": number, "moderator": moderator, "decision": decision, "agent": agent,
            "fallback": fallback, "code": reply.code})
        return agent if decision == "next" else None

    def _decision(self, text: str) -> tuple[str | None, str | None]:
        by_name = {normalise(a): a for a in self.agents}
        for line in text.splitlines():
            found = _NEXT.match(line)
            if found:
                agent = by_name.get(normalise(found.group(1)))
                return ("next", agent) if agent is not None else (None, None)
            if _STOP.match(line):
                return "stop", None
        return None, None

    def _longest_waiting(self) -> str:
        return min(self.agents, key=lambda a: (self.last_turn.get(a, 0),
                                               self.agents.index(a)))

    # --- one argument, the synthesis -------------------------------------------------

    async def _argue(self, number: int, iteration: int, agent: str, phase: str,
                     quoted: list[Said], quoted_as: str, task: str) -> None:
        await self.ctx.checkpoint()
        prompt = prompts.argument(self.config, self.agents, agent, round=number, phase=phase,
                                  quoted=quoted, quoted_as=quoted_as, task=task)
        spoken = await speak(self.ctx, self.participants[agent], prompt, self.limit)
        position = stated_position(spoken.text) if spoken.status == "ok" else None
        if position is not None:
            self.positions[agent] = position
        if spoken.text:
            self.said.append(Said(number, phase, agent, spoken.text))
        self.turns += 1
        self.last_turn[agent] = self.turns
        if spoken.status == "ok":
            self.round_ok += 1
        else:
            self.failure = spoken
        await self.ctx.emit("debate.argument", {
            "round": number, "iteration": iteration, "agent": agent, "phase": phase,
            "text": spoken.text, "status": spoken.status, "position": position,
            "code": spoken.code, "duration_seconds": spoken.duration})

    async def _synthesise(self, reason: str, consensus: Consensus) -> str | None:
        await self.ctx.checkpoint()
        prompt = prompts.synthesis(self.config, self.agents, quoted=self.said[-self.window:],
                                   reason=reason, score=consensus.score,
                                   majority=consensus.majority)
        spoken = await speak(self.ctx, self.participants[self.synthesizer], prompt, self.limit)
        await self.ctx.emit("debate.synthesis", {
            "agent": self.synthesizer, "text": spoken.text, "status": spoken.status,
            "code": spoken.code})
        return spoken.text or None
