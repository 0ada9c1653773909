"""What the plugins registered, and which plugin registered each thing.

Every named registration is an `Entry(plugin, item)`: `registry.tools["calculator"].item`
is the tool, `.plugin` the plugin that registered it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, TypeVar

from fastapi import APIRouter
from pydantic import BaseModel

from armillary.errors import RegistrationError
from armillary.models import AgentSpec
from armillary.providers import Provider
from armillary.safety import SafetyCheck
from armillary.strategies import Strategy
from armillary.tools import Tool

T = TypeVar("T")


class Entry(NamedTuple, Generic[T]):
    """One registration: who registered it, and what."""

    plugin: str
    item: T


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

    providers: dict[str, Entry[Provider]] = field(default_factory=dict)
    default_provider: str | None = None
    tools: dict[str, Entry[Tool]] = field(default_factory=dict)
    safety_checks: list[Entry[SafetyCheck]] = field(default_factory=list)
    strategies: dict[str, Entry[Strategy]] = field(default_factory=dict)
    agents: dict[str, Entry[AgentSpec]] = field(default_factory=dict)
    #: event type → its payload model (None: any object)
    event_types: dict[str, Entry[type[BaseModel] | None]] = field(default_factory=dict)
    #: service interface → its implementation
    services: dict[type, Entry[object]] = field(default_factory=dict)
    routers: list[RouterEntry] = field(default_factory=list)
    middleware: list[MiddlewareEntry] = field(default_factory=list)

    @staticmethod
    def _claim(table: dict[Any, Entry[Any]], kind: str, name: Any, plugin: str,
               item: Any) -> None:
        if not name:
            raise RegistrationError(f"plugin {plugin!r} registered a {kind} with no name")
        if name in table:
            owner = table[name].plugin
            label = name.__name__ if isinstance(name, type) else repr(name)
            raise RegistrationError(
                f"{kind} {label} is registered by both plugin {owner!r} and plugin {plugin!r}; "
                f"disable one of them in plugins.toml")
        table[name] = Entry(plugin, item)

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
        self.safety_checks.append(Entry(plugin, check))

    def add_strategy(self, plugin: str, strategy: Strategy) -> None:
        if not isinstance(strategy, Strategy):
            raise RegistrationError(f"plugin {plugin!r} registered {strategy!r}, which is not "
                                    f"an armillary.strategies.Strategy")
        self._claim(self.strategies, "strategy", strategy.name, plugin, strategy)

    def add_agent(self, plugin: str, agent: AgentSpec) -> None:
        self._claim(self.agents, "agent", agent.name, plugin, agent)

    def add_event_type(self, plugin: str, name: str, payload: type[BaseModel] | None) -> None:
        if payload is not None and not (isinstance(payload, type)
                                        and issubclass(payload, BaseModel)):
            raise RegistrationError(f"plugin {plugin!r} registered event type {name!r} with "
                                    f"{payload!r}, which is not a pydantic model class")
        self._claim(self.event_types, "event type", name, plugin, payload)

    def add_service(self, plugin: str, interface: type, service: object) -> None:
        if not isinstance(interface, type) or not isinstance(service, interface):
            raise RegistrationError(f"plugin {plugin!r} registered {service!r} as a service "
                                    f"for {interface!r}, which it is not an instance of")
        self._claim(self.services, "service", interface, plugin, service)

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
        tables: list[tuple[dict[Any, Entry[Any]], dict[Any, Entry[Any]], str]] = [
            (other.tools, self.tools, "tool"), (other.strategies, self.strategies, "strategy"),
            (other.agents, self.agents, "agent"),
            (other.event_types, self.event_types, "event type"),
            (other.services, self.services, "service")]
        for table, mine, kind in tables:
            for name, (plugin, item) in table.items():
                self._claim(mine, kind, name, plugin, item)
        self.safety_checks += other.safety_checks
        self.routers += other.routers
        self.middleware += other.middleware

    def by_plugin(self, plugin: str) -> dict[str, list[str]]:
        """Names of what `plugin` registered, by kind (for /v1/plugins)."""
        def names(table: dict[str, Entry[Any]]) -> list[str]:
            return [n for n, (p, _) in table.items() if p == plugin]

        out = {
            "providers": names(self.providers),
            "tools": names(self.tools),
            "safety_checks": [c.name for p, c in self.safety_checks if p == plugin],
            "strategies": names(self.strategies),
            "agents": names(self.agents),
            "event_types": names(self.event_types),
            "services": [i.__name__ for i, e in self.services.items() if e.plugin == plugin],
            "routes": sorted(
                f"{','.join(sorted(getattr(r, 'methods', None) or ['WS']))} "
                f"{e.prefix}{getattr(r, 'path', '')}"
                for e in self.routers if e.plugin == plugin for r in e.router.routes),
            "middleware": [m.cls.__name__ for m in self.middleware if m.plugin == plugin],
        }
        return {k: v for k, v in out.items() if v}
