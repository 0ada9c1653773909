"""Every hook is exercised: some test plugin under tests/ implements it (an `@hookimpl`
function or method of that name, in a test module or a fake plugin's source)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from armillary import _hookspecs as hookspecs

TESTS = Path(__file__).resolve().parents[1]
#: `@hookimpl` or `@hookimpl(tryfirst=True)`, then (after other decorators) `def name(`
IMPL = re.compile(r"@hookimpl(?:\([^)]*\))?\s*\n(?:\s*@[^\n]*\n)*\s*(?:async\s+)?def\s+(\w+)\(")


def hook_names() -> list[str]:
    return sorted(name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
                  if hasattr(fn, "armillary_spec"))


def implemented_in_tests() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(TESTS.rglob("*.py")):
        for name in IMPL.findall(path.read_text(encoding="utf-8")):
            found.setdefault(name, []).append(str(path.relative_to(TESTS)))
    return found


@pytest.mark.parametrize("hook", hook_names())
def test_every_hook_is_implemented_by_a_test_plugin(hook: str) -> None:
    assert hook in implemented_in_tests(), (
        f"no test plugin under tests/ implements {hook}: write one that exercises it "
        f"through a served app or the CLI")


def test_the_scan_sees_hook_implementations() -> None:
    """The scan itself can fail: it finds this project's known test plugins."""
    found = implemented_in_tests()
    assert "kernel/test_factories.py" in found.get("make_store", [])
    assert "support/fake_dists.py" in found.get("register_tools", [])
