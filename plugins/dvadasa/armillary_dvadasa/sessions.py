"""Dvādaśa sessions: the kernel's conversations of kind "dvadasa", in the run store (so
with SQLite they survive a restart). A session's metadata holds its `user_id`; its items
are the history: each answered prompt is a `user` item (the prompt as the pre-check let it
through) and an `assistant` item (the final answer, with the task id and confidence in
`data`)."""

from __future__ import annotations

from typing import Any

from armillary import Conversation, ConversationItem, ConversationPolicy, Conversations

KIND = "dvadasa"


def policy(*, ttl_seconds: float | None, max_sessions: int | None, max_items: int | None
           ) -> ConversationPolicy:
    return ConversationPolicy(ttl_seconds=ttl_seconds, max_conversations=max_sessions,
                              max_items=max_items)


def history(session: Conversation, turns: int) -> list[list[str]]:
    """The newest `turns` exchanges, oldest first, as [prompt, answer] pairs."""
    pairs: list[list[str]] = []
    pending: str | None = None
    for item in session.items:
        if item.role == "user":
            pending = item.content
        elif item.role == "assistant" and pending is not None:
            pairs.append([pending, item.content])
            pending = None
    return pairs[-turns:] if turns else []


def last_prompt(session: Conversation) -> str | None:
    """The question the session's last prompt asked (a `/head <id>` command's question,
    not the command)."""
    prompts = [str(i.data.get("question") or i.content) for i in session.items
               if i.role == "user"]
    return prompts[-1] if prompts else None


async def remember(sessions: Conversations, session_id: str, prompt: str, answer: str,
                   data: dict[str, Any]) -> None:
    await sessions.append(session_id,
                          ConversationItem(role="user", content=prompt, data=data),
                          ConversationItem(role="assistant", content=answer, agent=KIND,
                                           data=data))
