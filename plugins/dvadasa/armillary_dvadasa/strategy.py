"""The `dvadasa` strategy: the selected heads in parallel, then the Witness.

A run's `metadata["dvadasa"]` (set by the routes) names the heads, the intent and the
session history the heads see; a run submitted some other way (`/v1/tasks` with agent
`dvadasa`) asks the heads chosen by `select_heads_for_complexity` for its goal.

Every model call goes through `ctx.provider()`, so the run's guard applies the input
checks to what a head or the Witness is asked and the output checks to what it answers,
streamed with the hold-back window: a redacted span never reaches a summary, the
Witness or the client. Each head streams under its own timeout; a head that fails, times
out or is blocked is reported (`status`, `error`) and the Witness works with the rest.
No head answering fails the run with 500 `dvadasa_failed`. Cancelling the run (a
WebSocket client that leaves, `DELETE /v1/tasks/{id}`) cancels every head's task, which
closes its provider stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

from armillary import (
    SAFETY_FINISH,
    ArmillaryError,
    ChatRequest,
    Message,
    RunContext,
    Strategy,
    close_stream,
)
from armillary_dvadasa.agreement import measure
from armillary_dvadasa.events import (
    HEAD_COMPLETE,
    HEADS_RUNNING,
    SYNTHESIS,
    WITNESS_RUNNING,
    HeadContribution,
    HeadsRunning,
    HeadStatus,
    Synthesis,
    WitnessRunning,
)
from armillary_dvadasa.heads import Head
from armillary_dvadasa.intent import select_heads_for_complexity
from armillary_dvadasa.settings import DvadasaSettings

NAME = "dvadasa"
DISSENT_NOTE = (" The user asked to see the dissent: after the synthesis, list each head "
                "that disagrees and its position.")


class DvadasaFailed(ArmillaryError):
    code = "dvadasa_failed"
    status_code = 500


class PostCheckFailed(ArmillaryError):
    code = "post_check_failed"
    status_code = 400


@dataclass
class Reply:
    """What one streamed model call produced."""

    text: str = ""
    status: HeadStatus = "ok"
    error: dict[str, Any] | None = None
    model: str | None = None
    ttft_ms: float | None = None
    duration_ms: float = 0.0


async def stream_reply(ctx: RunContext, provider: str | None, request: ChatRequest,
                       timeout: float) -> Reply:
    """Stream one call through the run's guard, under `timeout`; never raises but for a
    cancel (which closes the upstream stream first)."""
    out = Reply(model=request.model)
    parts: list[str] = []
    started = time.perf_counter()
    stream = None
    try:
        async with asyncio.timeout(timeout):
            stream = ctx.provider(provider).stream(request)
            async for chunk in stream:
                if chunk.error is not None:
                    out.status = "blocked" if chunk.finish_reason == SAFETY_FINISH else "failed"
                    out.error = {"detail": chunk.error.detail, "code": chunk.error.code}
                    break
                if chunk.model:
                    out.model = chunk.model
                if chunk.delta:
                    if out.ttft_ms is None:
                        out.ttft_ms = round((time.perf_counter() - started) * 1000, 2)
                    parts.append(chunk.delta)
                if chunk.done:
                    break
    except TimeoutError:
        out.status = "timeout"
        out.error = {"detail": f"no complete answer within {timeout:g} s",
                     "code": "head_timeout"}
    except ArmillaryError as exc:  # an unknown provider, a provider refusing the call
        out.status = "failed"
        out.error = {"detail": exc.detail, "code": exc.code}
    finally:
        if stream is not None:
            await close_stream(stream)
        out.duration_ms = round((time.perf_counter() - started) * 1000, 2)
    out.text = "".join(parts).strip()
    if out.status == "ok" and not out.text:
        out.status = "failed"
        out.error = {"detail": "the model answered nothing", "code": "empty_answer"}
    return out


def summarise(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] or text[:limit]
    return cut.rstrip(" ,;:") + "…"


class DvadasaStrategy(Strategy):
    name = NAME

    def __init__(self, settings: DvadasaSettings) -> None:
        self.settings = settings
        self.heads = {h.id: h for h in settings.resolved_heads()}

    def _plan(self, ctx: RunContext) -> tuple[list[Head], str, list[list[str]]]:
        meta = ctx.run.metadata.get(NAME) or {}
        ids = meta.get("heads") or select_heads_for_complexity(
            ctx.run.goal, list(self.heads), simple=self.settings.simple_heads,
            medium=self.settings.medium_heads)
        unknown = [i for i in ids if i not in self.heads]
        if unknown:
            raise ArmillaryError(f"unknown heads: {', '.join(unknown)}", code="unknown_head",
                                 status_code=400)
        return [self.heads[i] for i in ids], str(meta.get("intent", "normal")), \
            list(meta.get("history") or [])

    def _messages(self, system: str, history: list[list[str]], prompt: str) -> list[Message]:
        messages = [Message(role="system", content=system)]
        for user, assistant in history:
            messages += [Message(role="user", content=user),
                         Message(role="assistant", content=assistant)]
        return [*messages, Message(role="user", content=prompt)]

    async def _head(self, ctx: RunContext, head: Head, history: list[list[str]],
                    announced: asyncio.Event) -> HeadContribution:
        s = self.settings
        request = ChatRequest(messages=self._messages(head.system_prompt(), history,
                                                      ctx.run.goal),
                              model=head.model or s.model)
        provider = head.provider or s.provider
        reply = await stream_reply(ctx, provider, request, s.head_timeout_seconds)
        contribution = HeadContribution(
            head_id=head.id, name=head.name, status=reply.status,
            summary=summarise(reply.text, s.summary_chars) if reply.status == "ok" else "",
            answer=reply.text if reply.status == "ok" else "", provider=provider,
            model=reply.model, error=reply.error, ttft_ms=reply.ttft_ms,
            duration_ms=reply.duration_ms)
        await announced.wait()  # `heads_running` is in the log before any `head_complete`
        await ctx.emit(HEAD_COMPLETE, contribution.model_dump())
        return contribution

    async def execute(self, ctx: RunContext) -> str | None:
        heads, intent, history = self._plan(ctx)
        await ctx.checkpoint()
        announced = asyncio.Event()
        # a TaskGroup: cancelling the run cancels every head (closing its stream). The
        # heads' calls start before `heads_running` is written, so that write is off the
        # critical path; their `head_complete` events wait for it
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._head(ctx, h, history, announced),
                                       name=f"head-{h.id}") for h in heads]
            await ctx.emit(HEADS_RUNNING, HeadsRunning(
                heads=[h.id for h in heads], intent=intent,
                head_timeout_seconds=self.settings.head_timeout_seconds).model_dump())
            announced.set()
        contributions = [t.result() for t in tasks]
        answered = {c.head_id: c.answer for c in contributions if c.status == "ok"}
        if not answered:
            raise DvadasaFailed(f"all {len(heads)} heads failed: " + "; ".join(
                f"{c.head_id}: {(c.error or {}).get('code')}" for c in contributions))
        agreement = measure(answered, len(heads))
        report = agreement.report()
        for c in contributions:
            c.agreement = agreement.per_head.get(c.head_id)
            c.dissent = c.head_id in agreement.dissenting
        await ctx.checkpoint()
        if intent == "head_strategy" and len(heads) == 1:
            await ctx.emit(WITNESS_RUNNING, WitnessRunning(heads=[heads[0].id], skipped=True)
                           .model_dump())
            final, witness = contributions[0].answer, {"status": "skipped"}
        else:
            final, witness = await self._witness(ctx, contributions, report, intent,
                                                 history)
        await ctx.emit(SYNTHESIS, Synthesis(
            intent=intent, head_contributions=contributions, agreement=report,
            confidence_score=agreement.confidence, witness=witness).model_dump())
        return final

    async def _witness(self, ctx: RunContext, contributions: list[HeadContribution],
                       agreement: dict[str, Any], intent: str, history: list[list[str]]
                       ) -> tuple[str, dict[str, Any]]:
        w, s = self.settings.witness, self.settings
        ok = [c for c in contributions if c.status == "ok"]
        failed = [c.head_id for c in contributions if c.status != "ok"]
        score = agreement["score"]
        brief = "\n\n".join(f"[{c.name} head]\n{c.answer}" for c in ok)
        user = (f"The user's prompt:\n{ctx.run.goal}\n\n"
                f"Measured agreement between the heads (0 to 1): "
                f"{'not measurable' if score is None else score}; "
                f"dissenting heads: {', '.join(agreement['dissenting_heads']) or 'none'}"
                + (f"; heads that gave no answer: {', '.join(failed)}" if failed else "")
                + f".\n\nThe heads' answers:\n\n{brief}")
        system = w.instructions + (DISSENT_NOTE if intent == "show_dissent" else "")
        provider = w.provider or s.provider
        request = ChatRequest(messages=self._messages(system, history, user),
                              model=w.model or s.model)
        # the call starts first: writing `witness_running` overlaps it
        call = asyncio.create_task(stream_reply(ctx, provider, request, w.timeout_seconds))
        try:
            await ctx.emit(WITNESS_RUNNING, WitnessRunning(heads=[c.head_id for c in ok])
                           .model_dump())
            reply = await call
        finally:
            if not call.done():  # cancelled meanwhile: the call closes its stream
                call.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await call
        info: dict[str, Any] = {"status": "ok" if reply.status == "ok" else "failed",
                                "provider": provider, "model": reply.model,
                                "duration_ms": reply.duration_ms, "ttft_ms": reply.ttft_ms}
        if reply.status == "blocked":
            error = reply.error or {}
            raise PostCheckFailed(f"the Witness's answer was blocked by a safety check "
                                  f"({error.get('code')}): {error.get('detail')}")
        if reply.status == "ok":
            return reply.text, info
        # the Witness failed: the answer closest to all the others stands in for it
        info["error"] = reply.error
        best = max(ok, key=lambda c: c.agreement if c.agreement is not None else 0.0)
        info["fallback_head"] = best.head_id
        return best.answer, info
