"""What the plugins registered, and which plugin registered each thing.

Every named registration is an `Entry(plugin, item)`: `registry.tools["calculator"].item`
is the tool, `.plugin` the plugin that registered it.

Names are unique, with one exception: the built-ins (`builtin:*`) lose to real plugins. A
real plugin registering a strategy, tool, agent, provider, event type or service under a
name a built-in took, or a route on a built-in's method and path, replaces the built-in's
(logged at INFO, naming both). Two real plugins claiming one name stop startup naming both.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, TypeVar

from fastapi import APIRouter
from fastapi.params import Depends
from pydantic import BaseModel
from starlette.routing import BaseRoute, WebSocketRoute

from armillary._errors import RegistrationError
from armillary._models import AgentSpec
from armillary._plugins import is_builtin
from armillary._providers import Provider
from armillary._safety import SafetyCheck
from armillary._strategies import Strategy
from armillary._tools import Tool

log = logging.getLogger("armillary")
T = TypeVar("T")

#: where middleware goes when its plugin names no `order` (see `MiddlewareEntry`)
DEFAULT_MIDDLEWARE_ORDER = 100


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
    #: FastAPI dependencies run for every route of this router (an auth scheme, say)
    dependencies: list[Depends] | None = None


@dataclass
class MiddlewareEntry:
    """ASGI middleware and where it goes: lower `order` is outer. 0-49 is the edge (CORS
    at 10), outside the kernel's body limits at 50; the default is 100. Equal orders keep
    the order the plugins were called in."""

    plugin: str
    cls: type
    options: dict[str, Any]
    order: int = DEFAULT_MIDDLEWARE_ORDER


def route_keys(prefix: str, route: BaseRoute) -> tuple[str, list[str]]:
    """The path a route is served at (under `prefix`) and the methods it claims there
    (`WEBSOCKET` for a WebSocket route, `*` for a mount or anything without methods)."""
    path = prefix + str(getattr(route, "path", ""))
    if isinstance(route, WebSocketRoute):
        return path, ["WEBSOCKET"]
    return path, sorted(getattr(route, "methods", None) or {"*"})


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
               item: Any) -> bool:
        """Record `item` under `name` unless taken. A real plugin's replaces a built-in's
        (and a built-in's coming after a real plugin's is dropped); otherwise a taken name
        is an error naming both. Returns whether `item` is the one kept."""
        if not name:
            raise RegistrationError(f"plugin {plugin!r} registered a {kind} with no name")
        label = name.__name__ if isinstance(name, type) else repr(name)
        current = table.get(name)
        if current is not None:
            owner = current.plugin
            if owner == plugin:
                raise RegistrationError(f"plugin {plugin!r} registered {kind} {label} twice")
            if is_builtin(owner) == is_builtin(plugin):
                raise RegistrationError(
                    f"{kind} {label} is registered by both plugin {owner!r} and plugin "
                    f"{plugin!r}; disable one of them in plugins.toml")
            builtin, real = (owner, plugin) if is_builtin(owner) else (plugin, owner)
            log.info("%s %s of plugin %r replaces the built-in one of %r", kind, label,
                     real, builtin)
            if is_builtin(plugin):
                return False
        table[name] = Entry(plugin, item)
        return True

    def add_provider(self, plugin: str, provider: Provider, default: bool) -> None:
        if not isinstance(provider, Provider):
            raise RegistrationError(f"plugin {plugin!r} registered {provider!r}, which is not "
                                    f"an armillary._providers.Provider")
        kept = self._claim(self.providers, "provider", provider.name, plugin, provider)
        if kept and default and self.default_provider is None:
            self.default_provider = provider.name

    def add_tool(self, plugin: str, tool: Tool) -> None:
        if not isinstance(tool, Tool):
            raise RegistrationError(f"plugin {plugin!r} registered {tool!r}, which is not an "
                                    f"armillary._tools.Tool (decorate the function with @tool)")
        self._claim(self.tools, "tool", tool.name, plugin, tool)

    def add_safety_check(self, plugin: str, check: SafetyCheck) -> None:
        if not isinstance(check, SafetyCheck):
            raise RegistrationError(f"plugin {plugin!r} registered {check!r}, which is not an "
                                    f"armillary._safety.SafetyCheck")
        self.safety_checks.append(Entry(plugin, check))

    def add_strategy(self, plugin: str, strategy: Strategy) -> None:
        if not isinstance(strategy, Strategy):
            raise RegistrationError(f"plugin {plugin!r} registered {strategy!r}, which is not "
                                    f"an armillary._strategies.Strategy")
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
                   tags: list[str] | None, dependencies: list[Depends] | None = None) -> None:
        if not isinstance(router, APIRouter):
            raise RegistrationError(f"plugin {plugin!r} registered {router!r}, which is not a "
                                    f"fastapi.APIRouter")
        for dependency in dependencies or ():
            if not isinstance(dependency, Depends):
                raise RegistrationError(f"plugin {plugin!r} registered a router with "
                                        f"dependency {dependency!r}, which is not a "
                                        f"fastapi.Depends(...) (or Security(...))")
        self.routers.append(RouterEntry(plugin, router, prefix, tags,
                                        list(dependencies) if dependencies else None))

    def add_middleware(self, plugin: str, cls: type, options: dict[str, Any],
                       order: int = DEFAULT_MIDDLEWARE_ORDER) -> None:
        if not callable(cls):
            raise RegistrationError(f"plugin {plugin!r} registered middleware {cls!r}, "
                                    f"which is not an ASGI middleware class")
        if isinstance(order, bool) or not isinstance(order, int):
            raise RegistrationError(f"plugin {plugin!r} registered middleware "
                                    f"{getattr(cls, '__name__', cls)!r} with order={order!r}; "
                                    f"order must be an int (lower is outer)")
        self.middleware.append(MiddlewareEntry(plugin, cls, options, order))

    #: the parts of a registry, each filled by one registration hook
    KINDS = ("providers", "tools", "safety_checks", "strategies", "agents", "event_types",
             "services", "routers", "middleware")

    def merge(self, other: Registry, kinds: tuple[str, ...] = KINDS) -> None:
        """Add `kinds` of `other` (one plugin's registrations), checking names."""
        if "providers" in kinds:
            for name, (plugin, provider) in other.providers.items():
                self._claim(self.providers, "provider", name, plugin, provider)
            default = other.default_provider
            if self.default_provider is None and default is not None and \
                    self.providers[default].item is other.providers[default].item:
                self.default_provider = default
        tables: list[tuple[str, str]] = [("tools", "tool"), ("strategies", "strategy"),
                                         ("agents", "agent"), ("event_types", "event type"),
                                         ("services", "service")]
        for attr, kind in tables:
            if attr in kinds:
                mine = getattr(self, attr)
                for name, (plugin, item) in getattr(other, attr).items():
                    self._claim(mine, kind, name, plugin, item)
        if "safety_checks" in kinds:
            self.safety_checks += other.safety_checks
        if "routers" in kinds:
            self.routers += other.routers
        if "middleware" in kinds:
            self.middleware += other.middleware

    def resolve_routes(self) -> None:
        """Refuse two real plugins (or two built-ins) claiming one method and path, and
        drop a built-in's route where a real plugin claims its method and path (the rest
        of the built-in's routes stay). Safe to call again."""
        owners: dict[tuple[str, str], str] = {}
        for entry in self.routers:
            for route in entry.router.routes:
                path, methods = route_keys(entry.prefix, route)
                for method in methods:
                    owner = owners.setdefault((method, path), entry.plugin)
                    if owner != entry.plugin and is_builtin(owner) == is_builtin(entry.plugin):
                        raise RegistrationError(
                            f"route {method} {path} is claimed by both plugin {owner!r} and "
                            f"plugin {entry.plugin!r}; disable one of them in plugins.toml")
                    if is_builtin(owner) and not is_builtin(entry.plugin):
                        owners[(method, path)] = entry.plugin
        self.routers = [kept for entry in self.routers
                        if (kept := self._without_taken(entry, owners)) is not None]

    @staticmethod
    def _without_taken(entry: RouterEntry, owners: dict[tuple[str, str], str]
                       ) -> RouterEntry | None:
        """`entry` without the routes (or methods of a route) another plugin owns."""
        routes: list[BaseRoute] = []
        changed = False
        for route in entry.router.routes:
            path, methods = route_keys(entry.prefix, route)
            mine = [m for m in methods if owners[(m, path)] == entry.plugin]
            if len(mine) == len(methods):
                routes.append(route)
                continue
            changed = True
            for method in sorted(set(methods) - set(mine)):
                log.info("route %s %s of plugin %r replaces the built-in one of %r", method,
                         path, owners[(method, path)], entry.plugin)
            if mine and getattr(route, "methods", None):
                route = copy.copy(route)  # the built-in's router is shared: never mutate it
                route.methods = set(mine)  # type: ignore[attr-defined]
                routes.append(route)
        if not changed:
            return entry
        if not routes:
            return None
        router = copy.copy(entry.router)
        router.routes = routes
        return RouterEntry(entry.plugin, router, entry.prefix, entry.tags, entry.dependencies)

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
            "middleware": [getattr(m.cls, "__name__", repr(m.cls)) for m in self.middleware
                           if m.plugin == plugin],
        }
        return {k: v for k, v in out.items() if v}
