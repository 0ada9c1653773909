"""Dvādaśa sessions: the kernel's conversations of kind "dvadasa", in the run store (so
with SQLite they survive a restart). A session's metadata holds its `user_id`; its items
are the history: each answered prompt is a `user` item (the prompt as the pre-check let it
through) and an `assistant` item (the final answer, with the task id and confidence in
`data`)."""

from __future__ import annotations

from typing import Any

from armillary import Conversation, ConversationItem, Conversations

KIND = "dvadasa"


def exchanges(session: Conversation) -> list[tuple[ConversationItem, ConversationItem]]:
    """The answered prompts, oldest first, as (user item, assistant item) pairs."""
    pairs: list[tuple[ConversationItem, ConversationItem]] = []
    pending: ConversationItem | None = None
    for item in session.items:
        if item.role == "user":
            pending = item
        elif item.role == "assistant" and pending is not None:
            pairs.append((pending, item))
            pending = None
    return pairs


def history(session: Conversation, turns: int) -> list[list[str]]:
    """The newest `turns` exchanges, oldest first, as [prompt, answer] pairs."""
    pairs = exchanges(session)[-turns:] if turns else []
    return [[user.content, assistant.content] for user, assistant in pairs]


def last_prompt(session: Conversation) -> str | None:
    """The question the session's last prompt asked (a `/head <id>` command's question,
    not the command)."""
    last = next((i for i in reversed(session.items) if i.role == "user"), None)
    return None if last is None else str(last.data.get("question") or last.content)


async def remember(sessions: Conversations, session_id: str, prompt: str, answer: str,
                   data: dict[str, Any]) -> None:
    await sessions.append(session_id,
                          ConversationItem(role="user", content=prompt, data=data),
                          ConversationItem(role="assistant", content=answer, agent=KIND,
                                           data=data))
