"""Armillary plugin: OpenAI-compatible chat completions.

A provider for any server speaking OpenAI's `/v1/chat/completions` (OpenAI, vLLM,
llama.cpp's server, LM Studio, …): whole replies and SSE streams, tool calls assembled
from their fragments, usage, the model list; one instance per configured server.
See README.md for the settings.
"""

from __future__ import annotations

from typing import Any

from armillary import RegisterProvider, hookimpl
from armillary_openai.provider import OpenAIProvider
from armillary_openai.settings import OpenAIInstance, OpenAISettings

__all__ = ["OpenAIInstance", "OpenAIProvider", "OpenAISettings"]


@hookimpl
def settings_model() -> type[OpenAISettings]:
    return OpenAISettings


@hookimpl
def register_providers(register: RegisterProvider, settings: Any) -> None:
    if not isinstance(settings, OpenAISettings):
        settings = OpenAISettings()
    default = settings.default_name()
    for name, values in settings.resolved().items():
        register(OpenAIProvider(name=name, **values), default=name == default)
