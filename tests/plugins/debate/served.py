"""Serve the debate plugin (with ollama, tasks and sse) on a loopback port, the Ollama
test server answering as whichever agent is asking."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import armillary_debate
import armillary_ollama
import armillary_sse
import armillary_tasks
import httpx
from fastapi import FastAPI
from websockets.asyncio.client import connect

from armillary.testing import make_app, serve_app
from tests.support.ollama_server import OllamaTestServer, Reply

Answer = Reply | str | Callable[[str], Reply | str]


def instructions(agent: str) -> str:
    return f"You are {agent}."


@dataclass
class Agents:
    """Per-agent scripts for the Ollama test server: each agent's replies in order (then
    `default(agent)`), the moderator's and the synthesis. Records every prompt by agent."""

    replies: dict[str, list[Answer]] = field(default_factory=dict)
    moderator: list[Answer] = field(default_factory=list)
    synthesis: Answer | None = None
    #: (agent, user prompt) for every argument request, in order
    prompts: list[tuple[str, str]] = field(default_factory=list)
    moderator_prompts: list[str] = field(default_factory=list)

    @staticmethod
    def default(agent: str) -> str:
        return f"{agent} argues its own case.\nPOSITION: {agent} is right"

    def who(self, body: dict[str, Any]) -> str:
        system = body["messages"][0]["content"]
        assert system.startswith("You are ") and system.endswith("."), system
        return system[len("You are "):-1]

    def respond(self, body: dict[str, Any]) -> Reply | str:
        agent = self.who(body)
        prompt = body["messages"][-1]["content"]
        if "Write the synthesis" in prompt:
            answer: Answer = self.synthesis or f"Synthesis by {agent}."
        elif "You moderate this debate" in prompt:
            self.moderator_prompts.append(prompt)
            answer = self.moderator.pop(0) if self.moderator else "STOP"
        else:
            self.prompts.append((agent, prompt))
            queue = self.replies.get(agent) or []
            answer = queue.pop(0) if queue else self.default(agent)
        return answer(prompt) if callable(answer) else answer

    def speakers(self) -> list[str]:
        return [a for a, _ in self.prompts]


@dataclass
class Served:
    app: FastAPI
    url: str
    client: httpx.AsyncClient
    ollama: OllamaTestServer
    agents: Agents

    @property
    def kernel(self) -> Any:
        return self.app.state.kernel

    async def initialize(self, **body: Any) -> str:
        r = await self.client.post("/debate/initialize", json=config(**body))
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "initialized"
        debate_id: str = r.json()["debate_id"]
        return debate_id

    async def control(self, debate_id: str, action: str) -> httpx.Response:
        return await self.client.post(f"/debate/{debate_id}/control", json={"action": action})

    async def start(self, **body: Any) -> str:
        debate_id = await self.initialize(**body)
        r = await self.control(debate_id, "start")
        assert r.status_code == 200, r.text
        return debate_id

    async def finished(self, debate_id: str, timeout: float = 15) -> dict[str, Any]:
        run = await self.kernel.runner.wait(debate_id, timeout=timeout)
        assert run.status.finished, run.status
        return await self.debate(debate_id)

    async def debate(self, debate_id: str) -> dict[str, Any]:
        r = await self.client.get(f"/debates/{debate_id}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def ws(self, query: str = "") -> Any:
        return connect(self.url.replace("http://", "ws://") + "/ws/debate-updates" + query)


def config(**body: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"debate_topic": "Rust or Go?",
                            "problem_statement": "Pick a language for the new service.",
                            "debate_mode": "structured", "max_rounds": 3,
                            "max_iterations_per_round": 1, "consensus_threshold": 1.0,
                            "time_limit_per_argument": 30,
                            "selected_agents": ["alice", "bob", "carol"]}
    return {**base, **body}


@asynccontextmanager
async def debate_server(agents: Agents | None = None, *,
                        names: tuple[str, ...] = ("alice", "bob", "carol", "moderator"),
                        settings: dict[str, Any] | None = None,
                        kernel: dict[str, Any] | None = None,
                        extra: dict[str, object] | None = None,
                        plugins: dict[str, Any] | None = None) -> AsyncIterator[Served]:
    """`extra`: more plugins; `plugins`: their settings (`[plugins.<name>]`)."""
    agents = agents or Agents()
    with OllamaTestServer(respond=agents.respond) as ollama:
        app = make_app({"ollama": armillary_ollama, "debate": armillary_debate,
                        "tasks": armillary_tasks, "sse": armillary_sse, **(extra or {})},
                       config={"kernel": kernel or {},
                               "plugins": {"ollama": {"base_url": ollama.url,
                                                      "model": "llama3.2"},
                                           "debate": settings or {}, **(plugins or {})},
                               "agents": {n: {"instructions": instructions(n)}
                                          for n in names}})
        async with serve_app(app, ws="websockets-sansio") as url, \
                httpx.AsyncClient(base_url=url, timeout=20) as client:
            yield Served(app, url, client, ollama, agents)


async def messages_until(ws: Any, done: Callable[[dict[str, Any]], bool],
                         timeout: float = 15) -> list[dict[str, Any]]:
    """Messages from a debate-updates socket until one for which `done` is true."""
    out: list[dict[str, Any]] = []

    async def read() -> None:
        while True:
            message = json.loads(await ws.recv())
            out.append(message)
            if done(message):
                return

    await asyncio.wait_for(read(), timeout)
    return out


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll without blocking the loop (the app under test runs in it)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


def slow(agent: str, seconds: float = 0.6) -> Reply:
    """A reply that streams for about `seconds`."""
    words = f"{agent} takes its time to make this point carefully".split()
    return Reply(text=" ".join(words) + "\nPOSITION: slow", delay=seconds / len(words))


def types(messages: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> list[str]:
    return [m["type"] for m in messages]
