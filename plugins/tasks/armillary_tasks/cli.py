"""`armillary submit "goal" --url URL`: drive a remote server's task API (this plugin's
command, added to `armillary` through `register_commands`).

Without `--follow`: prints the task id and exits 0. With `--follow`: streams the task's
events (SSE, reconnecting with `Last-Event-ID` if the connection drops), shows progress
on stderr, prints the answer on stdout, and exits 0 only if the task completed. Exit 1
when the server refuses the task or it did not complete, 2 when the server cannot be
reached, 130 on Ctrl-C (the task goes on).
"""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any

import click

from armillary import END_EVENT_TYPES, Event, EventStreamParser, ProgressPrinter

if TYPE_CHECKING:  # httpx is imported when a command runs, not when `--help` lists it
    import httpx

RECONNECTS = 10


def _problem(response: httpx.Response) -> str:
    try:
        body = response.json()
        return f"{body.get('detail')} ({body.get('code')})"
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"


def _follow(client: httpx.Client, task_id: str, printer: ProgressPrinter) -> None:
    import httpx

    last = 0
    for attempt in range(RECONNECTS + 1):
        try:
            with client.stream("GET", f"/v1/stream/tasks/{task_id}", timeout=httpx.Timeout(
                    10.0, read=60.0), headers={"Accept": "text/event-stream",
                                               "Last-Event-ID": str(last)}) as response:
                if response.status_code != 200:
                    response.read()
                    raise httpx.HTTPStatusError(_problem(response), request=response.request,
                                                response=response)
                parser = EventStreamParser()
                # bytes, not `iter_lines`: that splits at U+2028 inside a JSON string
                for data in response.iter_bytes():
                    for message in parser.feed_bytes(data):
                        if message.comment is not None:
                            printer.tick()
                            continue
                        seq = int(message.id or last)
                        last = max(last, seq)
                        event = Event(id=str(seq), run_id=task_id, seq=seq,
                                      type=message.event,
                                      payload=json.loads(message.data or "{}"))
                        printer.event(event)
                        if event.type in END_EVENT_TYPES:
                            return
        except httpx.TransportError as exc:
            if attempt == RECONNECTS:
                raise
            sys.stderr.write(f"\nconnection lost ({type(exc).__name__}); reconnecting\n")
            time.sleep(min(0.5 * (attempt + 1), 5.0))


def submit_goal(url: str, goal: str, *, api_key: str | None = None, agent: str | None = None,
                max_steps: int | None = None, follow: bool = False) -> int:
    """Submit `goal` to the server at `url`; return the exit code."""
    import httpx

    headers = {"X-API-Key": api_key} if api_key else {}
    body: dict[str, Any] = {"task": goal}
    if agent:
        body["agent"] = agent
    if max_steps:
        body["max_steps"] = max_steps
    try:
        with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=30.0) as client:
            response = client.post("/v1/tasks", json=body)
            if response.status_code not in (200, 202):
                sys.stderr.write(f"armillary: the server refused the task: "
                                 f"{_problem(response)}\n")
                return 1
            task_id = response.json()["task_id"]
            if not follow:
                sys.stdout.write(task_id + "\n")
                return 0
            sys.stderr.write(f"task {task_id}\n")
            printer = ProgressPrinter(sys.stderr, live=sys.stderr.isatty())
            _follow(client, task_id, printer)
    except httpx.HTTPStatusError as exc:
        sys.stderr.write(f"armillary: {exc}\n")
        return 1
    except httpx.HTTPError as exc:
        sys.stderr.write(f"armillary: cannot reach {url}: {type(exc).__name__}: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted (the task goes on; DELETE it to cancel)\n")
        return 130
    if printer.answer is not None:
        sys.stdout.write(printer.answer.rstrip("\n") + "\n")
    return 0 if printer.final == "completed" else 1


@click.command()
@click.argument("goal")
@click.option("--url", default="http://127.0.0.1:8000", show_default=True,
              envvar="ARMILLARY_URL")
@click.option("--api-key", default=None, envvar="ARMILLARY_API_KEY")
@click.option("--agent", default=None)
@click.option("--max-steps", default=None, type=click.IntRange(1, 1000))
@click.option("--follow/--no-follow", default=False, help="Stream the task's events.")
def submit(goal: str, url: str, api_key: str | None, agent: str | None,
           max_steps: int | None, follow: bool) -> None:
    """Submit GOAL to a running server's task API."""
    sys.exit(submit_goal(url, goal, api_key=api_key, agent=agent, max_steps=max_steps,
                         follow=follow))
