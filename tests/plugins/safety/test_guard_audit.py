"""The kernel's verdict listeners (`SafetyPipeline.add_listener`), which the safety
plugin's audit is built on: every verdict a guard reaches — allowed, flagged, redacted,
blocked, a check that raised — is one `VerdictRecord`, streams included, naming the
guard's scope and never carrying the checked text (nor a tool's arguments)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from armillary import (
    ArmillaryError,
    ChatChunk,
    ChatRequest,
    Guard,
    Message,
    SafetyBlocked,
    SafetyCheck,
    SafetyPipeline,
    Stage,
    Verdict,
    VerdictRecord,
)
from armillary.testing import ScriptedProvider, Turn
from armillary.testing.checks import PII

SECRET = "Her SSN is 123-45-6789 and her mail is jane.doe@example.com, thanks."


class Flagger(SafetyCheck):
    """Flags 'hello' without changing anything; raises on 'explode'."""

    name = "flagger"

    async def check(self, text: str, *, stage: Stage, context: dict[str, Any]) -> Verdict:
        if "explode" in text:
            raise ArmillaryError("the judge is away", code="judge_unavailable",
                                 status_code=503)
        return self.verdict(flags=["greeting"] if "hello" in text else [])


def pipeline(*checks: SafetyCheck) -> tuple[SafetyPipeline, list[VerdictRecord]]:
    records: list[VerdictRecord] = []

    async def listen(record: VerdictRecord) -> None:
        records.append(record)

    p = SafetyPipeline(list(checks))
    p.add_listener(listen)
    return p, records


def assert_no_text(records: list[VerdictRecord]) -> None:
    for record in records:
        dumped = record.model_dump_json()
        for piece in ("123-45", "6789", "jane.doe", "example.com", "hunter2"):
            assert piece not in dumped


async def test_every_verdict_is_one_record_with_its_action() -> None:
    p, records = pipeline(Flagger(), PII(), PII(block=True, stages=frozenset({"tool"})))
    guard = Guard(p, {"conversation_id": "c1", "agent": "general"})
    assert await guard.check_input("plain") == "plain"
    assert await guard.check_input("plain") == "plain"  # remembered: not checked again
    assert await guard.check_input("hello there") == "hello there"
    assert await guard.check_output(SECRET) != SECRET
    with pytest.raises(SafetyBlocked):
        await guard.check_tool("lookup", {"ssn": "123-45-6789", "password": "hunter2"})
    assert [(r.stage, r.action, r.check, r.flags) for r in records] == [
        ("input", "allowed", "", []),
        ("input", "flagged", "flagger", ["greeting"]),
        ("output", "redacted", "pii", []),
        ("tool", "blocked", "pii", [])]
    assert {(r.scope, r.conversation_id, r.run_id) for r in records} == {("c1", "c1", None)}
    assert records[0].context == {"agent": "general"}  # never the tool's arguments
    assert records[-1].code == "tool_blocked"
    assert_no_text(records)


async def test_a_stream_is_one_record_when_it_ends_with_every_flag() -> None:
    p, records = pipeline(PII())
    guard = Guard(p, {"run_id": "run_1"})
    provider = guard.provider(ScriptedProvider([Turn(chunks=[SECRET[i:i + 3] for i in
                                                             range(0, len(SECRET), 3)])]))
    chunks = [c async for c in provider.stream(ChatRequest(messages=[
        Message(role="user", content="hi")]))]
    assert "".join(c.delta for c in chunks) == \
        "Her SSN is [ssn] and her mail is [email], thanks."
    assert [(r.stage, r.action, r.streamed) for r in records] == [
        ("input", "allowed", False), ("output", "redacted", True)]
    assert records[-1].scope == "run_1"
    assert_no_text(records)


async def test_a_blocked_stream_is_one_blocked_record() -> None:
    p, records = pipeline(PII(block=True))
    guard = Guard(p, {"session_id": "s1"})
    provider = guard.provider(ScriptedProvider([Turn(text=SECRET)]))
    chunks = [c async for c in provider.stream(ChatRequest(messages=[
        Message(role="user", content="hi")]))]
    assert chunks[-1].error is not None and chunks[-1].error.code == "output_blocked"
    assert [(r.stage, r.action, r.code, r.scope) for r in records][-1] == (
        "output", "blocked", "output_blocked", "s1")


async def test_a_check_that_raises_is_an_error_record_and_the_error() -> None:
    p, records = pipeline(Flagger())
    guard = Guard(p)
    with pytest.raises(ArmillaryError) as raised:
        await guard.check_input("explode")
    assert raised.value.code == "judge_unavailable"
    assert [(r.action, r.code) for r in records] == [("error", "judge_unavailable")]
    assert records[0].scope.startswith("grd_")  # a guard with no id gets its own


async def test_a_failing_listener_neither_fails_the_request_nor_the_others() -> None:
    p, records = pipeline(PII())

    async def broken(record: VerdictRecord) -> None:
        raise RuntimeError("disk full")

    p.listeners.insert(0, broken)
    assert await Guard(p).check_output("mail jane.doe@example.com") == "mail [email]"
    assert [r.action for r in records] == ["redacted"]


async def test_run_guards_mark_what_their_own_listener_logged() -> None:
    p, records = pipeline(PII())
    seen: list[tuple[str, str]] = []

    async def on_verdict(stage: Stage, verdict: Verdict) -> None:
        seen.append((stage, verdict.check))

    guard = Guard(p, {"run_id": "run_2"}, on_verdict=on_verdict)
    await guard.check_input("fine")
    await guard.check_output("mail jane.doe@example.com")
    assert seen == [("output", "pii")]  # the run's log: redactions and blocks only
    assert [(r.action, r.logged) for r in records] == [("allowed", False),
                                                       ("redacted", True)]


async def test_no_listener_costs_no_record() -> None:
    p = SafetyPipeline([PII()])
    assert await Guard(p).check_output("mail jane.doe@example.com") == "mail [email]"
    assert p.listeners == []


async def test_a_stream_the_caller_leaves_is_one_incomplete_record() -> None:
    p, records = pipeline(PII())
    guard = Guard(p, {"conversation_id": "left"})
    text = "Her mail is jane.doe@example.com. " + "More words follow here. " * 20
    provider = guard.provider(ScriptedProvider([Turn(chunks=[text[i:i + 4] for i in
                                                             range(0, len(text), 4)])]))
    stream = provider.stream(ChatRequest(messages=[Message(role="user", content="hi")]))
    async for chunk in stream:  # the first text out, then the caller goes
        if chunk.delta:
            break
    await stream.aclose()  # type: ignore[attr-defined]
    for _ in range(10):  # the record goes out from a task of its own
        if len(records) == 2:
            break
        await asyncio.sleep(0.01)
    assert [(r.stage, r.action, r.streamed, r.complete) for r in records] == [
        ("input", "allowed", False, True), ("output", "redacted", True, False)]


async def test_a_stream_without_its_done_chunk_still_releases_what_was_held() -> None:
    class NoDone(ScriptedProvider):
        async def stream(self, request: ChatRequest) -> Any:
            for piece in ("mail jane.doe", "@example.com", " bye"):
                yield ChatChunk(delta=piece)

    p, records = pipeline(PII())
    provider = Guard(p).provider(NoDone([]))
    out = [c.delta async for c in provider.stream(ChatRequest(messages=[
        Message(role="user", content="hi")]))]
    assert "".join(out) == "mail [email] bye"
    assert [(r.action, r.complete) for r in records][-1] == ("redacted", True)
