"""Armillary plugin `safety`: input moderation and output PII scanning as kernel safety
checks, with a verdict audit.

- `InputModerator` (stage `input`): blocked patterns and phrases refuse a message (400
  `input_blocked`); optional PII redaction of the message
- `OutputScanner` (stage `output`, incremental): SSN, Luhn-valid card numbers, e-mail,
  phone, mod-97-valid IBANs, API-key-like secrets, blocked and extra patterns; each
  blocks, redacts or flags
- the audit: every verdict stored (kind `safety`) and published (`safety.verdict` on the
  bus topic `safety` and the firehose); `GET /v1/safety/audit`, `/v1/safety/events`,
  `/v1/safety/rules`
- optional model-based moderation through any provider (`[plugins.safety.moderation]`)

Registered as kernel checks, they apply to every route and strategy through the seam
(`kernel.guard(...)`, `ctx.provider()`).
"""

from __future__ import annotations

from typing import Any

from armillary import RegisterEventType, RegisterRouter, RegisterSafetyCheck, hookimpl
from armillary_safety.settings import SafetySettings


@hookimpl
def settings_model() -> type[SafetySettings]:
    return SafetySettings


@hookimpl
def register_safety_checks(register: RegisterSafetyCheck, settings: SafetySettings) -> None:
    from armillary_safety.checks import InputModerator, OutputScanner

    register(InputModerator(settings))
    if settings.moderation.enabled:
        from armillary_safety.moderation import ModelModeration

        register(ModelModeration(settings.moderation))
    register(OutputScanner(settings))


@hookimpl
def register_event_types(register: RegisterEventType) -> None:
    from armillary_safety.audit import EVENT, VerdictPayload

    register(EVENT, VerdictPayload)


@hookimpl
def register_routers(register: RegisterRouter, settings: SafetySettings) -> None:
    from armillary_safety.routes import make_router

    register(make_router(settings))


@hookimpl
async def startup(kernel: Any) -> None:
    from armillary_safety.audit import Audit

    settings: SafetySettings = kernel.settings["safety"]
    if settings.audit:
        kernel.safety.add_listener(Audit(kernel, settings))
    if settings.moderation.enabled:
        from armillary_safety.moderation import ModelModeration

        for check in kernel.safety.checks:
            if isinstance(check, ModelModeration):
                check.bind(kernel)


@hookimpl
async def shutdown(kernel: Any) -> None:
    from armillary_safety.audit import Audit

    for listener in list(kernel.safety.listeners):
        if isinstance(listener, Audit):
            kernel.safety.remove_listener(listener)
