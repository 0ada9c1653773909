"""Armillary plugin `chat`: the Raspberry Pi server's `/chat`.

- POST /chat: stream (plain text, or SSE with `Accept: text/event-stream`) and non-stream
- GET / DELETE /chat/{conversation_id}: the remembered history of a conversation
- the default agent "general", whose prompt ships in `prompts/general_system.txt`
- settings in `[plugins.chat]` (`armillary_chat.settings.ChatSettings`)
- conversations in the kernel's store (kind "chat"); one `chat.turn` event per turn on the
  kernel's firehose (`armillary_chat.events`)
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from armillary import AgentSpec, RegisterAgent, RegisterEventType, RegisterRouter, hookimpl
from armillary_chat.settings import ChatSettings

GENERAL_PROMPT = "prompts/general_system.txt"


@hookimpl
def settings_model() -> type[ChatSettings]:
    return ChatSettings


@hookimpl
def register_agents(register: RegisterAgent) -> None:
    # an [agents.general] in plugins.toml wins over this one (the kernel lets it).
    # tools=[]: /chat sends the model no tools, so the agent does not claim any
    prompt = files(__name__).joinpath(GENERAL_PROMPT).read_text(encoding="utf-8").strip()
    register(AgentSpec(name="general", description="General-purpose chat assistant",
                       instructions=prompt, tools=[]))


@hookimpl
def register_event_types(register: RegisterEventType) -> None:
    from armillary_chat.events import TURN_EVENT, ChatTurn

    register(TURN_EVENT, ChatTurn)


@hookimpl
def register_routers(register: RegisterRouter, settings: Any) -> None:
    from armillary_chat.routes import make_router

    register(make_router(settings))
