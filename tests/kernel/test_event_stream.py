from __future__ import annotations

from armillary._event_stream import EventStreamParser, SSEMessage


def feed_all(text: str) -> list[SSEMessage]:
    parser = EventStreamParser()
    return [m for line in text.split("\n") if (m := parser.feed(line)) is not None]


def test_messages_are_dispatched_at_blank_lines_with_their_fields() -> None:
    assert feed_all('id: 3\nevent: step\ndata: {"a": 1}\n\n') == [
        SSEMessage(event="step", data='{"a": 1}', id="3")]


def test_comments_heartbeats_and_multiline_data() -> None:
    messages = feed_all(": heartbeat\n\ndata: one\ndata:two\n\nretry: 3000\n\n")
    assert messages == [SSEMessage(comment=" heartbeat"),
                        SSEMessage(event="message", data="one\ntwo")]
