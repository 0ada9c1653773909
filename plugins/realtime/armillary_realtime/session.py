"""Ephemeral Realtime keys: `GET /api/session` and `GET /api/session2`.

Both mint a key with `POST /v1/realtime/client_secrets` (the GA API; the beta
`/v1/realtime/sessions` is retired upstream) and answer it in both shapes browsers read:
`client_secret.value` (the original openai-realtime-agents frontend) and top-level `value`
(newer Agents SDK examples). session2 adds the scenario's agents, root first, and its
guardrails, from `scenarios.session_agents`, and validates both ids before
a key is minted.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from armillary import KernelDep, cancel_on_disconnect
from armillary_realtime.scenarios import session_agents
from armillary_realtime.upstream import (
    UpstreamSettings,
    platform_client,
    upstream_errors,
    upstream_settings,
)


def session_body(settings: UpstreamSettings, *, instructions: str | None = None,
                 voice: str | None = None, model: str | None = None) -> dict[str, Any]:
    """The `session` object of a client-secret request."""
    session: dict[str, Any] = {"type": "realtime", "model": model or settings.realtime_model,
                               "audio": {"output": {"voice": voice or settings.voice}}}
    text = instructions if instructions is not None else settings.instructions
    if text:
        session["instructions"] = text
    return session


async def mint(kernel: Any, settings: UpstreamSettings, **session: Any) -> dict[str, Any]:
    """A fresh ephemeral key: `{"client_secret": {"value", "expires_at"}, "value",
    "expires_at", "session"}`; the upstream's errors as the module says."""
    client = platform_client(kernel, settings)
    data = await client.create_client_secret(
        session_body(settings, **session),
        expires_after={"anchor": "created_at", "seconds": settings.expires_after_seconds})
    value, expires_at = data["value"], data.get("expires_at")
    return {"client_secret": {"value": value, "expires_at": expires_at}, "value": value,
            "expires_at": expires_at, "session": data.get("session")}


def add_routes(router: APIRouter, settings: Any) -> None:
    upstream = upstream_settings(settings)

    @router.get("/api/session", summary="Mint an ephemeral Realtime key",
                responses=upstream_errors())
    async def session(request: Request, kernel: KernelDep) -> dict[str, Any]:
        """`{"client_secret": {"value": "ek_…", "expires_at"}, "value", "expires_at",
        "session"}`. No API key: 500 `missing_api_key` ("Missing OPENAI_API_KEY"); an
        upstream error status: that status and its message (`upstream_error`); a network
        failure: 502."""
        return await cancel_on_disconnect(request, mint(kernel, upstream))

    @router.get("/api/session2", summary="Session bootstrap: key, agents, guardrails",
                responses=upstream_errors({404: "No such scenario (`scenario_not_found`) or "
                                                "root agent (`agent_not_found`), answered "
                                                "before a key is minted"}))
    async def session2(request: Request, kernel: KernelDep, scenario_id: str | None = None,
                       root_agent: str | None = None) -> dict[str, Any]:
        """`{ephemeral_key, initial_agents (root first), guardrails, scenario_id,
        root_agent, client_secret, expires_at, value, session}`; an unknown scenario or
        root agent is 404 before any key is minted."""
        info = session_agents(kernel, settings, scenario_id, root_agent)
        minted = await cancel_on_disconnect(request, mint(
            kernel, upstream, instructions=info["instructions"], voice=info["voice"]))
        return {"ephemeral_key": minted["value"],
                "initial_agents": info["initial_agents"], "guardrails": info["guardrails"],
                "scenario_id": info["scenario_id"], "root_agent": info["root_agent"],
                **minted}
