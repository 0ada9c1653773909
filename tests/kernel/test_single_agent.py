"""The single-agent strategy: the tool loop, concurrency, safety stages, limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from armillary import hookimpl
from armillary._kernel import Kernel
from armillary._models import Run, RunStatus, ToolCall, Verdict
from armillary._safety import SafetyBlocked, SafetyCheck, Stage
from armillary._tools import tool
from armillary.testing import ScriptedProvider, Turn, make_kernel

CONCURRENT: list[str] = []


@tool
async def probe(name: str) -> str:
    """Records when it starts and ends."""
    CONCURRENT.append(f"start {name}")
    await asyncio.sleep(0.05)
    CONCURRENT.append(f"end {name}")
    return name


class Plugins:
    def __init__(self, provider: ScriptedProvider, checks: list[SafetyCheck] = ()) -> None:  # type: ignore[assignment]
        self.provider, self.checks = provider, checks

    @hookimpl
    def register_providers(self, register: Any) -> None:
        register(self.provider, default=True)

    @hookimpl
    def register_tools(self, register: Any) -> None:
        register(probe)

    @hookimpl
    def register_safety_checks(self, register: Any) -> None:
        for c in self.checks:
            register(c)


class Blocklist(SafetyCheck):
    name = "blocklist"
    stages = frozenset({"input", "output", "tool"})

    def __init__(self, word: str, stage: Stage, redact: bool = False) -> None:
        self.word, self.stage, self.redact = word, stage, redact
        self.seen: list[tuple[str, str]] = []

    async def check(self, text: str, *, stage: Stage, context: dict[str, Any]) -> Verdict:
        self.seen.append((stage, text))
        if stage == self.stage and self.word in text:
            if self.redact:
                return Verdict(redacted=text.replace(self.word, "[redacted]"))
            return Verdict(allowed=False, reason=f"mentions {self.word}", code=f"{stage}_blocked")
        return Verdict()


@pytest.fixture
async def run_with() -> AsyncIterator[Any]:
    kernels: list[Kernel] = []

    async def go(turns: list[Turn | str], goal: str = "goal", max_steps: int = 10,
                 checks: list[SafetyCheck] = ()) -> tuple[Kernel, Run, ScriptedProvider]:  # type: ignore[assignment]
        provider = ScriptedProvider(turns)
        kernel = make_kernel({"p": Plugins(provider, checks)})
        await kernel.start()
        kernels.append(kernel)
        run = await kernel.runner.submit(Run(goal=goal, max_steps=max_steps))
        return kernel, await kernel.runner.wait(run.id, timeout=10), provider

    yield go
    for k in kernels:
        await k.stop()


async def test_several_tool_calls_in_one_turn_run_concurrently(run_with: Any) -> None:
    CONCURRENT.clear()
    calls = [ToolCall(name="probe", arguments={"name": n}) for n in ("a", "b", "c")]
    _kernel, run, provider = await run_with([Turn(tool_calls=calls), "done"])
    assert run.status is RunStatus.COMPLETED
    assert CONCURRENT[:3] == ["start a", "start b", "start c"]
    tool_messages = [m for m in provider.requests[1].messages if m.role == "tool"]
    assert [(m.name, m.content) for m in tool_messages] == [("probe", "a"), ("probe", "b"),
                                                            ("probe", "c")]
    assert [m.tool_call_id for m in tool_messages] == [c.id for c in calls]


async def test_the_provider_is_sent_the_tool_specs_and_the_plan_tool(run_with: Any) -> None:
    _, _, provider = await run_with(["hi"])
    names = [t.name for t in provider.requests[0].tools or []]
    assert names == ["probe", "update_plan"]


async def test_reaching_max_steps_fails_the_run_with_max_steps_exceeded(run_with: Any) -> None:
    loop = Turn(tool_calls=[ToolCall(name="probe", arguments={"name": "x"})])
    _kernel, run, _ = await run_with([loop], max_steps=3)
    assert run.status is RunStatus.FAILED and run.error is not None
    assert run.error.code == "max_steps_exceeded" and run.steps_taken == 3


async def test_a_blocked_goal_is_refused_at_submit_and_the_provider_never_called() -> None:
    """The input stage runs on the goal at submit: a blocked goal is `SafetyBlocked`
    (400 `input_blocked` over HTTP), no run is stored and the model is never called."""
    provider = ScriptedProvider(["never"])
    kernel = make_kernel({"p": Plugins(provider, [Blocklist("forbidden", "input")])})
    await kernel.start()
    try:
        with pytest.raises(SafetyBlocked) as refused:
            await kernel.runner.submit(Run(goal="do the forbidden thing"))
        assert refused.value.code == "input_blocked"
        assert await kernel.store.list_runs(limit=10) == []
        assert provider.requests == []
    finally:
        await kernel.stop()


async def test_a_blocked_tool_call_goes_back_to_the_model_and_the_run_goes_on(
        run_with: Any) -> None:
    check = Blocklist("secret", "tool")
    call = ToolCall(name="probe", arguments={"name": "secret"})
    kernel, run, provider = await run_with([Turn(tool_calls=[call]), "ok then"], checks=[check])
    assert run.status is RunStatus.COMPLETED and run.result == "ok then"
    tool_message = next(m for m in provider.requests[1].messages if m.role == "tool")
    assert "blocked by safety check 'blocklist'" in tool_message.content
    events = await kernel.store.events(run.id, types=["tool_call", "log"])
    assert events[-1].type == "tool_call" and events[-1].payload["success"] is False


async def test_the_final_answer_passes_the_output_stage_and_may_be_redacted(
        run_with: Any) -> None:
    check = Blocklist("555-1234", "output", redact=True)
    _, run, _ = await run_with(["call me at 555-1234"], checks=[check])
    assert run.result == "call me at [redacted]"
    assert ("output", "call me at 555-1234") in check.seen


async def test_a_long_tool_result_is_capped_in_the_log_but_whole_for_the_model(
        run_with: Any) -> None:
    from armillary._default_plugins.single_agent import MAX_LOGGED_RESULT

    long_name = "x" * (MAX_LOGGED_RESULT * 3)
    kernel, run, provider = await run_with([
        Turn(tool_calls=[ToolCall(name="probe", arguments={"name": long_name})]), "done"])
    assert run.status == RunStatus.COMPLETED
    tool_results = [m for m in provider.requests[-1].messages if m.role == "tool"]
    assert tool_results[0].content == long_name  # the model got all of it
    events = await kernel.store.events(run.id, types=["message", "tool_call"])
    for event in events:
        logged = event.payload.get("content", event.payload.get("result", ""))
        assert len(str(logged)) <= MAX_LOGGED_RESULT + 1
    assert any(e.payload.get("truncated") for e in events if e.type == "message")


# --- safety through the run's guard (no checks of the strategy's own) ---------------------

SSN, EMAIL = "123-45-6789", "jane.doe@example.com"
SECRET_TEXT = f"Her SSN is {SSN} and her mail is {EMAIL}, thanks."
FRAGMENTS = (SSN, "123-45", "45-6789", EMAIL, "jane.doe", "example.com")


def pieces(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def logged_text(events: list[Any]) -> str:
    import json

    return "\n".join(json.dumps(e.payload) for e in events)


@pytest.mark.parametrize("size", [1, 3, 7])
async def test_a_redacted_stream_never_logs_the_secret_in_tokens_messages_or_result(
        run_with: Any, monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    from armillary.testing.checks import PII

    # a token event per streamed piece: the most chances for a fragment to slip out
    monkeypatch.setattr("armillary._default_plugins.single_agent.TOKEN_FLUSH_SECONDS", 0)
    kernel, run, _ = await run_with([Turn(chunks=pieces(SECRET_TEXT, size))], checks=[PII()])
    assert run.status is RunStatus.COMPLETED
    assert run.result == "Her SSN is [ssn] and her mail is [email], thanks."
    events = await kernel.store.events(run.id)
    tokens = [e.payload["delta"] for e in events if e.type == "token"]
    assert "".join(tokens) == run.result
    for fragment in FRAGMENTS:
        assert fragment not in logged_text(events)
    reply = [e for e in events if e.type == "message" and e.payload["role"] == "assistant"]
    assert reply[-1].payload["content"] == run.result
    safety = [e.payload for e in events if e.type == "safety"]
    assert safety == [{"stage": "output", "check": "pii", "action": "redacted",
                       "code": None}]


async def test_a_blocked_stream_fails_the_run_with_the_checks_code_and_logs_no_secret(
        run_with: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from armillary.testing.checks import PII

    monkeypatch.setattr("armillary._default_plugins.single_agent.TOKEN_FLUSH_SECONDS", 0)
    preamble = "word " * 40  # longer than the hold-back window: it streams out first
    kernel, run, _ = await run_with([Turn(chunks=pieces(preamble + SECRET_TEXT, 2))],
                                    checks=[PII(block=True)])
    assert run.status is RunStatus.FAILED and run.error is not None
    assert run.error.code == "output_blocked" and run.result is None
    events = await kernel.store.events(run.id)
    for fragment in FRAGMENTS:
        assert fragment not in logged_text(events)
    streamed = "".join(e.payload["delta"] for e in events if e.type == "token")
    assert streamed and preamble.startswith(streamed)
    assert events[-1].type == "failed"
    assert events[-1].payload["error"]["code"] == "output_blocked"


async def test_a_redacted_goal_is_what_the_log_and_the_model_get(run_with: Any) -> None:
    from armillary.testing.checks import PII

    kernel, run, provider = await run_with(["noted"], goal=f"remember {EMAIL}",
                                           checks=[PII()])
    assert run.status is RunStatus.COMPLETED
    messages = [e.payload for e in await kernel.store.events(run.id, types=["message"])]
    user = next(m for m in messages if m["role"] == "user")
    assert user["content"] == "remember [email]"
    assert provider.requests[0].messages[-1].content == "remember [email]"


async def test_each_stage_checks_a_text_once_not_twice(run_with: Any) -> None:
    check = Blocklist("never-matches", "output")
    call = ToolCall(name="probe", arguments={"name": "a"})
    _, run, _ = await run_with([Turn(tool_calls=[call]), "the end"], goal="the goal",
                               checks=[check])
    assert run.status is RunStatus.COMPLETED
    assert check.seen.count(("input", "the goal")) == 1
    assert check.seen.count(("output", "the end")) == 1
    assert [s for s in check.seen if s[0] == "tool"] == [("tool", 'probe {"name": "a"}')]


async def test_a_refused_tool_call_is_logged_with_a_safety_event(run_with: Any) -> None:
    check = Blocklist("secret", "tool")
    call = ToolCall(name="probe", arguments={"name": "secret"})
    kernel, run, _ = await run_with([Turn(tool_calls=[call]), "ok then"], checks=[check])
    assert run.status is RunStatus.COMPLETED
    events = await kernel.store.events(run.id, types=["safety", "log", "tool_call"])
    assert [e.type for e in events] == ["safety", "log", "tool_call"]
    assert events[0].payload == {"stage": "tool", "check": "blocklist", "action": "blocked",
                                 "code": "tool_blocked"}
    assert events[2].payload["error"]["code"] == "tool_blocked"
