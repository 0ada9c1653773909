"""Content negotiation: which of the media types a route can answer the client accepts.

The one `Accept` parser every route uses (q-values, wildcards, parameters ignored).
"""

from __future__ import annotations

EVENT_STREAM = "text/event-stream"
NDJSON = "application/x-ndjson"
JSON = "application/json"
PLAIN_TEXT = "text/plain"


def _ranges(accept: str) -> list[tuple[str, float]]:
    out = []
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        if not media:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        out.append((media.lower(), q))
    return out


def _quality(media: str, ranges: list[tuple[str, float]]) -> float:
    """The q of the most specific range matching `media` (0 when none does)."""
    kind = media.split("/")[0]
    best, specificity = 0.0, -1
    for pattern, q in ranges:
        level = (2 if pattern == media else 1 if pattern == f"{kind}/*"
                 else 0 if pattern == "*/*" else -1)
        if level > specificity:
            best, specificity = q, level
    return best if specificity >= 0 else 0.0


def preferred(accept: str | None, offers: list[str]) -> str | None:
    """The offer the client likes best (the first offer on a tie; the first offer when
    the client sends no `Accept`), or None when it accepts none of them."""
    if not accept or not accept.strip():
        return offers[0] if offers else None
    ranges = _ranges(accept)
    scored = [(_quality(o.lower(), ranges), -i, o) for i, o in enumerate(offers)]
    q, _, offer = max(scored, default=(0.0, 0, None))
    return offer if q > 0 else None


def accepts(accept: str | None, media: str) -> bool:
    """Whether the client accepts `media` at all (no `Accept` header accepts anything)."""
    return preferred(accept, [media]) is not None


def asks_for(accept: str | None, media: str) -> bool:
    """Whether the client names `media` itself (not only through a wildcard) with a
    q above 0: a route that answers JSON by default streams only when asked this way."""
    if not accept:
        return False
    return any(pattern == media.lower() and q > 0 for pattern, q in _ranges(accept))
