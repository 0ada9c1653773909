"""One prompt, the seed's pipeline, shared by the HTTP and WebSocket routes:

1. `prepare`: the session (404 `session_not_found`), the prompt (400 `missing_prompt`,
   `prompt_too_long`), the pre-check (the guard's input stage; a block is 400
   `pre_check_failed`), `parse_user_input`, the heads (`/head <id>`, all, or
   `select_heads_for_complexity`; 400 `unknown_head`), then a run of the `dvadasa`
   strategy submitted to the runner: its id is the `task_id`.
2. the run executes (heads in parallel, the Witness) — see `armillary_dvadasa.strategy`.
3. `finish`: the post-check (the guard's output stage on the final answer; a block is
   400 `post_check_failed`), the session history, and the seed's `FinalResponse`. A run
   that failed is 500 `dvadasa_failed` (with `cause`, the run's own code), except a
   Witness answer a check blocked (400 `post_check_failed`).

503 `dvadasa_not_initialized`: the plugin has not started, or no provider is enabled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from armillary import (
    ArmillaryError,
    Conversations,
    Kernel,
    NotFound,
    Run,
    RunStatus,
    SafetyBlocked,
)
from armillary_dvadasa import sessions
from armillary_dvadasa.events import SYNTHESIS, Synthesis
from armillary_dvadasa.intent import parse_user_input, select_heads_for_complexity
from armillary_dvadasa.schemas import FinalResponse, TransparencyReport
from armillary_dvadasa.settings import DvadasaSettings
from armillary_dvadasa.strategy import NAME, DvadasaFailed, PostCheckFailed


class BadPrompt(ArmillaryError):
    code = "missing_prompt"
    status_code = 400


class PreCheckFailed(ArmillaryError):
    code = "pre_check_failed"
    status_code = 400


class NotInitialized(ArmillaryError):
    code = "dvadasa_not_initialized"
    status_code = 503


@dataclass
class DvadasaState:
    """What `startup` builds (`kernel.state["dvadasa"]`)."""

    settings: DvadasaSettings
    sessions: Conversations
    #: the enabled heads' ids (settings do not change while the plugin runs)
    head_ids: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.head_ids = [h.id for h in self.settings.resolved_heads()]


@dataclass
class Submitted:
    run: Run
    session_id: str
    #: the prompt as the pre-check let it through (what the history keeps)
    prompt: str


def state(kernel: Kernel) -> DvadasaState:
    current = kernel.state.get(NAME)
    if not isinstance(current, DvadasaState):
        raise NotInitialized("service not initialized: the Dvādaśa service is starting "
                             "or stopping")
    return current


async def session_or_404(kernel: Kernel, session_id: str) -> Any:
    session = await state(kernel).sessions.get(session_id)
    if session is None:
        raise NotFound(f"session not found: {session_id!r}", code="session_not_found")
    return session


async def prepare(kernel: Kernel, session_id: str, prompt: Any, use_all_heads: bool = False
                  ) -> Submitted:
    st = state(kernel)
    s = st.settings
    session = await session_or_404(kernel, session_id)
    if not isinstance(prompt, str) or not prompt.strip():
        raise BadPrompt("missing prompt: send {\"prompt\": \"…\"}")
    if len(prompt) > s.max_prompt_chars:
        raise BadPrompt(f"the prompt is longer than {s.max_prompt_chars} characters",
                        code="prompt_too_long")
    if not kernel.registry.providers:
        raise NotInitialized("service not initialized: no provider is enabled (enable a "
                             "provider plugin — ollama, openai, … — in plugins.toml)")
    guard = kernel.guard(conversation_id=session_id, plugin=NAME)
    try:
        checked = await guard.check_input(prompt)
    except SafetyBlocked as exc:
        raise PreCheckFailed(f"pre_check failed: {exc.detail}", extra={
            "stage": "input", "check": exc.extra.get("check"), "check_code": exc.code}
            ) from None
    parsed = parse_user_input(checked)
    available = st.head_ids
    if parsed.intent == "head_strategy" and parsed.head_id not in available:
        which = f"no head {parsed.head_id!r}" if parsed.head_id else "no head named"
        raise ArmillaryError(f"{which} (heads: {', '.join(available)}); use /head <id> "
                             f"[question]", code="unknown_head", status_code=400,
                             extra={"heads": available})
    question = parsed.prompt or (sessions.last_prompt(session) if parsed.intent != "normal"
                                 else None)
    if not question:
        raise BadPrompt(f"missing prompt: {parsed.intent} needs a question (there is no "
                        f"earlier prompt in this session)")
    if parsed.intent == "head_strategy" and parsed.head_id is not None:
        heads = [parsed.head_id]
    elif use_all_heads or parsed.intent in ("show_dissent", "all_heads"):
        heads = available
    else:
        heads = select_heads_for_complexity(question, available, simple=s.simple_heads,
                                            medium=s.medium_heads)
    run = Run(goal=question, agent=NAME, strategy=NAME, metadata={NAME: {
        "session_id": session_id, "intent": parsed.intent, "heads": heads,
        "history": sessions.history(session, s.history_turns)}})
    run = await kernel.runner.submit(run)
    return Submitted(run, session_id, checked)


async def finish(kernel: Kernel, submitted: Submitted, run: Run) -> FinalResponse:
    """The reply for a run that ended (see the module docstring); raises otherwise."""
    st = state(kernel)
    if run.status is not RunStatus.COMPLETED:
        code = run.error.code if run.error else run.status.value
        detail = run.error.detail if run.error else f"the run ended {run.status.value}"
        if code == PostCheckFailed.code:
            raise PostCheckFailed(f"post_check failed: {detail}", extra={"task_id": run.id})
        raise DvadasaFailed(f"Dvādaśa failed: {detail}",
                            extra={"task_id": run.id, "cause": code})
    found = await kernel.store.events(run.id, types=[SYNTHESIS], limit=1)
    if not found:
        raise DvadasaFailed("Dvādaśa failed: the run left no synthesis",
                            extra={"task_id": run.id, "cause": "internal_error"})
    synthesis = Synthesis.model_validate(found[0].payload)
    guard = kernel.guard(conversation_id=submitted.session_id, plugin=NAME, task_id=run.id)
    try:
        final = await guard.check_output(run.result or "")
    except SafetyBlocked as exc:
        raise PostCheckFailed(f"post_check failed: {exc.detail}", extra={
            "task_id": run.id, "stage": "output", "check": exc.extra.get("check"),
            "check_code": exc.code}) from None
    contributions = synthesis.head_contributions
    report = TransparencyReport(
        head_contributions=contributions, intent=synthesis.intent,
        heads_selected=[c.head_id for c in contributions],
        heads_failed=[c.head_id for c in contributions if c.status != "ok"],
        agreement=synthesis.agreement, dissent=[c.head_id for c in contributions if c.dissent],
        confidence_score=synthesis.confidence_score, witness=synthesis.witness)
    await sessions.remember(st.sessions, submitted.session_id, submitted.prompt, final, {
        "task_id": run.id, "intent": synthesis.intent, "question": run.goal,
        "confidence_score": synthesis.confidence_score})
    return FinalResponse(task_id=run.id, final_answer=final, transparency_report=report,
                         head_contributions=contributions,
                         confidence_score=synthesis.confidence_score)
