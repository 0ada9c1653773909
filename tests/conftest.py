from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on sys.path (and PYTHONPATH, for subprocesses) to install fake plugins into."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(folder), str(REPO)]))
    return folder


@pytest.fixture(autouse=True)
def _clean_armillary_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never see the developer's ARMILLARY_* settings or ./plugins.toml."""
    for key in list(os.environ):
        if key.startswith("ARMILLARY_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
