"""Render an agent's system prompt, the conversation history and the new message as chat
messages for the provider."""

from __future__ import annotations

from collections.abc import Iterable

from armillary import Message
from armillary_chat.memory import Exchange


def build_messages(system_prompt: str, history: Iterable[Exchange], message: str) -> list[Message]:
    """`[system?, user, assistant, …, user]`: the system prompt (when not empty), each past
    exchange as a user/assistant pair, oldest first, then the new message. A partial
    reply is passed on as it was produced: it is what the user saw."""
    messages: list[Message] = []
    if system_prompt:
        messages.append(Message(role="system", content=system_prompt))
    for exchange in history:
        messages.append(Message(role="user", content=exchange.user))
        if exchange.assistant:
            messages.append(Message(role="assistant", content=exchange.assistant))
    messages.append(Message(role="user", content=message))
    return messages
