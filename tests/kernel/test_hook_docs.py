"""Every hook is documented in docs/writing-plugins.md under its exact signature."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from armillary import _hookspecs as hookspecs

DOC = Path(__file__).resolve().parents[2] / "docs" / "writing-plugins.md"


def hook_specs() -> dict[str, Callable[..., Any]]:
    return {name: fn for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
            if hasattr(fn, "armillary_spec")}


def signature_of(name: str, fn: Callable[..., Any]) -> str:
    sig = inspect.signature(fn)
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    prefix = "async " if inspect.iscoroutinefunction(fn) else ""
    return f"{prefix}{name}({params}) -> {sig.return_annotation}"


def documented() -> dict[str, str]:
    headings = re.findall(r"^### `(.+)`$", DOC.read_text(encoding="utf-8"), re.MULTILINE)
    return {re.sub(r"^async ", "", h).split("(")[0]: h for h in headings}


@pytest.mark.parametrize("name", sorted(hook_specs()))
def test_every_hook_is_documented_with_its_exact_signature(name: str) -> None:
    expected = signature_of(name, hook_specs()[name])
    assert documented().get(name) == expected, (
        f"docs/writing-plugins.md needs a section headed ### `{expected}`")


@pytest.mark.parametrize("name", sorted(hook_specs()))
def test_every_hook_has_a_docstring(name: str) -> None:
    assert (hook_specs()[name].__doc__ or "").strip()


def test_the_docs_describe_no_hook_that_does_not_exist() -> None:
    assert set(documented()) <= set(hook_specs())
