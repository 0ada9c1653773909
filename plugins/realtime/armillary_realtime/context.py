"""POST /api/context/snapshot: page, user and project ids → an assembled context block
(seed §11), to append to a root agent's instructions or send as a first message.

Context sources are kernel tools named in `[plugins.realtime] context_sources`, so any
plugin supplies one with `register_tools`: each is called (through the `tool` safety
stage) with the request's ids that its schema declares (`page_id`, `user_id`,
`project_id`, `scenario_id`, `agent`, plus anything in `extra` it names) and its result
is one section. A source that fails is reported in `errors` and left out; the rest is
still assembled. The whole block then passes the `output` safety stage, so PII the
enabled checks redact is stripped before it leaves (a block refuses the snapshot).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from armillary import Guard, Kernel, KernelDep, ToolError
from armillary_realtime.settings import AgentsSettings

ID = Field(default=None, max_length=200)


class SnapshotRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    page_id: str | None = ID
    user_id: str | None = ID
    project_id: str | None = ID
    scenario_id: str | None = ID
    agent: str | None = ID
    #: more values a context source may ask for by name
    extra: dict[str, Any] = Field(default_factory=dict)


class Section(BaseModel):
    source: str
    content: str


class SourceError(BaseModel):
    source: str
    code: str
    detail: str


class Snapshot(BaseModel):
    #: the block, ready to append: "Context:\n<sections>"
    context: str
    sections: list[Section]
    errors: list[SourceError] = Field(default_factory=list)
    ids: dict[str, str]


def _text(result: Any) -> str:
    if isinstance(result, str):
        return result.strip()
    return json.dumps(result, default=str, ensure_ascii=False, sort_keys=True)


async def _section(guard: Guard, kernel: Kernel, name: str, values: dict[str, Any]
                   ) -> Section | SourceError:
    tool = guard.tool(kernel.registry.tools[name][1])
    wanted = set((tool.parameters.get("properties") or {}).keys())
    arguments = {k: v for k, v in values.items() if k in wanted and v is not None}
    try:
        return Section(source=name, content=_text(await tool.invoke(arguments)))
    except ToolError as exc:
        return SourceError(source=name, code=exc.code, detail=exc.detail)
    except Exception as exc:
        return SourceError(source=name, code="tool_error", detail=f"{type(exc).__name__}")


def make_router(settings: AgentsSettings) -> APIRouter:
    router = APIRouter(tags=["realtime"])

    @router.post("/api/context/snapshot", response_model=Snapshot, responses={
        400: {"description": "A safety check refused the assembled block (its code)"}})
    async def snapshot(body: SnapshotRequest, kernel: KernelDep) -> Snapshot:
        """Assemble the context block for a page, user and project."""
        ids = {k: v for k, v in body.model_dump(exclude={"extra"}).items() if v is not None}
        guard = kernel.guard(route="/api/context/snapshot", **ids)
        sources = [n for n in settings.context_sources if n in kernel.registry.tools]
        values = {**body.extra, **ids}
        found = await asyncio.gather(*(_section(guard, kernel, n, values) for n in sources))
        sections = [Section(source="request", content="\n".join(
            f"{k.replace('_', ' ')}: {v}" for k, v in ids.items()) or "(no ids given)")]
        sections += [s for s in found if isinstance(s, Section)]
        errors = [e for e in found if isinstance(e, SourceError)]
        raw = "\n\n".join(f"[{s.source}]\n{s.content}" for s in sections)
        checked = await guard.check_output(raw)
        if checked != raw:  # redacted: the sections are re-derived from the checked text
            sections = [Section(source=s.source, content=await guard.check_output(s.content))
                        for s in sections]
            ids = {k: await guard.check_output(v) for k, v in ids.items()}
        return Snapshot(context="Context:\n" + checked, sections=sections, errors=errors,
                        ids=ids)

    return router
