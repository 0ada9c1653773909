"""Priority order for /agents/{id}/execute.

At most `limit` executes are in the runner at once; the rest wait here, `urgent` before
`high` before `normal` before `low`, in arrival order within one priority, with no run
made yet (so one whose timeout passes while waiting is a 504 that left nothing behind).
A waiter whose client leaves gives up its place. Once admitted, the run's `Run.priority`
orders it in the kernel runner's own queue too (behind, or ahead of, other routes' runs).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools

from armillary_agents.schemas import PRIORITIES

#: lower is served first
RANK = {name: i for i, name in enumerate(PRIORITIES)}


class PriorityAdmission:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @property
    def waiting(self) -> int:
        return sum(1 for *_, f in self._waiting if not f.done())

    async def acquire(self, priority: str) -> None:
        if self.active < self.limit and not self.waiting:
            self.active += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (RANK[priority], next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # handed a place just as we left: pass it on
            else:
                future.cancel()  # skipped by release
            raise

    def release(self) -> None:
        """Hand the place to the first waiter, or free it."""
        while self._waiting:
            *_, future = heapq.heappop(self._waiting)
            if not future.done():
                future.set_result(None)
                return
        self.active -= 1
