"""Build workspace members into wheels and install them into fresh virtualenvs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def uv() -> str:
    found = shutil.which("uv")
    if not found:
        raise RuntimeError("these tests need uv on PATH (pip install uv)")
    return found


def build_wheels(out: Path, *packages: str) -> list[Path]:
    """`uv build --wheel` each workspace package (e.g. "armillary", "armillary-units")."""
    out.mkdir(parents=True, exist_ok=True)
    for package in packages:
        subprocess.run([uv(), "build", "--quiet", "--wheel", "--package", package,
                        "--out-dir", str(out)], cwd=REPO, check=True, capture_output=True)
    wheels = []
    for package in packages:
        prefix = package.replace("-", "_") + "-"
        wheels += sorted(out.glob(prefix + "*.whl"))
    return wheels


def fresh_venv(path: Path) -> Path:
    """A new virtualenv with nothing in it; returns its python."""
    subprocess.run([uv(), "venv", "--quiet", "--python", "3.11", str(path)], check=True,
                   capture_output=True)
    return path / "bin" / "python"


def pip_install(python: Path, *requirements: str | Path) -> None:
    subprocess.run([uv(), "pip", "install", "--quiet", "--python", str(python),
                    *map(str, requirements)], check=True, capture_output=True)


def pip_uninstall(python: Path, *names: str) -> None:
    subprocess.run([uv(), "pip", "uninstall", "--quiet", "--python", str(python), *names],
                   check=True, capture_output=True)


def installed(python: Path) -> set[str]:
    out = subprocess.run([uv(), "pip", "list", "--python", str(python), "--format", "json"],
                         check=True, capture_output=True, text=True).stdout
    import json

    return {row["name"].lower() for row in json.loads(out)}
