"""The HTTP contract a generated client relies on, against a real `armillary serve` (SQLite
store, the loopback Ollama test server): integers are bounded (422, never a 500 or a
dropped stream), every error body is the documented `ErrorResponse` and every status a
route answers is in the OpenAPI document, unparseable bodies are a 422 that says what is
wrong, request bodies are strict everywhere, and 405 answers list every method."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from armillary.testing import ArmillaryServer
from tests.support.ollama_server import OllamaTestServer

HUGE = "100000000000000000000000"  # 10**23: past SQLite's 2**63 - 1
MAX_POSITION = 2**53 - 1


class Api:
    def __init__(self, server: ArmillaryServer, ollama: OllamaTestServer,
                 folder: Path) -> None:
        self.folder = folder
        self.url = server.url
        self.server = server
        self.ollama = ollama
        self.client = httpx.Client(base_url=server.url, timeout=15)
        self.doc: dict[str, Any] = self.client.get("/openapi.json").json()
        self.task_id = self.client.post("/v1/tasks", json={"task": "hi", "wait": True}
                                        ).json()["task_id"]

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, path, **kwargs)

    def documented(self, response: httpx.Response, method: str, template: str,
                   code: str | None = None) -> dict[str, Any]:
        """The error body, checked against the document: the status is listed for the
        operation and the body is valid against the schema listed for it."""
        operation = self.doc["paths"][template][method.lower()]
        status = str(response.status_code)
        assert status in operation["responses"], \
            f"{method} {template} answered {status}, documents {list(operation['responses'])}"
        schema = operation["responses"][status]["content"]["application/json"]["schema"]
        body: dict[str, Any] = response.json()
        Draft202012Validator({**schema, "components": self.doc["components"]}).validate(body)
        if code is not None:
            assert body["code"] == code, body
        return body


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    folder = tmp_path_factory.mktemp("contract")
    with OllamaTestServer() as ollama:
        config = folder / "plugins.toml"
        config.write_text(f"""
[kernel]
enable = ["ollama", "tools", "tasks", "sse", "chat", "agents"]
store = "sqlite:///runs.db"

[plugins.ollama]
base_url = "{ollama.url}"
model = "llama3.2"
""")
        server = ArmillaryServer(config, cwd=folder, log_path=folder / "serve.log")
        for key in [k for k in server.env if k.startswith("ARMILLARY_")]:
            del server.env[key]
        with server:
            api = Api(server, ollama, folder)
            yield api
            api.client.close()
        assert "Traceback" not in server.output()


# --- issue 8.3: bounded integers ------------------------------------------------------

@pytest.mark.parametrize("path", ["/v1/tasks", "/v1/tasks/{task_id}/steps",
                                  "/v1/tasks/{task_id}/tools", "/v1/tools"])
def test_a_huge_offset_or_limit_is_422_not_a_500(api: Api, path: str) -> None:
    url = path.format(task_id=api.task_id)
    for name, value in (("offset", HUGE), ("limit", HUGE), ("offset", "-1"),
                        ("offset", str(MAX_POSITION + 1)), ("limit", "1001")):
        response = api.request("GET", url, params={name: value})
        assert response.status_code == 422, (name, value, response.text)
        body = api.documented(response, "GET", path, "validation_error")
        assert body["errors"][0]["loc"] == ["query", name]
        assert name in body["detail"]
    largest = api.request("GET", url, params={"offset": str(MAX_POSITION)})
    assert largest.status_code == 200 and largest.json()["items"] == []


def test_a_huge_max_steps_or_max_tokens_is_422(api: Api) -> None:
    response = api.request("POST", "/v1/tasks", json={"task": "x", "max_steps": 10**23})
    assert api.documented(response, "POST", "/v1/tasks", "validation_error")["errors"][0][
        "loc"] == ["body", "max_steps"]
    response = api.request("POST", "/ollama/chat", json={"model": "llama3.2", "message": "x",
                                                        "max_tokens": 10**23})
    assert api.documented(response, "POST", "/ollama/chat", "validation_error")["errors"][0][
        "loc"] == ["body", "max_tokens"]


@pytest.mark.parametrize(("where", "value"), [
    ("header", HUGE), ("query", HUGE), ("header", "abc"), ("header", "-1"), ("header", ""),
    ("header", "1e30"), ("header", str(MAX_POSITION + 1)), ("query", "abc")])
def test_a_bad_last_event_id_on_sse_is_422_before_the_stream(api: Api, where: str,
                                                             value: str) -> None:
    kwargs: dict[str, Any] = {"headers": {"Accept": "text/event-stream"}}
    if where == "header":
        kwargs["headers"]["Last-Event-ID"] = value
    else:
        kwargs["params"] = {"last_event_id": value}
    response = api.request("GET", f"/v1/stream/tasks/{api.task_id}", **kwargs)
    assert response.status_code == 422, response.text
    body = api.documented(response, "GET", "/v1/stream/tasks/{task_id}", "validation_error")
    assert body["errors"][0]["loc"] == (["header", "last-event-id"] if where == "header"
                                        else ["query", "last_event_id"])


def test_the_largest_last_event_id_is_a_stream_that_ends(api: Api) -> None:
    with api.client.stream("GET", f"/v1/stream/tasks/{api.task_id}", headers={
            "Accept": "text/event-stream", "Last-Event-ID": str(MAX_POSITION)}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())
    assert text.startswith("retry:") and "event:" not in text  # nothing after it; ended


@pytest.mark.parametrize("value", [HUGE, str(MAX_POSITION + 1), "abc"])
def test_a_bad_last_event_id_on_the_websocket_is_an_error_and_close_4422(api: Api,
                                                                          value: str) -> None:
    url = api.url.replace("http://", "ws://") + \
        f"/v1/stream/tasks/{api.task_id}?last_event_id={value}"
    with connect(url) as ws:
        first = json.loads(ws.recv(timeout=10))
        assert first["type"] == "error"
        assert first["payload"]["code"] == "validation_error"
        assert "last_event_id" in first["payload"]["detail"]
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
    assert ws.close_code == 4422


# --- issue 8.5 (a), (b): the documented error model and statuses ----------------------

def test_the_document_describes_the_error_model_the_server_sends(api: Api) -> None:
    schemas = api.doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    response = api.request("POST", "/v1/tasks", json={"task": "", "max_steps": "3"})
    body = api.documented(response, "POST", "/v1/tasks", "validation_error")
    assert {tuple(e["loc"]) for e in body["errors"]} == {("body", "task"),
                                                         ("body", "max_steps")}


def test_every_error_status_a_route_answers_is_documented(api: Api) -> None:
    r = api.request
    cases = [
        (r("GET", "/v1/tasks/nope"), "GET", "/v1/tasks/{task_id}", "task_not_found"),
        (r("GET", "/v1/tasks/nope/result"), "GET", "/v1/tasks/{task_id}/result",
         "task_not_found"),
        (r("DELETE", "/v1/tasks/nope"), "DELETE", "/v1/tasks/{task_id}", "task_not_found"),
        (r("DELETE", f"/v1/tasks/{api.task_id}"), "DELETE", "/v1/tasks/{task_id}",
         "task_finished"),
        (r("POST", f"/v1/tasks/{api.task_id}/control", json={"action": "pause"}), "POST",
         "/v1/tasks/{task_id}/control", "task_finished"),
        (r("POST", "/v1/tasks/x/control", json={"action": "explode"}), "POST",
         "/v1/tasks/{task_id}/control", "validation_error"),
        (r("GET", "/v1/tasks/nope/plan"), "GET", "/v1/tasks/{task_id}/plan",
         "task_not_found"),
        (r("POST", "/v1/tasks", json={"task": "x", "agent": "nobody"}), "POST", "/v1/tasks",
         "agent_not_found"),
        (r("GET", "/v1/stream/tasks/nope"), "GET", "/v1/stream/tasks/{task_id}",
         "task_not_found"),
        (r("GET", f"/v1/stream/tasks/{api.task_id}", headers={"Accept": "application/json"}),
         "GET", "/v1/stream/tasks/{task_id}", "not_acceptable"),
        (r("GET", "/chat/nope"), "GET", "/chat/{conversation_id}", "conversation_not_found"),
        (r("DELETE", "/chat/nope"), "DELETE", "/chat/{conversation_id}",
         "conversation_not_found"),
        (r("POST", "/chat", json={"message": "hi", "agent": "nobody"}), "POST", "/chat",
         "agent_not_found"),
        (r("POST", "/chat", json={"message": "x" * 100_000}), "POST", "/chat",
         "message_too_long"),
        (r("GET", "/ollama/models", params={"provider": "nope"}), "GET", "/ollama/models",
         "provider_not_found"),
        (r("POST", "/ollama/chat", json={"model": "llama3.2", "message": "x",
                                         "provider": "nope"}), "POST", "/ollama/chat",
         "provider_not_found"),
        (r("POST", "/ollama/chat", json={"model": "no-such-model", "message": "x"}), "POST",
         "/ollama/chat", "model_not_found"),
    ]
    for response, method, template, code in cases:
        assert response.status_code >= 400, (method, template, response.text)
        api.documented(response, method, template, code)


def test_every_operation_documents_its_errors_with_the_shared_schema(api: Api) -> None:
    for path, item in api.doc["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert "500" in responses, (method, path)
            if operation.get("requestBody"):
                assert {"408", "413", "422"} <= set(responses), (method, path)
            for status, response in responses.items():
                if int(status) >= 400:
                    assert response["content"] == {"application/json": {"schema": {
                        "$ref": "#/components/schemas/ErrorResponse"}}}, (method, path)


# --- issue 8.5 (c): bodies that cannot be parsed --------------------------------------

DEEP = b"[" * 5000 + b"]" * 5000


@pytest.mark.parametrize("path", ["/v1/tasks", "/chat", "/ollama/chat"])
@pytest.mark.parametrize(("body", "says"), [
    (b'{"task": "\xff\xfe", "message": "x"}', "not valid UTF-8"),
    (b'{"task": "caf\xe9"}', "not valid UTF-8"),
    (b'{"task": ' + DEEP + b"}", "nested too deeply"),
    (DEEP, "nested too deeply"),
    (b'{"task": ', "not valid JSON"),
])
def test_an_unparseable_body_is_a_422_that_says_what_is_wrong(api: Api, path: str,
                                                               body: bytes, says: str) -> None:
    response = api.request("POST", path, content=body,
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    detail = api.documented(response, "POST", path, "validation_error")["detail"]
    assert detail.startswith("body: ") and says in detail, detail


# --- issue 8.5 (d): strict request bodies ---------------------------------------------

@pytest.mark.parametrize(("path", "body", "field"), [
    ("/chat", {"message": "hi", "stream": "yes"}, "stream"),
    ("/chat", {"message": "hi", "stream": 1}, "stream"),
    ("/chat", {"message": 5}, "message"),
    ("/ollama/chat", {"model": "llama3.2", "message": "hi", "stream": "yes"}, "stream"),
    ("/ollama/chat", {"model": "llama3.2", "message": "hi", "max_tokens": "9"}, "max_tokens"),
    ("/ollama/chat", {"model": "llama3.2", "message": "hi",
                      "conversation_history": [{"role": "user", "content": 5}]},
     "conversation_history"),
    ("/v1/tasks", {"task": "hi", "stream": "yes"}, "stream"),
    ("/v1/tasks", {"task": "hi", "wait": 1}, "wait"),
])
def test_request_bodies_are_strict_everywhere(api: Api, path: str, body: dict[str, Any],
                                              field: str) -> None:
    response = api.request("POST", path, json=body)
    assert response.status_code == 422, response.text
    errors = api.documented(response, "POST", path, "validation_error")["errors"]
    assert errors[0]["loc"][:2] == ["body", field]


def test_well_typed_bodies_still_work(api: Api) -> None:
    chat = api.request("POST", "/chat", json={"message": "hi", "stream": False})
    assert chat.status_code == 200 and chat.json()["reply"]
    ollama = api.request("POST", "/ollama/chat", json={
        "model": "llama3.2", "message": "hi", "temperature": 1, "stream": True,
        "conversation_history": [{"role": "user", "content": None}]})
    assert ollama.status_code == 200
    assert ollama.headers["content-type"].startswith("application/x-ndjson")


# --- issue 8.5 (e): Allow lists every method ------------------------------------------

@pytest.mark.parametrize(("method", "path", "allow"), [
    ("OPTIONS", "/v1/tasks/{task_id}", "GET, HEAD, DELETE"),
    ("PUT", "/v1/tasks/{task_id}", "GET, HEAD, DELETE"),
    ("OPTIONS", "/chat/some-conversation", "GET, HEAD, DELETE"),
    ("PATCH", "/v1/tasks", "GET, HEAD, POST"),
    ("GET", "/chat", "POST"),
    ("POST", "/v1/tasks/{task_id}/result", "GET, HEAD"),
])
def test_a_405_lists_every_method_the_path_serves(api: Api, method: str, path: str,
                                                  allow: str) -> None:
    response = api.request(method, path.format(task_id=api.task_id))
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.json()["code"] == "method_not_allowed"
    # and the document agrees with the header
    template = path if "{" in path or path in api.doc["paths"] else "/chat/{conversation_id}"
    documented = {m.upper() for m in api.doc["paths"][template]}
    # HEAD is served on every GET route by the kernel, not documented per route
    assert documented | ({"HEAD"} if "GET" in documented else set()) == set(allow.split(", "))


def test_the_server_ran_with_the_sqlite_store(api: Api) -> None:
    assert (api.folder / "runs.db").stat().st_size > 0
