"""What the plugins registered, and which plugin registered each thing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter

from armillary.errors import RegistrationError
from armillary.models import AgentSpec
from armillary.providers import Provider
from armillary.safety import SafetyCheck
from armillary.strategies import Strategy
from armillary.tools import Tool


@dataclass
class RouterEntry:
    plugin: str
    router: APIRouter
    prefix: str = ""
    tags: list[str] | None = None


@dataclass
class MiddlewareEntry:
    plugin: str
    cls: type
    options: dict[str, Any]


@dataclass
class Registry:
    """Everything registered, keyed by name, with the plugin that registered it."""

    providers: dict[str, tuple[str, Provider]] = field(default_factory=dict)
    default_provider: str | None = None
    tools: dict[str, tuple[str, Tool]] = field(default_factory=dict)
    safety_checks: list[tuple[str, SafetyCheck]] = field(default_factory=list)
    strategies: dict[str, tuple[str, Strategy]] = field(default_factory=dict)
    agents: dict[str, tuple[str, AgentSpec]] = field(default_factory=dict)
    routers: list[RouterEntry] = field(default_factory=list)
    middleware: list[MiddlewareEntry] = field(default_factory=list)

    @staticmethod
    def _claim(table: dict[str, tuple[str, Any]], kind: str, name: str, plugin: str,
               item: Any) -> None:
        if not name:
            raise RegistrationError(f"plugin {plugin!r} registered a {kind} with no name")
        if name in table:
            owner = table[name][0]
            raise RegistrationError(
                f"{kind} {name!r} is registered by both plugin {owner!r} and plugin {plugin!r}; "
                f"disable one of them in plugins.toml")
        table[name] = (plugin, item)

    def add_provider(self, plugin: str, provider: Provider, default: bool) -> None:
        if not isinstance(provider, Provider):
            raise RegistrationError(f"plugin {plugin!r} registered {provider!r}, which is not "
                                    f"an armillary.providers.Provider")
        self._claim(self.providers, "provider", provider.name, plugin, provider)
        if default and self.default_provider is None:
            self.default_provider = provider.name

    def add_tool(self, plugin: str, tool: Tool) -> None:
        if not isinstance(tool, Tool):
            raise RegistrationError(f"plugin {plugin!r} registered {tool!r}, which is not an "
                                    f"armillary.tools.Tool (decorate the function with @tool)")
        self._claim(self.tools, "tool", tool.name, plugin, tool)

    def add_safety_check(self, plugin: str, check: SafetyCheck) -> None:
        if not isinstance(check, SafetyCheck):
            raise RegistrationError(f"plugin {plugin!r} registered {check!r}, which is not an "
                                    f"armillary.safety.SafetyCheck")
        self.safety_checks.append((plugin, check))

    def add_strategy(self, plugin: str, strategy: Strategy) -> None:
        if not isinstance(strategy, Strategy):
            raise RegistrationError(f"plugin {plugin!r} registered {strategy!r}, which is not "
                                    f"an armillary.strategies.Strategy")
        self._claim(self.strategies, "strategy", strategy.name, plugin, strategy)

    def add_agent(self, plugin: str, agent: AgentSpec) -> None:
        self._claim(self.agents, "agent", agent.name, plugin, agent)

    def add_router(self, plugin: str, router: APIRouter, prefix: str,
                   tags: list[str] | None) -> None:
        if not isinstance(router, APIRouter):
            raise RegistrationError(f"plugin {plugin!r} registered {router!r}, which is not a "
                                    f"fastapi.APIRouter")
        self.routers.append(RouterEntry(plugin, router, prefix, tags))

    def add_middleware(self, plugin: str, cls: type, options: dict[str, Any]) -> None:
        self.middleware.append(MiddlewareEntry(plugin, cls, options))

    def merge(self, other: Registry) -> None:
        """Add everything from `other` (one plugin's registrations), checking names."""
        for name, (plugin, provider) in other.providers.items():
            self._claim(self.providers, "provider", name, plugin, provider)
        if self.default_provider is None:
            self.default_provider = other.default_provider
        for table, mine, kind in ((other.tools, self.tools, "tool"),
                                  (other.strategies, self.strategies, "strategy"),
                                  (other.agents, self.agents, "agent")):
            for name, (plugin, item) in table.items():
                self._claim(mine, kind, name, plugin, item)
        self.safety_checks += other.safety_checks
        self.routers += other.routers
        self.middleware += other.middleware

    def by_plugin(self, plugin: str) -> dict[str, list[str]]:
        """Names of what `plugin` registered, by kind (for /v1/plugins)."""
        def names(table: dict[str, tuple[str, Any]]) -> list[str]:
            return [n for n, (p, _) in table.items() if p == plugin]

        out = {
            "providers": names(self.providers),
            "tools": names(self.tools),
            "safety_checks": [c.name for p, c in self.safety_checks if p == plugin],
            "strategies": names(self.strategies),
            "agents": names(self.agents),
            "routes": sorted(
                f"{','.join(sorted(getattr(r, 'methods', None) or ['WS']))} "
                f"{e.prefix}{getattr(r, 'path', '')}"
                for e in self.routers if e.plugin == plugin for r in e.router.routes),
            "middleware": [m.cls.__name__ for m in self.middleware if m.plugin == plugin],
        }
        return {k: v for k, v in out.items() if v}
