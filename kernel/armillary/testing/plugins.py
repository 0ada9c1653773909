"""Ready-made plugin objects for tests: register providers or tools without a module."""

from __future__ import annotations

from armillary import hookimpl
from armillary._hookspecs import RegisterProvider, RegisterTool
from armillary._providers import Provider
from armillary._tools import Tool


class ProviderPlugin:
    """Registers the given providers; the first is the default.

        make_app({"scripted": ProviderPlugin(ScriptedProvider(["hi"]))})
    """

    def __init__(self, *providers: Provider) -> None:
        self.providers = providers

    @hookimpl
    def register_providers(self, register: RegisterProvider) -> None:
        for i, provider in enumerate(self.providers):
            register(provider, default=i == 0)


class ToolsPlugin:
    """Registers the given tools: `ToolsPlugin(explode, nap)`."""

    def __init__(self, *tools: Tool) -> None:
        self.tools = tools

    @hookimpl
    def register_tools(self, register: RegisterTool) -> None:
        for t in self.tools:
            register(t)
