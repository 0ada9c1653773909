"""Prompt rendering: system prompt, history as chat messages, the new message last."""

from __future__ import annotations

from armillary_chat.memory import Exchange
from armillary_chat.prompt import build_messages


def test_history_becomes_alternating_user_and_assistant_messages() -> None:
    history = [Exchange("hi", "hello!"), Exchange("2+2?", "4", partial=True)]
    msgs = build_messages("Be brief.", history, "thanks")
    assert [(m.role, m.content) for m in msgs] == [
        ("system", "Be brief."), ("user", "hi"), ("assistant", "hello!"),
        ("user", "2+2?"), ("assistant", "4"), ("user", "thanks")]


def test_an_empty_system_prompt_is_left_out() -> None:
    msgs = build_messages("", [], "hi")
    assert [(m.role, m.content) for m in msgs] == [("user", "hi")]


def test_an_exchange_with_no_reply_keeps_only_the_user_message() -> None:
    msgs = build_messages("", [Exchange("lost", "", partial=True)], "again")
    assert [m.role for m in msgs] == ["user", "user"]
