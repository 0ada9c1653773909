"""current_time: the date and time now, in a named time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from armillary import ToolArgumentsError, tool


@tool(timeout=5)
def current_time(timezone: str = "UTC") -> dict[str, Any]:
    """The current date and time in an IANA time zone (e.g. "Europe/Berlin"; default UTC)."""
    try:
        zone = UTC if timezone.upper() == "UTC" else ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolArgumentsError(f"unknown time zone {timezone!r}") from None
    now = datetime.now(zone)
    return {"timezone": timezone, "iso": now.isoformat(), "weekday": now.strftime("%A"),
            "unix": round(now.timestamp(), 3)}
