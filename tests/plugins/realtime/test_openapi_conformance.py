"""The realtime routes hold up against schemathesis on a real `armillary serve`: every
status and content type they answer is one the OpenAPI document declares (the error
model included), and with the openai plugin on (pointed at the OpenAI test server) no
generated request gets a 5xx. Without the openai plugin the routes that need it answer a
declared 503 `service_unavailable`, never a bug."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from armillary.testing import ArmillaryServer
from tests.plugins.realtime.agents_harness import SCENARIOS
from tests.support.ollama_server import OllamaTestServer
from tests.support.openai_server import OpenAITestServer

#: the routes that call OpenAI (and so need the openai plugin)
UPSTREAM = {"GET /api/session", "GET /api/session2", "POST /api/responses",
            "POST /api/agent/run", "POST /api/moderate"}


@pytest.fixture(scope="module")
def providers() -> Iterator[tuple[OllamaTestServer, OpenAITestServer]]:
    with OllamaTestServer() as ollama, OpenAITestServer() as openai:
        yield ollama, openai


def config(tmp_path: Path, ollama: str, openai: str | None) -> Path:
    enable = ["ollama", "tools", "sse", "realtime"] + (["openai"] if openai else [])
    path = tmp_path / "plugins.toml"
    path.write_text(f"""
[kernel]
enable = {json.dumps(enable)}
store = "sqlite:///runs.db"
default_provider = "ollama"

[plugins.ollama]
base_url = "{ollama}"
model = "llama3.2"
""" + (f"""
[plugins.openai]
base_url = "{openai}/v1"
api_key = "sk-test"
model = "gpt-4o-mini"
""" if openai else "") + SCENARIOS)
    return path


def run_schemathesis(url: str, *, server_errors: bool) -> tuple[int, list[str], list[Any]]:
    """Every /api operation, positive and negative data. Returns how many requests went
    out, the failures, and every 5xx answer seen as (operation, status, body)."""
    import requests
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis.checks import not_a_server_error
    from schemathesis.core.failures import FailureGroup
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        status_code_conformance,
    )

    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    checks = [status_code_conformance, content_type_conformance]
    if server_errors:
        checks.append(not_a_server_error)
    calls = 0
    failures: dict[str, str] = {}
    five: list[Any] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if not operation.path.startswith("/api"):
            continue
        for mode in (schemathesis.GenerationMode.POSITIVE,
                     schemathesis.GenerationMode.NEGATIVE):

            @settings(max_examples=8, derandomize=True, database=None, deadline=None,
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def exercise(case: schemathesis.Case) -> None:
                nonlocal calls
                calls += 1
                try:
                    response = case.call(base_url=url, timeout=10)
                except requests.RequestException as exc:
                    failures.setdefault(f"{case.operation.label}: {type(exc).__name__}",
                                        str(exc)[:500])
                    return
                if response.status_code >= 500:
                    five.append((case.operation.label, response.status_code,
                                 response.text[:500]))
                try:
                    case.validate_response(response, checks=checks)
                except FailureGroup as group:
                    for failure in group.exceptions:
                        kind = " ".join(str(failure).split())[:90]
                        failures.setdefault(f"{case.operation.label}: {kind}",
                                            f"{case.query or ''} -> {str(failure)[:500]}")
                except AssertionError as exc:
                    failures.setdefault(f"{case.operation.label}: {exc}"[:120], str(exc))

            try:
                exercise()
            except Unsatisfiable:
                assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label
    return calls, [f"{k}\n    {v}" for k, v in sorted(failures.items())], five


def test_with_openai_no_server_error_and_no_undeclared_answer(
        tmp_path: Path, providers: tuple[OllamaTestServer, OpenAITestServer]) -> None:
    ollama, openai = providers
    with ArmillaryServer(config(tmp_path, ollama.url, openai.url), cwd=tmp_path,
                         log_path=tmp_path / "serve.log") as server:
        calls, failures, five = run_schemathesis(server.url, server_errors=True)
        output = server.output()
    assert calls > 50
    assert not failures, "\n\n".join(failures)
    assert not five
    assert openai.requests, "the upstream routes reached the OpenAI test server"
    assert "Traceback" not in output


def test_without_openai_the_upstream_routes_answer_a_declared_coded_503(
        tmp_path: Path, providers: tuple[OllamaTestServer, OpenAITestServer]) -> None:
    ollama, _ = providers
    with ArmillaryServer(config(tmp_path, ollama.url, None), cwd=tmp_path,
                         log_path=tmp_path / "serve.log") as server:
        calls, failures, five = run_schemathesis(server.url, server_errors=False)
        direct = httpx.get(server.url + "/api/session", timeout=10)
        doc = httpx.get(server.url + "/openapi.json", timeout=10).json()
        output = server.output()
    assert calls > 50
    assert not failures, "\n\n".join(failures)
    assert five, "some generated request reached an upstream route"
    for label, status, body in five:
        assert label in UPSTREAM and status == 503, (label, status, body)
        assert json.loads(body)["code"] == "service_unavailable", body
    assert direct.status_code == 503
    error = direct.json()
    assert error["code"] == "service_unavailable" and "openai plugin" in error["detail"]
    for label in UPSTREAM:
        method, path = label.split()
        declared = doc["paths"][path][method.lower()]["responses"]
        assert {"500", "502", "503"} <= set(declared), (label, sorted(declared))
    assert "Traceback" not in output
