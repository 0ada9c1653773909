"""Armillary plugin: Ollama.

A provider over Ollama's HTTP API (chat and generate, streamed or not, tool calls, model
list), one instance per configured host, and the multi-agent seed's routes
`POST /ollama/chat` and `GET /ollama/models`. See README.md for the settings.
"""

from __future__ import annotations

from typing import Any

from armillary import RegisterProvider, RegisterRouter, hookimpl
from armillary_ollama.provider import OllamaProvider
from armillary_ollama.routes import OllamaChatRequest, build_router
from armillary_ollama.settings import OllamaInstance, OllamaSettings

__all__ = ["OllamaChatRequest", "OllamaInstance", "OllamaProvider", "OllamaSettings"]


@hookimpl
def settings_model() -> type[OllamaSettings]:
    return OllamaSettings


def _settings(settings: Any) -> OllamaSettings:
    return settings if isinstance(settings, OllamaSettings) else OllamaSettings()


@hookimpl
def register_providers(register: RegisterProvider, settings: Any) -> None:
    settings = _settings(settings)
    default = settings.default_name()
    for name, values in settings.resolved().items():
        register(OllamaProvider(name=name, **values), default=name == default)


@hookimpl
def register_routers(register: RegisterRouter, settings: Any) -> None:
    settings = _settings(settings)
    if settings.routes:
        register(build_router(settings.instance_names(), settings.default_name()))
