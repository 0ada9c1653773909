"""`@tool`: schemas from typed functions or pydantic models, validation, sync/async, timeout."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from pydantic import BaseModel, Field

from armillary._tools import ToolArgumentsError, ToolTimeout, tool


@tool
def add(a: float, b: float = 1.0) -> float:
    """Add two numbers.

    More text that is not part of the description."""
    return a + b


class SearchArgs(BaseModel):
    query: str = Field(description="what to look for")
    limit: int = Field(default=5, ge=1, le=50)


@tool(name="search", description="Search the notes.")
async def search_notes(args: SearchArgs) -> list[str]:
    return [args.query] * args.limit


def test_schema_comes_from_the_signature_and_the_docstrings_first_paragraph() -> None:
    assert add.name == "add"
    assert add.description == "Add two numbers."
    assert add.parameters["properties"] == {"a": {"type": "number"},
                                            "b": {"type": "number", "default": 1.0}}
    assert add.parameters["required"] == ["a"]


def test_schema_comes_from_a_pydantic_model_parameter() -> None:
    props = search_notes.parameters["properties"]
    assert props["query"]["description"] == "what to look for"
    assert props["limit"]["maximum"] == 50
    assert search_notes.name == "search" and search_notes.description == "Search the notes."


async def test_sync_and_async_tools_are_invoked_with_validated_arguments() -> None:
    assert await add.invoke({"a": 2, "b": 3}) == 5
    assert await search_notes.invoke({"query": "x", "limit": 2}) == ["x", "x"]


async def test_arguments_that_fail_the_schema_raise_a_tool_arguments_error() -> None:
    with pytest.raises(ToolArgumentsError) as info:
        await add.invoke({"a": "not a number"})
    assert "a:" in info.value.detail
    with pytest.raises(ToolArgumentsError):
        await search_notes.invoke({"query": "x", "limit": 500})


async def test_sync_tools_run_off_the_event_loop() -> None:
    seen: list[str] = []

    @tool
    def where() -> str:
        """Which thread runs me."""
        seen.append(threading.current_thread().name)
        return "ok"

    await where.invoke({})
    assert seen and seen[0] != threading.main_thread().name


async def test_a_tool_over_its_timeout_raises_tool_timeout() -> None:
    @tool(timeout=0.05)
    async def sleepy() -> str:
        """Sleeps."""
        await asyncio.sleep(5)
        return "late"

    @tool(timeout=0.05)
    def blocking() -> str:
        """Blocks a thread."""
        time.sleep(0.3)
        return "late"

    for slow in (sleepy, blocking):
        with pytest.raises(ToolTimeout):
            await slow.invoke({})


def test_an_untyped_parameter_is_refused() -> None:
    with pytest.raises(TypeError):
        tool(lambda x: x)
