"""/chat is tool-free (the Pi seed's chat has no tools), but a model may ask for tools
anyway: the reply then says so instead of coming back silently empty."""

from __future__ import annotations

from armillary import hookimpl, tool
from armillary._models import ToolCall
from armillary.testing import Turn
from tests.plugins.chat.conftest import ChatServer
from tests.plugins.chat.test_chat_stream import parse_sse


@tool
def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


class ToolsPlugin:
    @hookimpl
    def register_tools(self, register):  # type: ignore[no-untyped-def]
        register(add)


def asks_for_add(text: str = "") -> Turn:
    return Turn(text=text, tool_calls=[ToolCall(id="call_1", name="add",
                                                arguments={"a": 1, "b": 2})])


async def test_chat_sends_no_tools_even_when_tools_are_enabled(chat_server: ChatServer) -> None:
    async with chat_server(["hi"], extra={"tools": ToolsPlugin()}) as s:
        plain = await s.client.post("/chat", json={"message": "hi"})
        await s.client.post("/chat", json={"message": "hi", "stream": True})
    assert "tool_calls" not in plain.json()  # the seed's reply shape when no tools are asked
    assert [r.tools for r in s.provider.requests] == [None, None]


async def test_a_non_stream_reply_with_tool_calls_returns_them(chat_server: ChatServer) -> None:
    async with chat_server([asks_for_add(), asks_for_add("Let me add that.")]) as s:
        empty = (await s.client.post("/chat", json={"message": "1+2?"})).json()
        texty = (await s.client.post("/chat", json={"message": "1+2?"})).json()
    call = {"id": "call_1", "name": "add", "arguments": {"a": 1, "b": 2}}
    assert (empty["reply"], empty["tool_calls"]) == ("", [call])
    assert (texty["reply"], texty["tool_calls"]) == ("Let me add that.", [call])


async def test_a_plain_stream_with_tool_calls_ends_with_a_marker(
        chat_server: ChatServer) -> None:
    async with chat_server([asks_for_add("Adding.")]) as s:
        r = await s.client.post("/chat", json={"message": "1+2?", "stream": True,
                                               "conversation_id": "t"})
        history = (await s.client.get("/chat/t")).json()
    assert r.text == "Adding.\n[tool_calls: add] the model asked for tools; /chat runs none\n"
    assert history["turns"][0]["assistant"] == "Adding."  # the marker is not the reply


async def test_an_sse_stream_with_tool_calls_has_them_in_done(chat_server: ChatServer) -> None:
    async with chat_server([asks_for_add()]) as s:
        r = await s.client.post("/chat", json={"message": "1+2?", "stream": True},
                                headers={"Accept": "text/event-stream"})
    events = parse_sse(r.text)
    assert [e for e, _ in events] == ["start", "done"]
    done = events[-1][1]
    assert done["reply"] == ""
    assert [c["name"] for c in done["tool_calls"]] == ["add"]
