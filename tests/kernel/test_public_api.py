"""Plugins and contrib use only the public API: `armillary` and `armillary.testing`, and
never another plugin's modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import armillary

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = {"armillary", "armillary.testing"}
SOURCES = sorted(p for d in ("plugins", "contrib")
                 for p in (ROOT / d).glob("*/armillary_*/**/*.py"))


def own_package(path: Path) -> str:
    return next(part for part in path.relative_to(ROOT).parts if part.startswith("armillary_"))


def imports(path: Path) -> list[tuple[int, str, list[str]]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module, [a.name for a in node.names]))
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_import_only_the_public_api_and_their_own_package(path: Path) -> None:
    own = own_package(path)
    problems = []
    for line, module, names in imports(path):
        top = module.split(".")[0]
        if top == "armillary" and module not in PUBLIC:
            problems.append(f"line {line}: {module} is private; import from armillary")
        if top == "armillary" and module == "armillary":
            problems += [f"line {line}: armillary.{n} is not public" for n in names
                         if n not in armillary.__all__]
        if top.startswith("armillary_") and top != own:
            problems.append(f"line {line}: {module} is another plugin's internals")
    assert not problems, "\n".join(problems)


def test_the_public_names_import() -> None:
    for name in armillary.__all__:
        assert getattr(armillary, name) is not None, name


def test_every_kernel_module_but_the_public_ones_is_private() -> None:
    """Internals are `_`-prefixed (PEP 8): `armillary`, `armillary.testing` and the
    `python -m armillary` entry are the only modules without the prefix."""
    kernel = ROOT / "kernel" / "armillary"
    public = {"__init__.py", "__main__.py", "testing", "py.typed"}
    loose = sorted(p.name for p in kernel.iterdir()
                   if p.name not in public and not p.name.startswith("_"))
    assert loose == []


def test_type_checkers_see_every_public_name_as_an_explicit_re_export() -> None:
    """`__all__` is built at run time, so mypy (strict, `no_implicit_reexport`) learns the
    public names only from the `if TYPE_CHECKING:` imports: each must be `X as X`, or a
    plugin checked with `mypy --strict` gets "does not explicitly export"."""
    source = (ROOT / "kernel" / "armillary" / "__init__.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    block = next(n for n in tree.body if isinstance(n, ast.If)
                 and getattr(n.test, "id", None) == "TYPE_CHECKING")
    exported = {a.name for node in block.body if isinstance(node, ast.ImportFrom)
                for a in node.names if a.asname == a.name}
    names = set(armillary.__all__) - {"__version__", "hookimpl"}
    assert sorted(names - exported) == []
