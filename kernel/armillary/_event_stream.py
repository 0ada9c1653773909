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
    """Feed it the stream's bytes as they arrive (`feed_bytes`, which returns the
    messages they complete), or its lines without line endings (`feed`, which returns a
    message when a blank line completes one, a comment message for a `:` line, else None).

        parser = EventStreamParser()
        for data in response.iter_bytes():
            for message in parser.feed_bytes(data):
                if message.comment is None:
                    handle(message.event, json.loads(message.data))

    Prefer `feed_bytes` to httpx's `iter_lines`: that splits at every Unicode line
    boundary (U+2028, U+0085, …), which JSON in a `data:` line may carry unescaped, and
    would cut one event in two. SSE lines end at CR LF, LF or CR only.
    """

    def __init__(self) -> None:
        self._fields: dict[str, str] = {}
        self._data: list[str] = []
        self._pending = b""

    def feed_bytes(self, data: bytes) -> list[SSEMessage]:
        buffer = self._pending + data if self._pending else data
        hold = b""
        if buffer.endswith(b"\r"):  # maybe the first half of a CR LF: keep it for later
            buffer, hold = buffer[:-1], b"\r"
        lines = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        self._pending = lines.pop() + hold
        out = []
        for line in lines:
            message = self.feed(line.decode("utf-8", "replace"))
            if message is not None:
                out.append(message)
        return out

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
