"""The metrics plugin end to end: a real `armillary serve` (metrics, tasks, tools, sse,
ollama against the Ollama test server), JSON logs on, scraped over HTTP and parsed with
prometheus-client's own parser."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

from armillary.testing import ArmillaryServer
from tests.support.ollama_server import OllamaTestServer, Reply

SECRET = "sup3rsecretvalue42"


def brain(body: dict[str, Any]) -> Reply:
    """Calls the calculator once, then answers with its result."""
    messages = body["messages"]
    if messages[-1]["role"] == "tool":
        return Reply(text=f"The result is {messages[-1]['content']}")
    return Reply(tool_calls=[{"name": "calculator", "arguments": {"expression": "6*7"}}])


@pytest.fixture
def ollama() -> Iterator[OllamaTestServer]:
    with OllamaTestServer(respond=brain) as server:
        yield server


def write_config(tmp_path: Path, ollama: OllamaTestServer, extra: str = "") -> Path:
    config = tmp_path / "plugins.toml"
    config.write_text(f"""
[kernel]
enable = ["ollama", "tools", "tasks", "sse", "metrics"]
store = "sqlite:///runs.db"

[plugins.ollama]
base_url = "{ollama.url}"
model = "llama3.2"
{extra}
""")
    return config


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    response = httpx.get(url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):  # raises if malformed
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    return {dict(k)[label] for (n, k) in samples if n == name and label in dict(k)}


def test_requests_and_a_run_move_the_counters_with_route_templates_and_json_logs(
        tmp_path: Path, ollama: OllamaTestServer) -> None:
    config = write_config(tmp_path, ollama)
    log = tmp_path / "serve.log"
    with ArmillaryServer(config, env={"ARMILLARY_LOG_FORMAT": "json"},
                         log_path=log) as server:
        before = scrape(server.url)
        assert value(before, "armillary_runs_total", agent="default",
                     strategy="single_agent", status="completed") == 0

        created = httpx.post(server.url + "/v1/tasks", json={"task": "6*7?", "wait": True},
                             headers={"X-Request-ID": "req-e2e-1"})
        assert created.status_code in (200, 202), created.text
        assert created.headers["x-request-id"] == "req-e2e-1"
        task_id = created.json()["task_id"]
        # a malformed incoming id (spaces, quotes) is replaced, not echoed into logs
        fresh = httpx.get(server.url + "/health", headers={"X-Request-ID": "bad id {\"x\": 1}"})
        assert fresh.headers["x-request-id"] != "bad id {\"x\": 1}"
        assert len(fresh.headers["x-request-id"]) == 32

        # 20 distinct ids: one route label, not 20
        for i in range(20):
            assert httpx.get(f"{server.url}/v1/tasks/missing-{i}").status_code == 404
        assert httpx.get(f"{server.url}/no/such/path/{task_id}").status_code == 404
        # a secret in a query string (what an EventSource client sends) never reaches a log
        with httpx.stream("GET", f"{server.url}/v1/stream/tasks/{task_id}?api_key={SECRET}",
                          headers={"Accept": "text/event-stream"}, timeout=30) as stream:
            assert stream.status_code == 200
            assert stream.headers["x-request-id"]
            lines = list(stream.iter_lines())
        assert "event: completed" in lines
        ws_url = server.url.replace("http://", "ws://") + f"/v1/stream/tasks/{task_id}"
        with connect(ws_url) as ws:
            messages = [json.loads(m) for m in ws]
        assert messages[-1]["type"] == "completed"

        deadline = time.monotonic() + 5
        while True:  # the server notices the WebSocket's close just after we do
            after = scrape(server.url)
            if value(after, "armillary_streams_open", transport="websocket",
                     route="/v1/stream/tasks/{task_id}") == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.05)

    assert value(after, "armillary_http_requests_total", method="POST", route="/v1/tasks",
                 status="2xx") == 1
    assert value(after, "armillary_http_requests_total", method="GET",
                 route="/v1/tasks/{task_id}", status="4xx") == 20
    assert value(after, "armillary_http_requests_total", method="GET",
                 route="(unmatched)", status="4xx") == 1
    assert value(after, "armillary_http_request_duration_seconds_count", method="POST",
                 route="/v1/tasks", status="2xx") == 1
    # the scrape before counts on the next one: /metrics itself is a route like any other
    assert value(after, "armillary_http_requests_total", method="GET", route="/metrics",
                 status="2xx") >= 1
    routes = label_values(after, "armillary_http_requests_total", "route")
    assert routes <= {"/v1/tasks", "/v1/tasks/{task_id}", "/health", "/metrics",
                      "/v1/stream/tasks/{task_id}", "(unmatched)"}, routes
    assert not any(task_id in r or "missing" in r for r in routes)

    assert value(after, "armillary_runs_submitted_total", agent="default",
                 strategy="single_agent") == 1
    assert value(after, "armillary_runs_total", agent="default", strategy="single_agent",
                 status="completed") == 1
    assert value(after, "armillary_run_duration_seconds_count", agent="default",
                 strategy="single_agent", status="completed") == 1
    assert value(after, "armillary_run_queue_wait_seconds_count", agent="default",
                 strategy="single_agent") == 1
    assert value(after, "armillary_run_queue_depth") == 0
    assert value(after, "armillary_runs_in_flight", state="running") == 0
    assert value(after, "armillary_tool_calls_total", tool="calculator", success="true") == 1
    assert value(after, "armillary_tool_call_duration_seconds_count", tool="calculator") == 1

    stream_route = "/v1/stream/tasks/{task_id}"
    assert value(after, "armillary_streams_total", transport="sse", route=stream_route) == 1
    assert value(after, "armillary_streams_total", transport="websocket",
                 route=stream_route) == 1
    assert value(after, "armillary_streams_open", transport="sse", route=stream_route) == 0
    assert value(after, "armillary_streams_open", transport="websocket",
                 route=stream_route) == 0
    assert value(after, "armillary_stream_duration_seconds_count", transport="sse",
                 route=stream_route) == 1
    assert value(after, "armillary_http_requests_total", method="GET", route=stream_route,
                 status="2xx") == 1
    assert value(after, "process_resident_memory_bytes") > 0

    text = log.read_text(errors="replace")
    assert SECRET not in text
    records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert records, text[-2000:]
    non_json = [line for line in text.splitlines() if line.strip() and not
                line.startswith("{")]
    assert not non_json, non_json[:5]
    post = [r for r in records if r.get("logger") == "uvicorn.access"
            and r.get("method") == "POST"]
    assert post and post[0]["request_id"] == "req-e2e-1" and post[0]["path"] == "/v1/tasks"
    assert post[0]["status"] in (200, 202)
    streamed = [r for r in records if r.get("logger") == "uvicorn.access"
                and "/v1/stream/tasks/" in r.get("path", "")]
    assert streamed and streamed[0]["path"].endswith("?api_key=***")
    assert all("request_id" in r for r in records if r.get("logger") == "uvicorn.access")
    finished = [r for r in records if r.get("run_id") == task_id]
    assert finished, "no log line names the run"
    run_line = next(r for r in finished if r.get("logger") == "armillary.metrics.runs")
    assert run_line["status"] == "completed" and run_line["agent"] == "default"
    assert run_line["level"] == "info" and run_line["ts"].endswith("Z")
    assert "Traceback" not in text


def test_http_metrics_off_keeps_request_ids_and_run_metrics(
        tmp_path: Path, ollama: OllamaTestServer) -> None:
    config = write_config(tmp_path, ollama, "[plugins.metrics]\nhttp = false\n")
    with ArmillaryServer(config, log_path=tmp_path / "serve.log") as server:
        created = httpx.post(server.url + "/v1/tasks", json={"task": "6*7?", "wait": True})
        assert created.headers["x-request-id"]
        samples = scrape(server.url)
    assert not label_values(samples, "armillary_http_requests_total", "route")
    assert value(samples, "armillary_runs_total", agent="default", strategy="single_agent",
                 status="completed") == 1


def slow_brain(body: dict[str, Any]) -> Reply:
    """Streams slowly, so a run stays running (and the next one queued) for a while."""
    return Reply(text="one two three four five six seven eight nine ten", delay=0.5)


def test_queue_depth_and_runs_in_flight_follow_the_runs_and_cancels_count(
        tmp_path: Path) -> None:
    with OllamaTestServer(respond=slow_brain) as ollama:
        config = write_config(tmp_path, ollama)
        text = config.read_text().replace("[kernel]\n", "[kernel]\nmax_concurrent_runs = 1\n")
        config.write_text(text)
        with ArmillaryServer(config, log_path=tmp_path / "serve.log") as server:
            first = httpx.post(server.url + "/v1/tasks", json={"task": "a"}).json()["task_id"]
            second = httpx.post(server.url + "/v1/tasks", json={"task": "b"}).json()["task_id"]
            deadline = time.monotonic() + 10
            while True:  # the first takes the one worker; the second waits for it
                busy = scrape(server.url)
                if value(busy, "armillary_runs_in_flight", state="running") == 1 \
                        or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert value(busy, "armillary_run_queue_depth") == 1
            assert ollama.wait_until(lambda: ollama.open_streams == 1, 10)
            for task_id in (second, first):
                assert httpx.delete(f"{server.url}/v1/tasks/{task_id}").status_code == 200
            done = scrape(server.url)
            assert ollama.wait_until(lambda: ollama.open_streams == 0, 10)
    assert value(done, "armillary_run_queue_depth") == 0
    assert value(done, "armillary_runs_in_flight", state="running") == 0
    assert value(done, "armillary_runs_total", agent="default", strategy="single_agent",
                 status="cancelled") == 2
    # the one that never started was timed from its queueing, the other from its start
    assert value(done, "armillary_run_duration_seconds_count", agent="default",
                 strategy="single_agent", status="cancelled") == 2
    assert value(done, "armillary_run_queue_wait_seconds_count", agent="default",
                 strategy="single_agent") == 1


def test_provider_calls_fill_the_provider_metrics(tmp_path: Path) -> None:
    """The kernel's checked provider reports each call as a `provider.call` firehose
    event: a task run's calls and a streamed /ollama/chat show up by provider and model,
    with their time to first token."""
    with OllamaTestServer(default=Reply(tokens=["Hel", "lo"], delay=0.01)) as ollama:
        config = write_config(tmp_path, ollama)
        with ArmillaryServer(config) as server:
            done = httpx.post(server.url + "/v1/tasks", json={"task": "hi", "wait": True},
                              timeout=30)
            assert done.status_code == 200, done.text
            with httpx.stream("POST", server.url + "/ollama/chat", timeout=30,
                              json={"model": "llama3.2", "message": "hi",
                                    "stream": True}) as r:
                assert r.status_code == 200
                list(r.iter_lines())
            deadline = time.monotonic() + 5
            while True:
                samples = scrape(server.url)
                calls = value(samples, "armillary_provider_requests_total", provider="ollama",
                              model="llama3.2", outcome="ok")
                if calls >= 2 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
    assert calls == 2, [(k, v) for k, v in samples.items()
                        if k[0] == "armillary_provider_requests_total"]
    assert value(samples, "armillary_provider_time_to_first_token_seconds_count",
                 provider="ollama", model="llama3.2") == 2
    assert value(samples, "armillary_provider_request_duration_seconds_count",
                 provider="ollama", model="llama3.2") == 2
