"""`agents.timed`: runs the agent's own strategy under the task's timeout.

/agents/{id}/execute with `timeout_seconds` submits its run with this strategy and the
real one in `metadata["strategy"]`, with `metadata["deadline"]` (epoch seconds: the
submission time plus the timeout, so time spent queued counts). When the deadline
passes the inner strategy is cancelled where it is (its provider stream closes, its
tool calls are abandoned) and the run fails with code `task_timeout`; a run that starts
after its deadline fails at once. Being a strategy, it works with any runner.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from armillary import ArmillaryError, RunContext, Strategy

if TYPE_CHECKING:
    from armillary import Kernel

TIMED_STRATEGY = "agents.timed"
TIMEOUT_CODE = "task_timeout"


class TimedStrategy(Strategy):
    name = TIMED_STRATEGY

    def __init__(self) -> None:
        #: set by the plugin's startup hook: the kernel whose strategies it runs
        self.kernel: Kernel | None = None

    async def execute(self, ctx: RunContext) -> str | None:
        meta = ctx.run.metadata
        inner_name = meta.get("strategy")
        entry = (self.kernel.registry.strategies.get(inner_name)
                 if self.kernel is not None and isinstance(inner_name, str) else None)
        if entry is None or inner_name == TIMED_STRATEGY:
            raise ArmillaryError(f"no strategy named {inner_name!r} to run under a timeout",
                                 code="strategy_not_found")
        timeout = meta.get("timeout_seconds")
        expired = ArmillaryError(f"the task did not finish within its timeout of {timeout} s",
                                 code=TIMEOUT_CODE)
        remaining = float(meta.get("deadline", 0)) - time.time()
        if remaining <= 0:
            raise expired
        limit = asyncio.timeout(remaining)
        try:
            async with limit:
                return await entry[1].execute(ctx)
        except TimeoutError:
            if limit.expired():
                raise expired from None
            raise
