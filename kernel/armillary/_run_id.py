"""`RUN_ID`: the run the calling code works for, a context variable the runner sets in a
run's task (and so in every task the strategy starts). Structured logs read it."""

from __future__ import annotations

from contextvars import ContextVar

RUN_ID: ContextVar[str | None] = ContextVar("armillary_run_id", default=None)
