"""Every metric the plugin exposes, in one registry of its own per app (never
prometheus-client's global one, so two apps in one process never share a count).

Names are `armillary_<what>`; counters end in `_total`, durations are seconds. Labels
that come from outside (models, tools, checks, agents) are capped by `LabelCap`.
"""

from __future__ import annotations

import itertools
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

#: Prometheus' default request buckets, seconds
DEFAULT_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                        7.5, 10.0)

#: seconds: runs and chat turns last longer than HTTP requests
RUN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)
#: seconds: a wait for a free worker, a model's first token, a tool call
SHORT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: seconds an SSE stream or WebSocket stayed open
STREAM_BUCKETS = (0.1, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)
OTHER = "(other)"
UNKNOWN = "(unknown)"
MAX_LABEL_CHARS = 100


class LabelCap:
    """Keeps at most `limit` distinct values of one label; later ones read `(other)`."""

    __slots__ = ("limit", "seen")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen: set[str] = set()

    def __call__(self, value: Any) -> str:
        if not isinstance(value, str) or not value:
            return UNKNOWN
        text: str = value[:MAX_LABEL_CHARS]
        if text in self.seen:
            return text
        if len(self.seen) >= self.limit:
            return OTHER
        self.seen.add(text)
        return text


class _Series:
    __slots__ = ("buckets", "count", "timed", "total")

    def __init__(self, size: int) -> None:
        self.count = 0  # answered requests
        self.timed = 0  # of which timed (not SSE)
        self.total = 0.0
        self.buckets = [0] * size  # per bucket, not cumulative; the last is +Inf


class HTTPRequests:
    """`armillary_http_requests_total`, `armillary_http_request_duration_seconds` and
    `armillary_http_requests_in_progress`, as a prometheus-client custom collector.

    Only ever touched on the event loop (the middleware and the /metrics route), so it
    needs no lock."""

    def __init__(self, buckets: list[float] | tuple[float, ...]) -> None:
        self.bounds = tuple(float(b) for b in buckets if b != float("inf"))
        self.series: dict[tuple[str, str, str], _Series] = {}
        self.in_progress = 0

    def observe(self, method: str, route: str, status: str, seconds: float | None) -> None:
        """Count one answered request; `seconds` None (an SSE stream, timed as a
        stream) leaves the duration histogram alone."""
        key = (method, route, status)
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = _Series(len(self.bounds) + 1)
        series.count += 1
        if seconds is not None:
            series.timed += 1
            series.total += seconds
            series.buckets[bisect_left(self.bounds, seconds)] += 1

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        labels = ["method", "route", "status"]
        requests = CounterMetricFamily(
            "armillary_http_requests", "HTTP requests answered, by route template and "
            "status class", labels=labels)
        durations = HistogramMetricFamily(
            "armillary_http_request_duration_seconds", "Time to answer an HTTP request "
            "(to the end of the body; SSE streams are in armillary_stream_duration_seconds)",
            labels=labels)
        names = [*(repr(b) for b in self.bounds), "+Inf"]
        for key, series in self.series.items():
            requests.add_metric(list(key), series.count)
            if series.timed:
                cumulative = list(itertools.accumulate(series.buckets))
                durations.add_metric(list(key), list(zip(names, cumulative, strict=True)),
                                     series.total)
        yield requests
        yield durations
        yield GaugeMetricFamily("armillary_http_requests_in_progress",
                                "HTTP requests being answered now (open SSE streams "
                                "included)", value=self.in_progress)


class Metrics:
    """The registry and its collectors. Built at startup, one per kernel."""

    def __init__(self, *, http_buckets: list[float] | None = None,
                 max_label_values: int = 100) -> None:
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            Gauge,
            GCCollector,
            Histogram,
            PlatformCollector,
            ProcessCollector,
        )

        r = self.registry = CollectorRegistry()
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        ns = "armillary"

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
            return Counter(name, doc, labels, namespace=ns, registry=r)

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
            return Gauge(name, doc, labels, namespace=ns, registry=r)

        def histogram(name: str, doc: str, labels: tuple[str, ...],
                      buckets: tuple[float, ...] | list[float]) -> Any:
            return Histogram(name, doc, labels, namespace=ns, registry=r, buckets=buckets)

        #: HTTP requests are counted in plain Python on the event loop and turned into
        #: metric families at scrape time: a prometheus-client counter + histogram + gauge
        #: per request cost ~10 µs of locks and checks, this ~1 µs
        self.http = HTTPRequests(http_buckets or DEFAULT_HTTP_BUCKETS)
        r.register(self.http)
        self.rate_limited = counter(
            "rate_limit_refusals", "Requests refused with 429 (any limiter), by route",
            ("route",))
        stream = ("transport", "route")
        self.streams_open = gauge("streams_open", "SSE streams and WebSockets open now",
                                  stream)
        self.streams = counter("streams", "SSE streams and WebSockets opened", stream)
        self.stream_duration = histogram("stream_duration_seconds",
                                         "How long SSE streams and WebSockets stayed open",
                                         stream, STREAM_BUCKETS)

        run = ("agent", "strategy")
        self.runs_submitted = counter("runs_submitted", "Runs queued", run)
        self.runs = counter("runs", "Runs finished, by end status", (*run, "status"))
        self.run_duration = histogram(
            "run_duration_seconds", "From a run's start (or queueing, if it never started) "
            "to its end", (*run, "status"), RUN_BUCKETS)
        self.run_queue_depth = gauge("run_queue_depth", "Runs queued, waiting for a worker")
        self.run_queue_wait = histogram("run_queue_wait_seconds",
                                        "From queued to first running", run, SHORT_BUCKETS)
        self.runs_in_flight = gauge("runs_in_flight", "Runs started and not ended",
                                    ("state",))
        self.tool_calls = counter("tool_calls", "Tool calls made by runs",
                                  ("tool", "success"))
        self.tool_duration = histogram("tool_call_duration_seconds", "Tool call duration",
                                       ("tool",), SHORT_BUCKETS)
        self.safety_verdicts = counter("safety_verdicts",
                                       "Safety check redactions and blocks",
                                       ("check", "stage", "action"))
        self.chat_turns = counter("chat_turns", "/chat turns served",
                                  ("agent", "outcome"))
        self.chat_turn_duration = histogram("chat_turn_duration_seconds",
                                            "/chat turn duration", ("agent",), RUN_BUCKETS)

        model = ("provider", "model")
        self.provider_requests = counter("provider_requests", "Model calls, by outcome",
                                         (*model, "outcome"))
        self.provider_duration = histogram("provider_request_duration_seconds",
                                           "Model call duration (to the last chunk)", model,
                                           RUN_BUCKETS)
        self.provider_ttft = histogram("provider_time_to_first_token_seconds",
                                       "Time to a streamed call's first text", model,
                                       SHORT_BUCKETS)
        self.provider_tokens = counter("provider_tokens",
                                       "Tokens reported by the provider", (*model, "kind"))
        self.rate_limit_decisions = counter(
            "rate_limit_refusals_by_limit", "Refusals the rate limiter reports, by limit "
            "(requests, concurrent_runs, tokens) and route class", ("limit", "route_class"))
        self.rate_limit_storage_errors = counter(
            "rate_limit_storage_errors", "Rate-limit storage failures, by what the limiter "
            "did (fail open or closed)", ("fail",))
        self.firehose_lagged = counter(
            "metrics_firehose_lagged", "Times this plugin fell behind the firehose and lost "
            "events (counts from them are missing)")

        self.route_cap = LabelCap(max_label_values)
        self.agent_cap = LabelCap(max_label_values)
        self.strategy_cap = LabelCap(max_label_values)
        self.tool_cap = LabelCap(max_label_values)
        self.check_cap = LabelCap(max_label_values)
        self.provider_cap = LabelCap(max_label_values)
        self.model_cap = LabelCap(max_label_values)
        self.limit_cap = LabelCap(max_label_values)
        self.code_cap = LabelCap(max_label_values)
    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The registry in the format `accept` asks for (Prometheus text by default,
        OpenMetrics when asked), and its content type."""
        from prometheus_client.exposition import choose_encoder

        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type
