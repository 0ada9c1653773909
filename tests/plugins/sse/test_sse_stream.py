"""GET /v1/stream/tasks/{id} as Server-Sent Events: replay, follow, resume, end."""

from __future__ import annotations

import asyncio

import pytest

from armillary._errors import ProviderError
from armillary._models import ToolCall
from armillary.testing import Turn
from tests.plugins.tasks.served import read_sse, tasks_server

CALC = ToolCall(name="calculator", arguments={"expression": "1+1"})


async def test_a_live_stream_carries_every_event_in_order_and_ends_with_the_run() -> None:
    turns = [Turn(tool_calls=[CALC], delay=0.01), Turn(text="the answer is two", delay=0.05)]
    async with tasks_server(turns) as s:
        task_id = await s.submit()
        events = await read_sse(s.client, f"/v1/stream/tasks/{task_id}")
        names = [e.event for e in events]
        assert names[0] == "queued" and names[-1] == "completed"
        assert {"running", "step", "tool_call", "message", "memory_summary"} <= set(names)
        ids = [e.id for e in events]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        assert events[-1].data["result"] == "the answer is two"
        step = next(e for e in events if e.event == "step")
        assert step.data["step_number"] == 1
        assert step.data["tool_calls"] == [{"tool_name": "calculator", "success": True}]
        tokens = "".join(e.data["delta"] for e in events if e.event == "token")
        assert tokens == "the answer is two"


async def test_a_client_after_the_run_finished_gets_the_full_replay_then_the_end() -> None:
    async with tasks_server(["done"]) as s:
        task_id = await s.submit()
        await s.finished(task_id)
        events = await read_sse(s.client, f"/v1/stream/tasks/{task_id}")
        stored = await s.kernel.store.events(task_id)
        assert [e.id for e in events] == [e.seq for e in stored]
        assert events[-1].event == "completed"


async def test_last_event_id_resumes_with_no_loss_and_no_duplicates() -> None:
    turns = [Turn(tool_calls=[CALC], delay=0.02)] * 3 + [Turn(text="end of story", delay=0.02)]
    async with tasks_server(turns) as s:
        task_id = await s.submit()
        first = await read_sse(s.client, f"/v1/stream/tasks/{task_id}", limit=4)
        rest = await read_sse(s.client, f"/v1/stream/tasks/{task_id}",
                              headers={"Last-Event-ID": str(first[-1].id)})
        after = first[-1].id or 0
        stored = [e for e in await s.kernel.store.events(task_id) if e.seq > after]
        ids = [e.id or 0 for e in rest]
        assert ids == sorted(set(ids)) and ids[0] == after + 1
        assert [e.id for e in rest if e.event != "token"] == [
            e.seq for e in stored if e.type != "token"]
        assert "".join(e.data["delta"] for e in rest if e.event == "token") == "".join(
            e.payload["delta"] for e in stored if e.type == "token")
        assert rest[-1].event == "completed"
        by_query = await read_sse(s.client,
                                  f"/v1/stream/tasks/{task_id}?last_event_id={first[-1].id}")
        assert [e.id for e in by_query] == [e.id for e in rest]


async def test_token_deltas_are_coalesced_but_none_of_the_text_is_lost(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # one token event per streamed piece, faster than the stream's 0.2 s write interval
    monkeypatch.setattr("armillary._default_plugins.single_agent.TOKEN_FLUSH_SECONDS", 0)
    text = " ".join(f"w{i}" for i in range(80))
    async with tasks_server([Turn(text=text, delay=0.01)]) as s:
        task_id = await s.submit()
        events = await read_sse(s.client, f"/v1/stream/tasks/{task_id}")  # live, from 0
        assert events[-1].event == "completed"
        stored = [e for e in await s.kernel.store.events(task_id) if e.type == "token"]
        sent = [e for e in events if e.event == "token"]
        assert len(sent) < len(stored)  # merged in the stream's writes...
        assert "".join(e.data["delta"] for e in sent) == text  # ...with every piece, in order
        assert "".join(e.payload["delta"] for e in stored) == text
        assert {e.id for e in sent} <= {e.seq for e in stored}  # ids of merged events


async def test_idle_streams_get_heartbeats() -> None:
    nap = Turn(tool_calls=[ToolCall(name="nap", arguments={"seconds": 5})])
    config = {"plugins": {"sse": {"heartbeat_seconds": 0.05}}}
    async with tasks_server([nap, "done"], config=config) as s:
        task_id = await s.submit()
        comments: list[str] = []
        await asyncio.wait_for(read_sse(s.client, f"/v1/stream/tasks/{task_id}",
                                        comments=comments, stop_on_comment=True), 5)
        assert ": heartbeat" in comments
        await s.client.delete(f"/v1/tasks/{task_id}")


async def test_a_provider_failing_mid_run_ends_the_stream_with_a_failed_event() -> None:
    failing = Turn(text="a b c d e", fail_after=2, delay=0.02,
                   error=ProviderError("upstream broke", code="provider_error"))
    async with tasks_server([failing]) as s:
        task_id = await s.submit()
        events = await read_sse(s.client, f"/v1/stream/tasks/{task_id}")
        assert events[-1].event == "failed"
        assert events[-1].data["error"]["code"] == "provider_error"


async def test_unknown_task_is_404_and_a_non_sse_accept_is_406() -> None:
    async with tasks_server() as s:
        r = await s.client.get("/v1/stream/tasks/nope", headers={"Accept": "text/event-stream"})
        assert r.status_code == 404 and r.json()["code"] == "task_not_found"
        task_id = await s.submit()
        r = await s.client.get(f"/v1/stream/tasks/{task_id}",
                               headers={"Accept": "application/json"})
        assert r.status_code == 406 and r.json()["code"] == "not_acceptable"


async def test_non_finite_numbers_are_sent_as_null_so_browsers_can_parse_them() -> None:
    async with tasks_server([Turn(tool_calls=[ToolCall(name="infinite")]), "done"]) as s:
        task_id = await s.submit()
        events = await read_sse(s.client, f"/v1/stream/tasks/{task_id}")  # parses strictly
        tool = next(e for e in events if e.event == "tool_call")
        assert tool.data["result"] == {"up": None, "down": None, "what": None, "fine": 1.5}
        rest = (await s.client.get(f"/v1/tasks/{task_id}/tools")).json()
        assert rest["items"][0]["result"] == tool.data["result"]  # as the REST view says


async def test_timestamps_in_sse_data_are_iso_utc_as_in_the_rest_views() -> None:
    async with tasks_server([Turn(tool_calls=[CALC]), "two"]) as s:
        task_id = await s.submit()
        events = await read_sse(s.client, f"/v1/stream/tasks/{task_id}")
        step = next(e for e in events if e.event == "step")
        tool = next(e for e in events if e.event == "tool_call")
        rest_steps = (await s.client.get(f"/v1/tasks/{task_id}/steps")).json()["items"]
        rest_tools = (await s.client.get(f"/v1/tasks/{task_id}/tools")).json()["items"]
        assert step.data["started_at"] == rest_steps[0]["started_at"]
        assert tool.data["timestamp"] == rest_tools[0]["timestamp"]
        assert step.data["started_at"].endswith("Z") and tool.data["timestamp"].endswith("Z")
        stored = await s.kernel.store.events(task_id, types=["step"])
        assert isinstance(stored[0].payload["started_at"], float)  # the store keeps epochs


async def test_without_the_sse_plugin_the_stream_is_503_and_the_rest_works() -> None:
    async with tasks_server(["done"], sse=False) as s:
        task_id = await s.submit()
        r = await s.client.get(f"/v1/stream/tasks/{task_id}",
                               headers={"Accept": "text/event-stream"})
        assert r.status_code == 503 and r.json()["code"] == "service_unavailable"
        assert (await s.finished(task_id))["status"] == "completed"


@pytest.mark.parametrize("accept", ["application/json", "text/event-stream;q=0",
                                    "text/html, application/xml;q=0.9"])
async def test_an_accept_that_refuses_event_streams_is_406(accept: str) -> None:
    async with tasks_server() as s:
        task_id = await s.submit()
        r = await s.client.get(f"/v1/stream/tasks/{task_id}", headers={"Accept": accept})
        assert r.status_code == 406 and r.json()["code"] == "not_acceptable"


@pytest.mark.parametrize("accept", ["text/*", "*/*", "text/event-stream; charset=utf-8"])
async def test_an_accept_that_allows_event_streams_gets_the_stream(accept: str) -> None:
    async with tasks_server(["done"]) as s:
        task_id = await s.submit()
        await s.finished(task_id)
        events = await read_sse(s.client, f"/v1/stream/tasks/{task_id}",
                                headers={"Accept": accept})
        assert events[-1].event == "completed"


def test_the_sse_plugin_offers_the_event_streams_service_and_no_route_of_its_own() -> None:
    import armillary_sse

    from armillary import EventStreams
    from armillary.testing import make_kernel

    kernel = make_kernel({"sse": armillary_sse})
    assert isinstance(kernel.service(EventStreams), EventStreams)
    assert kernel.registry.by_plugin("sse")["services"] == ["EventStreams"]
    assert not [e for e in kernel.registry.routers if e.plugin == "sse"]


async def test_writes_are_at_least_min_interval_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    """Back-pressure: one write per `min_interval_seconds` at most (the rule, not a speed:
    a loaded machine only spreads the writes further)."""
    import itertools
    import time
    from urllib.parse import urlsplit

    monkeypatch.setattr("armillary._default_plugins.single_agent.TOKEN_FLUSH_SECONDS", 0)
    text = " ".join(f"w{i}" for i in range(120))
    config = {"plugins": {"sse": {"min_interval_seconds": 0.3}}}
    async with tasks_server([Turn(text=text, delay=0.01)], config=config) as s:
        task_id = await s.submit()
        url = urlsplit(s.url)
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        writer.write(f"GET /v1/stream/tasks/{task_id} HTTP/1.1\r\nHost: x\r\n"
                     "Accept: text/event-stream\r\n\r\n".encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        assert b"transfer-encoding: chunked" in head.lower()
        arrivals: list[tuple[float, bytes]] = []  # (when, chunk) for every HTTP chunk
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            arrivals.append((time.monotonic(), chunk[:-2]))
            if size == 0:
                break
        writer.close()
    events = [(t, c) for t, c in arrivals if b"event: " in c]
    assert events[-1][1].rstrip().endswith(b"}") and b"event: completed" in events[-1][1]
    assert len(events) >= 3  # the run outlasts a few intervals
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(events)]
    assert min(gaps) >= 0.3 * 0.9, gaps
