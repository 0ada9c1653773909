"""Rendering events as SSE messages (with the kernel's one encoder), with a cache so an
event followed by many streams is rendered once."""

from __future__ import annotations

from collections import OrderedDict

from armillary import Event, SSERender, encode_event


class RenderCache:
    """The SSE bytes of recently rendered events, by (render function, event id, whether
    `id:` is written): bounded, least recently used out first."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._items: OrderedDict[tuple[SSERender, str, bool], bytes] = OrderedDict()

    @staticmethod
    def encode(event: Event, render: SSERender, with_id: bool) -> bytes:
        """One event as SSE bytes (empty when `render` skips it)."""
        rendered = render(event)
        if rendered is None:
            return b""
        name, data = rendered
        return encode_event(name, data, id=event.seq if with_id else None)

    def render(self, event: Event, render: SSERender, *, with_id: bool = True) -> bytes:
        key = (render, event.id, with_id)
        cached = self._items.get(key)
        if cached is not None:
            self._items.move_to_end(key)
            return cached
        text = self.encode(event, render, with_id)
        if self.size:
            self._items[key] = text
            if len(self._items) > self.size:
                self._items.popitem(last=False)
        return text
