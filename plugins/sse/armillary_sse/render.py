"""Rendering events as Server-Sent Events, with a cache so an event followed by many
streams is serialised once."""

from __future__ import annotations

from collections import OrderedDict

from armillary.events import to_json
from armillary.models import Event

HEARTBEAT = b": heartbeat\n\n"


class RenderCache:
    """The SSE bytes of recently rendered events, by event id (bounded, LRU)."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._items: OrderedDict[str, bytes] = OrderedDict()

    def render(self, event: Event) -> bytes:
        cached = self._items.get(event.id)
        if cached is not None:
            return cached
        data = to_json(event.payload)  # never NaN/Infinity: browsers reject those
        text = f"id: {event.seq}\nevent: {event.type}\ndata: {data}\n\n".encode()
        self._items[event.id] = text
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return text
