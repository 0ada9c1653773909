"""The safety plugin's routes in `armillary openapi`, with every other plugin: a valid
document under the project's rules (one error model, 422 declared where there are
parameters), and the SSE route declaring what it sends."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.test_openapi import EVERYTHING, _content, check_document, openapi_cli


def test_the_document_holds_the_safety_routes_under_the_projects_rules(
        tmp_path: Path) -> None:
    config = tmp_path / "plugins.toml"
    enable = ", ".join(f'"{name}"' for name in [*EVERYTHING, "safety"])
    config.write_text(f"""
[kernel]
enable = [{enable}]
default_provider = "ollama"

[plugins.ollama]
base_url = "http://127.0.0.1:9"

[plugins.openai]
base_url = "http://127.0.0.1:9/v1"
api_key = "test-key"
""")
    doc = openapi_cli(config, tmp_path)
    check_document(doc)
    for path in ("/v1/safety/audit", "/v1/safety/events", "/v1/safety/rules"):
        assert path in doc["paths"], path
    assert set(_content(doc, "get", "/v1/safety/events", "200")) == {"text/event-stream"}
    assert "422" in doc["paths"]["/v1/safety/audit"]["get"]["responses"]
