"""Server-Sent Events: writing messages (`encode_event`) and reading them line by line,
as a client does (`EventStreamParser`). The one SSE encoder and parser every plugin uses."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SSEMessage:
    """One dispatched message, or (`comment` set) a comment line such as a heartbeat."""

    event: str = "message"
    data: str = ""
    id: str | None = None
    comment: str | None = None


class EventStreamParser:
    """Feed it the stream's lines (without line endings); `feed` returns a message when a
    blank line completes one, a comment message for a `:` line, else None.

        parser = EventStreamParser()
        for line in response.iter_lines():
            if (message := parser.feed(line)) and message.comment is None:
                handle(message.event, json.loads(message.data))
    """

    def __init__(self) -> None:
        self._fields: dict[str, str] = {}
        self._data: list[str] = []

    def feed(self, line: str) -> SSEMessage | None:
        if line.startswith(":"):
            return SSEMessage(comment=line[1:])
        if line:
            key, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if key == "data":
                self._data.append(value)
            else:
                self._fields[key] = value
            return None
        if not self._data and "event" not in self._fields:
            self._fields = {}
            return None
        message = SSEMessage(event=self._fields.get("event", "message"),
                             data="\n".join(self._data), id=self._fields.get("id"))
        self._fields, self._data = {}, []
        return message


def encode_event(event: str | None, data: str, *, id: str | int | None = None) -> bytes:
    """One SSE message. `data` is written one `data:` line per line it has, so any text
    survives (JSON from `to_json` is always one line)."""
    head = (f"id: {id}\n" if id is not None else "") + (f"event: {event}\n" if event else "")
    body = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"{head}{body}\n".encode()


#: an SSE comment: keeps proxies from closing an idle stream, ignored by clients
HEARTBEAT = b": heartbeat\n\n"
