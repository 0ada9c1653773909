"""Metrics fed by firehose events the kernel and other plugins publish (chat turns, safety
verdicts, the kernel's `provider.call`, the ratelimit plugin's `ratelimit.*`; published by
hand here), and HTTP answers given before routing — on the real app over real uvicorn."""

from __future__ import annotations

import asyncio
from typing import Any

import armillary_metrics
import httpx
from fastapi import APIRouter, HTTPException
from prometheus_client.parser import text_string_to_metric_families
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from armillary import FIREHOSE, Event, hookimpl, new_id
from armillary.testing import make_app, serve_app

router = APIRouter()


@router.get("/busy/{thing_id}")
async def busy(thing_id: str) -> None:
    raise HTTPException(429, "slow down")


@router.get("/guarded/{thing_id}")
async def guarded(thing_id: str) -> dict[str, str]:
    return {"thing": thing_id}


class RefuseGuarded:
    """An auth-like middleware answering 401 before the router runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/guarded/"):
            await JSONResponse({"detail": "no", "code": "unauthorized"}, 401)(
                scope, receive, send)
            return
        await self.app(scope, receive, send)


class Fixture:
    @hookimpl
    def register_routers(self, register: Any) -> None:
        register(router)

    @hookimpl
    def register_middleware(self, register: Any) -> None:
        register(RefuseGuarded)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def get(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
        **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def publish(kernel: Any, type: str, payload: dict[str, Any]) -> None:
    await kernel.bus.publish(FIREHOSE, Event(id=new_id("evt_"), run_id="conv-1", seq=1,
                                             type=type, payload=payload))


async def test_firehose_events_and_pre_routing_answers_are_counted() -> None:
    app = make_app({"metrics": armillary_metrics, "fixture": Fixture()},
                   config={"plugins": {"metrics": {"max_label_values": 3}}})
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url) as client:
        kernel = app.state.kernel
        await publish(kernel, "chat.turn", {"agent": "general", "ok": True, "partial": False,
                                            "disconnected": False, "duration_s": 0.5})
        await publish(kernel, "chat.turn", {"agent": "general", "ok": False, "partial": True,
                                            "disconnected": True, "duration_s": 0.1})
        await publish(kernel, "safety", {"stage": "output", "check": "pii",
                                         "action": "redacted", "code": None})
        await publish(kernel, "provider.call", {
            "provider": "ollama", "model": "llama3.2", "ok": True, "duration_s": 1.5,
            "ttft_s": 0.2, "prompt_tokens": 12, "completion_tokens": 30})
        await publish(kernel, "provider.call", {"provider": "ollama", "model": "llama3.2",
                                                "ok": False, "code": "provider_timeout"})
        for model in ("m1", "m2", "m3", "m4"):  # the cap is 3 distinct values
            await publish(kernel, "provider.call", {"provider": "ollama", "model": model})
        await publish(kernel, "ratelimit.refused", {"limit": "tokens", "route_class": "submit"})
        await publish(kernel, "ratelimit.storage_error", {"fail": "open"})
        await publish(kernel, "tool_call", {"tool_name": "made_up_by_the_model",
                                            "success": False, "duration_seconds": 0.0})
        await publish(kernel, "safety", {"stage": 42})  # malformed: no crash, no sample
        for i in range(3):
            assert (await client.get(f"/busy/{i}")).status_code == 429
            assert (await client.get(f"/guarded/{i}")).status_code == 401
        assert (await client.request("BREW", "/busy/1")).status_code == 405
        await asyncio.sleep(0)
        found = samples((await client.get("/metrics")).text)

    assert get(found, "armillary_chat_turns_total", agent="general", outcome="ok") == 1
    assert get(found, "armillary_chat_turns_total", agent="general",
               outcome="disconnected") == 1
    assert get(found, "armillary_chat_turn_duration_seconds_count", agent="general") == 2
    assert get(found, "armillary_safety_verdicts_total", check="pii", stage="output",
               action="redacted") == 1
    assert get(found, "armillary_safety_verdicts_total", check="(unknown)",
               stage="(unknown)", action="(unknown)") == 1
    model = {"provider": "ollama", "model": "llama3.2"}
    assert get(found, "armillary_provider_requests_total", outcome="ok", **model) == 1
    assert get(found, "armillary_provider_requests_total", outcome="provider_timeout",
               **model) == 1
    assert get(found, "armillary_provider_request_duration_seconds_sum", **model) == 1.5
    assert get(found, "armillary_provider_time_to_first_token_seconds_count", **model) == 1
    assert get(found, "armillary_provider_tokens_total", kind="prompt", **model) == 12
    assert get(found, "armillary_provider_tokens_total", kind="completion", **model) == 30
    models = {dict(k)["model"] for n, k in found if n == "armillary_provider_requests_total"}
    assert models == {"llama3.2", "m1", "m2", "(other)"}
    assert get(found, "armillary_rate_limit_refusals_by_limit_total", limit="tokens",
               route_class="submit") == 1
    assert get(found, "armillary_rate_limit_storage_errors_total", fail="open") == 1
    assert get(found, "armillary_tool_calls_total", tool="(unknown)", success="false") == 1

    assert get(found, "armillary_rate_limit_refusals_total", route="/busy/{thing_id}") == 3
    assert get(found, "armillary_http_requests_total", method="GET",
               route="/busy/{thing_id}", status="4xx") == 3
    # answered by a middleware before the router ran: still labelled by its template
    assert get(found, "armillary_http_requests_total", method="GET",
               route="/guarded/{thing_id}", status="4xx") == 3
    assert get(found, "armillary_http_requests_total", method="other",
               route="/busy/{thing_id}", status="4xx") == 1


class DeclaresVerdicts:
    """Declares `safety.verdict` as the safety plugin does (its audit event)."""

    @hookimpl
    def register_event_types(self, register: Any) -> None:
        register("safety.verdict", None)


async def test_with_the_safety_audit_every_verdict_counts_once_per_acting_check() -> None:
    app = make_app({"metrics": armillary_metrics, "audit": DeclaresVerdicts()})
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url) as client:
        kernel = app.state.kernel
        await publish(kernel, "safety.verdict", {"stage": "output", "action": "redacted",
                                                 "check": "pii,secrets", "scope": "r1"})
        await publish(kernel, "safety.verdict", {"stage": "input", "action": "allowed",
                                                 "check": "", "scope": "c1"})
        # the run's own copy of the first verdict: not counted twice
        await publish(kernel, "safety", {"stage": "output", "check": "pii",
                                         "action": "redacted"})
        found = samples((await client.get("/metrics")).text)
    assert get(found, "armillary_safety_verdicts_total", check="pii", stage="output",
               action="redacted") == 1
    assert get(found, "armillary_safety_verdicts_total", check="secrets", stage="output",
               action="redacted") == 1
    assert get(found, "armillary_safety_verdicts_total", check="(none)", stage="input",
               action="allowed") == 1
