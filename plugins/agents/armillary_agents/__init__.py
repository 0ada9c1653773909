"""Armillary plugin `agents`: the multi-agent seed's agent, task and system-status routes
(and the Pi seed's GET /agents, from the same implementation).

- GET /agents, GET /agents/{id}/status, POST /agents/{id}/execute
- GET /tasks, GET /tasks/{id} (every run, in the seed's TaskResult shape)
- GET /system/status, WebSocket /ws/agent-updates
- a request-metrics middleware (`X-Response-Time`, the api_metrics of /system/status)
- the `agents.timed` strategy (a task's `timeout_seconds`)

Counters come from the kernel's firehose; see `activity`. Settings: `[plugins.agents]`
(`armillary_agents.settings.AgentsSettings`).
"""

from __future__ import annotations

from armillary import (
    FIREHOSE,
    Kernel,
    RegisterMiddleware,
    RegisterRouter,
    RegisterStrategy,
    hookimpl,
)
from armillary_agents.settings import AgentsSettings

#: the metrics middleware sits at the edge (after CORS at 10) so it sees every answer,
#: the kernel's 408 and 413 (order 50) included
METRICS_ORDER = 20


@hookimpl
def settings_model() -> type[AgentsSettings]:
    return AgentsSettings


@hookimpl
def register_routers(register: RegisterRouter) -> None:
    from armillary_agents.routes import router

    register(router)


@hookimpl
def register_middleware(register: RegisterMiddleware) -> None:
    from armillary_agents.metrics import RequestMetricsMiddleware

    register(RequestMetricsMiddleware, order=METRICS_ORDER)


@hookimpl
def register_strategies(register: RegisterStrategy) -> None:
    from armillary_agents.timeout import TimedStrategy

    register(TimedStrategy())


@hookimpl
async def startup(kernel: Kernel) -> None:
    from armillary_agents.activity import AgentActivity
    from armillary_agents.admission import PriorityAdmission
    from armillary_agents.metrics import RequestMetrics
    from armillary_agents.state import STATE_KEY, AgentsState
    from armillary_agents.timeout import TIMED_STRATEGY, TimedStrategy
    from armillary_agents.updates import UpdateHub
    from armillary_agents.views import system_status

    settings: AgentsSettings = kernel.settings.get("agents") or AgentsSettings()
    timed = kernel.registry.strategies.get(TIMED_STRATEGY)
    if timed is not None and isinstance(timed[1], TimedStrategy):
        timed[1].kernel = kernel
    hub = UpdateHub(lambda: system_status(kernel, state), interval=settings.update_interval_seconds,
                    min_interval=settings.min_update_interval_seconds,
                    queue_size=settings.client_queue_size)
    activity = AgentActivity(on_change=hub.changed)
    state = AgentsState(
        settings=settings, activity=activity,
        metrics=RequestMetrics(settings.response_time_window),
        admission=PriorityAdmission(settings.max_concurrent_executes
                                    or kernel.config.kernel.max_concurrent_runs),
        updates=hub)
    # the firehose carries every run's token events too: room for bursts between reads
    await activity.start(kernel.bus.subscribe(FIREHOSE, max_queue=4096))
    hub.start()
    kernel.state[STATE_KEY] = state


@hookimpl
async def shutdown(kernel: Kernel) -> None:
    from armillary_agents.state import STATE_KEY, AgentsState

    state = kernel.state.pop(STATE_KEY, None)
    if isinstance(state, AgentsState):
        await state.updates.stop()
        await state.activity.stop()
