"""Model-based moderation: a safety check that asks a provider whether a text is unsafe.

Off by default (`[plugins.safety.moderation] enabled = true`). It calls the provider
unchecked (`kernel.provider`, so its own call is not checked again) with the
instructions and the text; an answer starting `UNSAFE` refuses the text
(`moderation_blocked`), `SAFE` lets it through. A provider that fails, times out or
answers anything else is a moderation failure: with `on_error = "closed"` (the default)
the request fails 503 `moderation_unavailable`; with `"open"` the text goes through,
flagged `moderation:unavailable` in the audit. Either way the audit records it.
As an output check it needs the whole reply, so streams it checks are held to the end.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from armillary import ArmillaryError, ChatRequest, Message, SafetyCheck, Stage, Verdict
from armillary_safety.settings import ModerationSettings

log = logging.getLogger("armillary.safety")


class ModerationUnavailable(ArmillaryError):
    code = "moderation_unavailable"
    status_code = 503


class ModelModeration(SafetyCheck):
    name = "model_moderation"

    def __init__(self, settings: ModerationSettings) -> None:
        self.settings = settings
        self.stages = frozenset(settings.stages)
        self.kernel: Any = None

    def bind(self, kernel: Any) -> None:
        self.kernel = kernel

    async def _ask(self, text: str) -> str:
        provider = self.kernel.provider(self.settings.provider)
        request = ChatRequest(messages=[Message(role="system", content=self.settings.prompt),
                                        Message(role="user", content=text)],
                              model=self.settings.model, temperature=0.0)
        reply = await asyncio.wait_for(provider.chat(request), self.settings.timeout_seconds)
        answer: str = reply.message.content.strip().upper()
        return answer

    def _failed(self, why: str) -> Verdict:
        log.warning("moderation model failed: %s", why)
        if self.settings.on_error == "open":
            return self.verdict(flags=["moderation:unavailable"])
        raise ModerationUnavailable(f"the moderation model could not judge the text: {why}")

    async def check(self, text: str, *, stage: Stage, context: dict[str, Any]) -> Verdict:
        if self.kernel is None:
            return self._failed("not started")
        try:
            answer = await self._ask(text)
        except TimeoutError:
            return self._failed(f"no answer within {self.settings.timeout_seconds:g} s")
        except ArmillaryError as exc:
            return self._failed(f"{exc.code}: {exc.detail}")
        if answer.startswith("UNSAFE"):
            return self.verdict(allowed=False, flags=["moderation:unsafe"],
                                code="moderation_blocked",
                                reason=f"the {stage} was refused by the moderation model")
        if answer.startswith("SAFE"):
            return self.verdict()
        return self._failed("it answered neither SAFE nor UNSAFE")
