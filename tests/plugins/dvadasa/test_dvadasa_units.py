"""The pure parts: intents, head selection by complexity, measured agreement, settings."""

from __future__ import annotations

import pytest
from armillary_dvadasa.agreement import measure
from armillary_dvadasa.intent import complexity, parse_user_input, select_heads_for_complexity
from armillary_dvadasa.settings import DvadasaSettings
from pydantic import ValidationError


@pytest.mark.parametrize(("text", "intent", "prompt", "head"), [
    ("What is 6*7?", "normal", "What is 6*7?", None),
    ("/head Risk Is it safe?", "head_strategy", "Is it safe?", "risk"),
    ("/head logic", "head_strategy", "", "logic"),
    ("/head", "head_strategy", "", None),
    ("/dissent Should we?", "show_dissent", "Should we?", None),
    ("/show_dissent", "show_dissent", "", None),
    ("/all hi", "all_heads", "hi", None),
    # the seed's intent names as commands, and `/show dissent`
    ("/show dissent Should we?", "show_dissent", "Should we?", None),
    ("/SHOW  Dissent", "show_dissent", "", None),
    ("/show-dissent why?", "show_dissent", "why?", None),
    ("/head_strategy risk\nIs it safe?", "head_strategy", "Is it safe?", "risk"),
    ("/all_heads hi", "all_heads", "hi", None),
    ("/show me the money", "normal", "/show me the money", None),
    ("   ", "normal", "", None),
    ("/unknown hi", "normal", "/unknown hi", None),
])
def test_parse_user_input(text: str, intent: str, prompt: str, head: str | None) -> None:
    parsed = parse_user_input(text)
    assert (parsed.intent, parsed.prompt, parsed.head_id) == (intent, prompt, head)


def test_heads_are_selected_by_complexity() -> None:
    heads = ["logic", "evidence", "risk", "ethics", "pragmatics", "skeptic", "clarity", "x"]
    kw = {"simple": ["logic", "clarity"], "medium": ["logic", "risk", "gone"]}
    assert complexity("Capital of France?") == "simple"
    assert select_heads_for_complexity("Capital of France?", heads, **kw) == ["logic",
                                                                              "clarity"]
    assert select_heads_for_complexity("Should I learn Rust?", heads, **kw) == ["logic",
                                                                                "risk"]
    long = "Compare the trade-offs and risks of two designs for a payment system."
    assert select_heads_for_complexity(long, heads, **kw) == heads


def test_agreement_is_measured_not_constant() -> None:
    same = measure({"a": "red apples grow", "b": "red apples grow"}, 2)
    half = measure({"a": "red apples grow", "b": "red apples fall"}, 2)
    apart = measure({"a": "red apples", "b": "blue whales", "c": "red apples"}, 4)
    assert (same.score, same.confidence) == (1.0, 1.0)
    assert half.score == 0.5  # {red, apples} / {red, apples, grow, fall}
    assert apart.coverage == 0.75 and apart.dissenting == ["b"]
    assert apart.confidence == round((1 / 3) * 0.75, 4)  # pairs: 0, 1, 0
    one = measure({"a": "anything"}, 3)
    assert one.score is None and one.confidence == round(0.5 / 3, 4)


def test_settings_change_add_and_drop_heads() -> None:
    s = DvadasaSettings.model_validate({"heads": {
        "risk": {"model": "m", "provider": "p"}, "ethics": {"enabled": False},
        "referee": {"name": "Referee", "instructions": "Judge."}}})
    heads = {h.id: h for h in s.resolved_heads()}
    assert len(heads) == 12 and "ethics" not in heads and "referee" in heads
    assert (heads["risk"].model, heads["risk"].provider) == ("m", "p")
    assert heads["referee"].system_prompt().startswith("You are the Referee head")
    with pytest.raises(ValidationError, match="a new head needs"):
        DvadasaSettings.model_validate({"heads": {"new": {"model": "m"}}})
    with pytest.raises(ValidationError, match="no head is enabled"):
        DvadasaSettings.model_validate({"default_heads": False})
