"""Armillary plugin `metrics`: Prometheus `/metrics` and request ids for structured logs.

- HTTP requests, SSE streams and WebSockets are measured by one pure-ASGI middleware
  (`armillary_metrics.middleware`), which also gives every request an `X-Request-ID`;
- runs, tool calls, safety verdicts, chat turns, provider calls and rate-limit events are
  counted from the kernel's firehose (`armillary_metrics.firehose`): no other plugin is
  instrumented or imported;
- every metric lives in this app's own registry (`armillary_metrics.collectors`).

JSON logs are the kernel's (`armillary serve --log-format json`); this plugin adds the
request id to every record logged during a request and one line per finished run.
Settings in `[plugins.metrics]` (`armillary_metrics.settings.MetricsSettings`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from armillary import FIREHOSE, Kernel, RegisterMiddleware, RegisterRouter, RunStatus, hookimpl
from armillary_metrics.settings import MetricsSettings

if TYPE_CHECKING:
    from armillary_metrics.collectors import Metrics
    from armillary_metrics.firehose import FirehoseMetrics

#: outside CORS (10) and the kernel's body limits (50): every answer is seen
MIDDLEWARE_ORDER = 5
#: room on the firehose subscription for bursts of token events between reads
FIREHOSE_QUEUE = 8192
#: runs still queued, running or paused at startup that seed the gauges
SEED_LIMIT = 10_000


@dataclass
class MetricsState:
    """What `startup` builds, in `kernel.state["metrics"]`."""

    metrics: Metrics
    firehose: FirehoseMetrics


@hookimpl
def settings_model() -> type[MetricsSettings]:
    return MetricsSettings


@hookimpl
def register_routers(register: RegisterRouter, settings: MetricsSettings) -> None:
    from armillary_metrics.routes import make_router

    register(make_router(settings.path))


@hookimpl
def register_middleware(register: RegisterMiddleware, settings: MetricsSettings) -> None:
    from armillary_metrics.middleware import ObservedApp

    register(ObservedApp, order=MIDDLEWARE_ORDER, header=settings.request_id_header,
             trust=settings.trust_request_id, measure=settings.http)


@hookimpl
async def startup(kernel: Kernel) -> None:
    from armillary_metrics.collectors import Metrics
    from armillary_metrics.firehose import FirehoseMetrics
    from armillary_metrics.middleware import install_log_record_factory

    settings: MetricsSettings = kernel.settings["metrics"]
    metrics = Metrics(http_buckets=settings.http_buckets,
                      max_label_values=settings.max_label_values)
    firehose = FirehoseMetrics(metrics, known_tools={*kernel.registry.tools, "update_plan"},
                               log_runs=settings.log_runs,
                               verdict_events="safety.verdict" in kernel.registry.event_types)
    # subscribed before reading the store, so a run that changes meanwhile is not missed
    subscription = kernel.bus.subscribe(FIREHOSE, max_queue=FIREHOSE_QUEUE)
    active = [RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.PAUSED]
    firehose.seed(await kernel.store.list_runs(status=active, limit=SEED_LIMIT))
    await firehose.start(subscription)
    install_log_record_factory()
    kernel.state["metrics"] = MetricsState(metrics, firehose)


@hookimpl
async def shutdown(kernel: Kernel) -> None:
    state = kernel.state.pop("metrics", None)
    if state is not None:
        await state.firehose.stop()
