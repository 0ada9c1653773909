"""`armillary submit --api-key` against a real server with auth on, and `armillary auth
hash-key` printing what plugins.toml takes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from armillary_auth.keys import hash_key

from armillary.testing import ArmillaryServer

KEY = "cli-key-0123456789abcdef"
CONFIG = f"""
[kernel]
enable = ["auth", "tasks"]
store = "memory://"

[plugins.auth]
keys = [{{ name = "cli", key_hash = "{hash_key(KEY)}" }}]
"""


def armillary(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "armillary", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def test_submit_with_the_api_key_is_accepted_and_without_it_refused(tmp_path: Path) -> None:
    config = tmp_path / "plugins.toml"
    config.write_text(CONFIG, encoding="utf-8")
    with ArmillaryServer(config, log_path=tmp_path / "serve.log") as server:
        refused = armillary("submit", "hello", "--url", server.url, cwd=tmp_path)
        assert refused.returncode == 1 and "(unauthorized)" in refused.stderr
        accepted = armillary("submit", "hello", "--url", server.url, "--api-key", KEY,
                             cwd=tmp_path)
        assert accepted.returncode == 0, accepted.stderr
        assert accepted.stdout.strip().startswith("run_")


def test_hash_key_prints_the_key_hash(tmp_path: Path) -> None:
    (tmp_path / "plugins.toml").write_text(CONFIG, encoding="utf-8")
    done = armillary("auth", "hash-key", KEY, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == hash_key(KEY)


def test_armillary_openapi_prints_the_security_schemes_the_server_serves(
        tmp_path: Path) -> None:
    """The schemes come from the `openapi_document` hook, so the CLI's printed document
    (no request ever served) and the served one carry the same security parts."""
    import httpx

    config = tmp_path / "plugins.toml"
    config.write_text(CONFIG, encoding="utf-8")
    done = armillary("openapi", "--config", str(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    schemes = printed["components"]["securitySchemes"]
    assert schemes["APIKeyHeader"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert {"BearerAuth", "APIKeyQuery"} <= set(schemes)
    assert {"APIKeyHeader": []} in printed["security"]
    assert printed["paths"]["/health"]["get"]["security"] == []
    assert "401" in printed["paths"]["/v1/tasks"]["post"]["responses"]
    with ArmillaryServer(config, log_path=tmp_path / "serve.log") as server:
        served = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
    assert served["components"]["securitySchemes"] == schemes
    assert served["security"] == printed["security"]
    for path, item in printed["paths"].items():
        for method, operation in item.items():
            mine = served["paths"][path][method]
            assert mine.get("security") == operation.get("security"), (path, method)
            assert {c: mine["responses"].get(c) for c in ("401", "403")} == \
                {c: operation["responses"].get(c) for c in ("401", "403")}, (path, method)
