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


def test_feed_bytes_splits_at_sse_line_ends_only_whatever_the_chunking() -> None:
    # U+2028 and U+0085 inside JSON are not line ends; CR LF may arrive split in two
    stream = ('id: 1\r\nevent: token\r\ndata: {"text":"a\u2028b\u0085c"}\r\n\r\n'
              ': heartbeat\n\nevent: end\rdata: {"n":2}\r\r: bye\n').encode()
    for size in (1, 2, 3, 7, len(stream)):
        parser = EventStreamParser()
        messages = []
        for i in range(0, len(stream), size):
            messages += parser.feed_bytes(stream[i:i + size])
        assert messages == [
            SSEMessage(event="token", data='{"text":"a\u2028b\u0085c"}', id="1"),
            SSEMessage(comment=" heartbeat"),
            SSEMessage(event="end", data='{"n":2}'),
            SSEMessage(comment=" bye"),
        ], size
