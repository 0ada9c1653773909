"""The OpenAPI document with every first-party plugin on, through the real paths: the
`armillary openapi` command and `GET /openapi.json` of a real `armillary serve`. It must
be a valid OpenAPI 3.1 document (openapi-spec-validator), declare the real media types of
the streaming routes and the real error model, and hold up against schemathesis: no
request it generates gets a 5xx, and every status and content type the server answers is
one the document declares. Nothing leaves the machine: the providers are the loopback
Ollama and OpenAI test servers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from armillary.testing import ArmillaryServer
from tests.support.ollama_server import OllamaTestServer
from tests.support.openai_server import OpenAITestServer

REPO = Path(__file__).resolve().parents[2]
#: plugins that refuse requests by design (a key, a budget): the route-coverage test
#: (tests/e2e/test_route_coverage.py) covers them; here they would turn every generated
#: request into a 401 or 429 and test nothing else
REFUSING = {"auth", "ratelimit"}


def first_party_plugins() -> list[str]:
    names: list[str] = []
    for project in sorted((REPO / "plugins").glob("*/pyproject.toml")):
        meta = tomllib.loads(project.read_text(encoding="utf-8"))
        names += list(meta["project"].get("entry-points", {}).get("armillary", {}))
    return names


#: every first-party plugin (but the refusing ones) and the contrib unit (`units`)
EVERYTHING = [n for n in first_party_plugins() if n not in REFUSING] + ["units"]
ERROR_REF = "#/components/schemas/ErrorResponse"


@pytest.fixture
def providers() -> Iterator[tuple[OllamaTestServer, OpenAITestServer]]:
    with OllamaTestServer() as ollama, OpenAITestServer() as openai:
        yield ollama, openai


def write_config(tmp_path: Path, ollama_url: str, openai_url: str) -> Path:
    config = tmp_path / "plugins.toml"
    config.write_text(f"""
[kernel]
enable = {json.dumps(EVERYTHING)}
store = "sqlite:///runs.db"
default_provider = "ollama"

[plugins.ollama]
base_url = "{ollama_url}"
model = "llama3.2"

[plugins.openai]
base_url = "{openai_url}/v1"
api_key = "test-key"
model = "gpt-4o-mini"

[plugins.tasks]
wait_timeout_seconds = 5
""")
    return config


def openapi_cli(config: Path, tmp_path: Path) -> dict[str, Any]:
    out = tmp_path / "openapi.json"
    proc = subprocess.run([sys.executable, "-m", "armillary", "openapi", "--config",
                           str(config), "-o", str(out)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    doc: dict[str, Any] = json.loads(out.read_text())
    return doc


def _content(doc: dict[str, Any], method: str, path: str, status: str) -> dict[str, Any]:
    content: dict[str, Any] = doc["paths"][path][method]["responses"][status]["content"]
    return content


def check_document(doc: dict[str, Any]) -> None:
    validate(doc)  # raises OpenAPIValidationError with the JSON path of the problem
    paths = doc["paths"]
    for path in ("/v1/tasks", "/v1/tasks/{task_id}", "/v1/stream/tasks/{task_id}", "/chat",
                 "/chat/{conversation_id}", "/agents", "/ollama/chat", "/ollama/models",
                 "/v1/tools", "/health", "/v1/plugins"):
        assert path in paths, path
    # streaming routes declare what they really send
    assert set(_content(doc, "get", "/v1/stream/tasks/{task_id}", "200")) == \
        {"text/event-stream"}
    assert set(_content(doc, "post", "/chat", "200")) == \
        {"application/json", "text/plain", "text/event-stream"}
    assert set(_content(doc, "post", "/ollama/chat", "200")) == \
        {"application/json", "application/x-ndjson"}
    # one error model: every 4xx/5xx is the shared ErrorResponse, 422 included
    schemas = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert {"detail", "code"} <= set(schemas["ErrorResponse"]["required"])
    assert "errors" in schemas["ErrorResponse"]["properties"]
    for path, item in paths.items():
        for method, op in item.items():
            for status, response in op["responses"].items():
                if int(status) >= 400:
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": ERROR_REF}, (method, path, status)
            assert "422" in op["responses"] or not (op.get("parameters") or
                                                    op.get("requestBody")), (method, path)


def test_the_cli_prints_a_valid_document_with_every_plugin(tmp_path: Path) -> None:
    # providers need not answer to describe the API: unreachable loopback ports
    doc = openapi_cli(write_config(tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9"),
                      tmp_path)
    check_document(doc)


def test_the_cli_prints_the_document_of_the_shipped_profile(tmp_path: Path) -> None:
    doc = openapi_cli(REPO / "plugins.toml", tmp_path)
    validate(doc)
    assert "/v1/stream/tasks/{task_id}" in doc["paths"]


def test_a_running_server_serves_the_document_and_the_docs_page(
        tmp_path: Path, providers: tuple[OllamaTestServer, OpenAITestServer]) -> None:
    ollama, openai = providers
    config = write_config(tmp_path, ollama.url, openai.url)
    from_cli = openapi_cli(config, tmp_path)
    with ArmillaryServer(config, cwd=tmp_path, log_path=tmp_path / "serve.log") as server:
        response = httpx.get(server.url + "/openapi.json", timeout=10)
        assert response.status_code == 200, response.text
        served = response.json()
        docs = httpx.get(server.url + "/docs", timeout=10)
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
    check_document(served)
    assert served == from_cli
    assert "Traceback" not in server.output()


def _run_schemathesis(url: str) -> tuple[int, list[str]]:
    """Every operation, positive and negative data, a few deterministic examples each.
    Returns how many requests went out and the failures found."""
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
    checks = [not_a_server_error, status_code_conformance, content_type_conformance]
    calls = 0
    failures: dict[str, str] = {}  # one example per operation and kind of failure

    def found(case: schemathesis.Case, text: str) -> None:
        kind = " ".join(text.split())[:90]
        failures.setdefault(f"{case.operation.label}: {kind}", f"{case.method} "
                            f"{case.formatted_path} {case.query or ''} -> {text[:700]}")
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (schemathesis.GenerationMode.POSITIVE,
                     schemathesis.GenerationMode.NEGATIVE):

            @settings(max_examples=8, derandomize=True, database=None, deadline=None,
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def exercise(case: schemathesis.Case) -> None:
                nonlocal calls
                calls += 1
                try:
                    case.call_and_validate(base_url=url, checks=checks, timeout=10)
                except FailureGroup as group:
                    for failure in group.exceptions:
                        found(case, str(failure))
                except (AssertionError, requests.RequestException) as exc:
                    # a dropped connection is a failure too (requests.ConnectionError)
                    found(case, f"{type(exc).__name__}: {exc}")

            try:
                exercise()
            except Unsatisfiable:  # no input to get wrong (GET /agents): nothing negative
                assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label
    return calls, [f"{key}\n    {example}" for key, example in sorted(failures.items())]


def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(
        tmp_path: Path, providers: tuple[OllamaTestServer, OpenAITestServer]) -> None:
    ollama, openai = providers
    config = write_config(tmp_path, ollama.url, openai.url)
    with ArmillaryServer(config, cwd=tmp_path, log_path=tmp_path / "serve.log") as server:
        started = time.monotonic()
        calls, failures = _run_schemathesis(server.url)
        elapsed = time.monotonic() - started
    print(f"schemathesis: {calls} requests in {elapsed:.1f}s")
    assert calls > 100
    assert not failures, f"{len(failures)} kinds of failure:\n" + "\n\n".join(failures)
    assert "Traceback" not in server.output()
