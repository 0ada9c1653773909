"""What the plugin keeps per running kernel, in `kernel.state["agents"]`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from armillary import Kernel
from armillary_agents.activity import AgentActivity
from armillary_agents.admission import PriorityAdmission
from armillary_agents.metrics import RequestMetrics
from armillary_agents.settings import AgentsSettings
from armillary_agents.updates import UpdateHub

STATE_KEY = "agents"


@dataclass
class AgentsState:
    settings: AgentsSettings
    activity: AgentActivity
    metrics: RequestMetrics
    admission: PriorityAdmission
    updates: UpdateHub
    started_at: float = field(default_factory=time.time)


def state_of(kernel: Kernel) -> AgentsState | None:
    state = kernel.state.get(STATE_KEY)
    return state if isinstance(state, AgentsState) else None
