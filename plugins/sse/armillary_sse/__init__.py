"""Armillary plugin `sse`: the Server-Sent Events transport (`armillary.EventStreams`).

It registers no route of its own: a plugin that serves a stream calls
`kernel.service(EventStreams).sse(request, run_id, after_seq=…, render=…)` (a run's log:
replay after `Last-Event-ID`, follow, end after the end event) or `.sse_topic(request,
topic, render=…)` (a bus topic, live only) and answers with the response. Every stream
gets heartbeat comments, merged token deltas and at most one write per
`min_interval_seconds` (back-pressure). Settings in `[plugins.sse]` (`SSESettings`).
"""

from __future__ import annotations

from armillary import RegisterService, hookimpl
from armillary_sse.settings import SSESettings


@hookimpl
def settings_model() -> type[SSESettings]:
    return SSESettings


@hookimpl
def register_services(register: RegisterService, settings: SSESettings) -> None:
    from armillary import EventStreams
    from armillary_sse.streams import SSEStreams

    register(EventStreams, SSEStreams(settings))
