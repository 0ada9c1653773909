"""Read models of a run, built from the run record and its event log."""

from __future__ import annotations

from typing import Any

from armillary import Conflict, Kernel, NotFound, Run, RunStatus, visible
from armillary_tasks.schemas import (
    MemoryMessage,
    MemorySnapshotResponse,
    PlanResponse,
    StepInfo,
    StepListResponse,
    TaskResultResponse,
    TaskStatusResponse,
    ToolCall,
    ToolCallListResponse,
    ts,
)


async def get_run(kernel: Kernel, task_id: str) -> Run:
    run = await kernel.store.get_run(task_id)
    if run is None or not visible(run.owner):  # another key's task does not exist for it
        raise NotFound(f"no task {task_id!r}", code="task_not_found")
    return run


def finished_conflict(run: Run) -> Conflict:
    return Conflict(f"task {run.id!r} is already {run.status.value}", code="task_finished",
                    extra={"status": run.status.value})


def status_of(run: Run) -> TaskStatusResponse:
    return TaskStatusResponse(
        task_id=run.id, status=run.status.value, steps_taken=run.steps_taken,
        success=(run.status is RunStatus.COMPLETED) if run.status.finished else None,
        started_at=ts(run.started_at), updated_at=ts(run.updated_at),
        submitted_at=ts(run.created_at), finished_at=ts(run.finished_at),
        agent=run.agent, max_steps=run.max_steps, error=run.error)


async def result_of(kernel: Kernel, run: Run) -> TaskResultResponse:
    messages = await kernel.store.events(run.id, types=["message"])
    thoughts = [m.payload.get("content", "") for m in messages
                if m.payload.get("role") == "assistant" and m.payload.get("tool_calls")]
    reasoning = "\n\n".join(t.strip() for t in thoughts if t and t.strip()) or None
    return TaskResultResponse(
        task_id=run.id, status=run.status.value, success=run.status is RunStatus.COMPLETED,
        final_answer=run.result, reasoning=reasoning, steps_taken=run.steps_taken,
        error=run.error)


async def _latest(kernel: Kernel, run_id: str, type: str, limit: int, offset: int
                  ) -> tuple[int, list[dict[str, Any]]]:
    """The newest `limit` events of a type (skipping the newest `offset`), oldest first."""
    total = await kernel.store.count_events(run_id, types=[type])
    end = max(total - offset, 0)
    start = max(end - limit, 0)
    events = await kernel.store.events(run_id, types=[type], offset=start, limit=end - start)
    return total, [e.payload | {"_ts": e.ts} for e in events]


async def steps_of(kernel: Kernel, run: Run, limit: int, offset: int) -> StepListResponse:
    total = await kernel.store.count_events(run.id, types=["step"])
    events = await kernel.store.events(run.id, types=["step"], limit=limit, offset=offset)
    items = [StepInfo(
        step_number=int(p.get("step_number", offset + i + 1)),
        started_at=ts(p.get("started_at", e.ts)),
        duration_seconds=float(p.get("duration_seconds", 0.0)),
        success=bool(p.get("success", True)),
        state_snapshot=p.get("state_snapshot") or {},
        tool_calls=p.get("tool_calls") or []) for i, (e, p) in
        enumerate((e, e.payload) for e in events)]
    return StepListResponse(task_id=run.id, total=total, items=items)


async def tool_calls_of(kernel: Kernel, run: Run, limit: int, offset: int
                        ) -> ToolCallListResponse:
    total, payloads = await _latest(kernel, run.id, "tool_call", limit, offset)
    items = [ToolCall(
        id=str(p.get("id", "")), tool_name=str(p.get("tool_name", "")),
        parameters=p.get("parameters") or {}, result=p.get("result"),
        success=bool(p.get("success", False)), timestamp=ts(p.get("timestamp", p["_ts"])),
        duration_seconds=p.get("duration_seconds"), error=p.get("error")) for p in payloads]
    return ToolCallListResponse(task_id=run.id, total=total, items=items)


async def plan_of(kernel: Kernel, run: Run) -> PlanResponse:
    _, last = await _latest(kernel, run.id, "plan_update", 1, 0)
    if not last:
        return PlanResponse(task_id=run.id, current_plan=[], last_reflection=None,
                            updated_at=ts(run.created_at))
    p = last[0]
    return PlanResponse(task_id=run.id, current_plan=list(p.get("current_plan") or []),
                        last_reflection=p.get("last_reflection"),
                        updated_at=ts(p["_ts"]))


async def memory_of(kernel: Kernel, run: Run, limit: int) -> MemorySnapshotResponse:
    _, messages = await _latest(kernel, run.id, "message", limit, 0)
    _, summaries = await _latest(kernel, run.id, "memory_summary", 1, 0)
    return MemorySnapshotResponse(
        task_id=run.id,
        working_messages=[MemoryMessage.model_validate(
            {k: v for k, v in m.items() if k != "_ts"}) for m in messages],
        summary=summaries[0].get("summary") if summaries else None)
