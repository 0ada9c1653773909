"""The dvadasa routes in the OpenAPI document `armillary openapi` prints: valid, every
error answer the shared ErrorResponse, the seed's bodies."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.test_openapi import ERROR_REF, openapi_cli


def test_the_document_describes_the_dvadasa_routes(tmp_path: Path) -> None:
    from openapi_spec_validator import validate

    config = tmp_path / "plugins.toml"
    config.write_text("""
[kernel]
enable = ["ollama", "tasks", "dvadasa"]
[plugins.ollama]
base_url = "http://127.0.0.1:9"
""")
    doc = openapi_cli(config, tmp_path)
    validate(doc)
    paths = doc["paths"]
    prompt = paths["/v1/sessions/{session_id}/prompt"]["post"]
    assert {"400", "404", "422", "500", "503"} <= set(prompt["responses"])
    assert "/v1/sessions" in paths and "/v1/sessions/{session_id}" in paths
    for path in ("/v1/sessions", "/v1/sessions/{session_id}",
                 "/v1/sessions/{session_id}/prompt"):
        for op in paths[path].values():
            for status, response in op["responses"].items():
                if int(status) >= 400:
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": ERROR_REF}, (path, status)
    final = doc["components"]["schemas"]["FinalResponse"]
    assert set(final["required"]) == {"task_id", "final_answer", "transparency_report",
                                      "head_contributions", "confidence_score"}
