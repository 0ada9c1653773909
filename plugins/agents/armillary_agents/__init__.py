"""Armillary plugin `agents`: the agent routes both the Pi seed and the multi-agent seed
serve. Now: GET /agents (each agent's name, description, provider, model, tools and
status counters, counted from `chat.turn` and run end events on the kernel's firehose)."""

from __future__ import annotations

from weakref import WeakKeyDictionary

from armillary import FIREHOSE, Kernel, RegisterRouter, hookimpl
from armillary_agents.activity import AgentActivity

# one AgentActivity per running kernel (tests build many in one process)
_ACTIVITY: WeakKeyDictionary[Kernel, AgentActivity] = WeakKeyDictionary()


def activity_for(kernel: Kernel) -> AgentActivity | None:
    return _ACTIVITY.get(kernel)


@hookimpl
def register_routers(register: RegisterRouter) -> None:
    from armillary_agents.routes import router

    register(router)


@hookimpl
async def startup(kernel: Kernel) -> None:
    activity = AgentActivity()
    # the firehose carries every run's token events too: room for bursts between reads
    await activity.start(kernel.bus.subscribe(FIREHOSE, max_queue=4096))
    _ACTIVITY[kernel] = activity


@hookimpl
async def shutdown(kernel: Kernel) -> None:
    activity = _ACTIVITY.pop(kernel, None)
    if activity is not None:
        await activity.stop()
