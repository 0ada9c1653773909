"""Collecting registrations: the `register` callbacks each registration hook gets, a
plugin's settings validated against its model, and the checks run once every plugin has
registered (agents name what exists). `armillary._kernel.build_kernel` drives it.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import pluggy
from pydantic import BaseModel, ValidationError

from armillary import _hookspecs as hookspecs
from armillary._config import Config, format_validation_error
from armillary._errors import ConfigError, RegistrationError
from armillary._models import AgentSpec
from armillary._plugins import call_one, did_you_mean
from armillary._providers import Provider
from armillary._registry import DEFAULT_MIDDLEWARE_ORDER, Entry, Registry
from armillary._tools import Tool


def registrars(plugin: str, reg: Registry) -> dict[str, Any]:
    def provider(provider: Provider, *, default: bool = False) -> None:
        reg.add_provider(plugin, provider, default)

    def tool(tool: Tool) -> None:
        reg.add_tool(plugin, tool)

    def router(router: Any, *, prefix: str = "", tags: list[str] | None = None,
               dependencies: list[Any] | None = None) -> None:
        reg.add_router(plugin, router, prefix, tags, dependencies)

    def middleware(middleware_class: type, *, order: int = DEFAULT_MIDDLEWARE_ORDER,
                   **options: Any) -> None:
        reg.add_middleware(plugin, middleware_class, options, order)

    def event_type(type: str, payload: type[BaseModel] | None = None) -> None:
        reg.add_event_type(plugin, type, payload)

    return {
        "register_providers": provider,
        "register_tools": tool,
        "register_safety_checks": lambda check: reg.add_safety_check(plugin, check),
        "register_strategies": lambda strategy: reg.add_strategy(plugin, strategy),
        "register_agents": lambda agent: reg.add_agent(plugin, agent),
        "register_event_types": event_type,
        "register_services": lambda interface, service: reg.add_service(plugin, interface,
                                                                        service),
        "register_routers": router,
        "register_middleware": middleware,
    }


#: the part of the registry each registration hook fills
HOOK_KINDS = {
    "register_providers": "providers", "register_tools": "tools",
    "register_safety_checks": "safety_checks", "register_strategies": "strategies",
    "register_agents": "agents", "register_event_types": "event_types",
    "register_services": "services", "register_routers": "routers",
    "register_middleware": "middleware",
}


def plugin_settings(pm: pluggy.PluginManager, name: str, config: Config) -> Any:
    """Plugin `name`'s validated `[plugins.<name>]` section (`{}` for a plugin without a
    settings model). Raises `ConfigError` naming the section and field."""
    model = call_one(pm, "settings_model", name)
    return validate_settings(name, model, config.plugins.get(name, {}), config)


def validate_settings(name: str, model: type[BaseModel] | None, raw: dict[str, Any],
                       config: Config) -> Any:
    if model is not None and not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"settings_model must return a pydantic model class, not {model!r}")
    if model is None:
        if raw:
            raise ConfigError([f"{config.source}: [plugins.{name}]: this plugin takes no "
                               f"settings, found: {', '.join(sorted(raw))}"])
        return {}
    known = set(model.model_fields) | {f.alias for f in model.model_fields.values() if f.alias}
    unknown = [k for k in raw if k not in known]
    problems = [f"{config.source}: [plugins.{name}] {k}: unknown key"
                + (f" (known: {', '.join(sorted(known))})" if known else "") for k in unknown]
    try:
        settings = model.model_validate(raw, context={"config": config})
    except ValidationError as exc:
        # top-level unknown keys are reported above (with the known ones); nested ones not
        reported = tuple(problems)
        problems += [p for p in format_validation_error(exc, config.source, f"plugins.{name}")
                     if not p.startswith(reported)]
        settings = None
    if problems:
        raise ConfigError(problems)
    return settings


def override_agent(base: Entry[AgentSpec] | None, agent: AgentSpec) -> AgentSpec:
    """A plugins.toml agent over a plugin's agent of the same name: what the file sets wins,
    the rest (a shipped prompt, a description) is kept."""
    if base is None:
        return agent
    changes = {f: getattr(agent, f) for f in agent.model_fields_set if f != "name"}
    return base[1].model_copy(update=changes)


def refuse_async(plugin: str, hook: str, results: list[Any]) -> None:
    pending = [r for r in results if inspect.isawaitable(r)]
    for r in pending:
        if inspect.iscoroutine(r):
            r.close()  # never awaited: close it so Python does not warn later
    if pending:
        raise RegistrationError(f"plugin {plugin!r}: {hook} must be a plain function; "
                                f"it is async, so nothing it registers would be kept")


def unknown_hook_message(pm: pluggy.PluginManager, exc: pluggy.PluginValidationError) -> str:
    name = pm.get_name(exc.plugin) or repr(exc.plugin)
    found = re.search(r"unknown hook '([^']+)'", str(exc))
    if found is None:
        return f"plugin {name!r}: {exc}"
    hooks = sorted(n for n in dir(hookspecs) if hasattr(getattr(hookspecs, n), "armillary_spec"))
    return (f"plugin {name!r} implements an unknown hook {found.group(1)!r}"
            + did_you_mean(found.group(1), hooks, "Hooks"))


def check_references(registry: Registry, config: Config) -> None:
    """Every agent's provider, tools and strategy, and `[kernel] default_provider` and
    `default_strategy`, must exist: found at startup, not on the first request."""
    problems = []
    for name, (source, agent) in registry.agents.items():
        where = (f"{config.source}: [agents.{name}]" if source == "plugins.toml"
                 else f"agent {name!r} (registered by plugin {source!r})")
        if agent.provider is not None and agent.provider not in registry.providers:
            problems.append(f"{where} provider: no provider named {agent.provider!r}"
                            + did_you_mean(agent.provider, list(registry.providers),
                                           "Providers"))
        for tool_name in agent.tools or []:
            if tool_name not in registry.tools:
                problems.append(f"{where} tools: no tool named {tool_name!r}"
                                + did_you_mean(tool_name, list(registry.tools), "Tools"))
        if agent.strategy is not None and agent.strategy not in registry.strategies:
            problems.append(f"{where} strategy: no strategy named {agent.strategy!r}"
                            + did_you_mean(agent.strategy, list(registry.strategies),
                                           "Strategies"))
    kernel = config.kernel
    if kernel.default_provider and kernel.default_provider not in registry.providers:
        problems.append(f"{config.source}: [kernel] default_provider: no provider named "
                        f"{kernel.default_provider!r} is registered (have: "
                        f"{', '.join(registry.providers) or 'none'})")
    if kernel.default_strategy not in registry.strategies:
        problems.append(f"{config.source}: [kernel] default_strategy: no strategy named "
                        f"{kernel.default_strategy!r}"
                        + did_you_mean(kernel.default_strategy, list(registry.strategies),
                                       "Strategies"))
    if problems:
        raise ConfigError(problems)
