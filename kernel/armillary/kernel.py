"""The kernel: plugins loaded, their registrations, and the runtime services.

`build_kernel(config)` does everything that needs no I/O (load plugins, validate settings,
collect registrations); `await kernel.start()` creates and starts the store, event bus and
runner and runs the `startup` hooks; `await kernel.stop()` undoes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar

import pluggy
from pydantic import BaseModel, ValidationError

from armillary import hookspecs
from armillary.config import Config, format_validation_error
from armillary.conversations import UNBOUNDED, ConversationPolicy, Conversations
from armillary.errors import (
    ConfigError,
    NotFound,
    PluginLoadError,
    RegistrationError,
    ServiceUnavailable,
    StartupError,
    UnknownProvider,
)
from armillary.events import EventBus
from armillary.guard import Guard
from armillary.models import AgentSpec
from armillary.plugins import (
    PluginInfo,
    did_you_mean,
    load_entry_point_plugins,
    register_default_plugins,
)
from armillary.providers import Provider
from armillary.registry import Entry, Registry
from armillary.runner import Runner
from armillary.safety import SafetyPipeline
from armillary.store import RunStore
from armillary.tools import Tool

log = logging.getLogger("armillary")
S = TypeVar("S")

DEFAULT_AGENT = "default"


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("armillary")
    pm.add_hookspecs(hookspecs)
    return pm


class Kernel:
    """The assembled server core. Routes reach it through `armillary.deps.KernelDep`."""

    def __init__(self, config: Config, pm: pluggy.PluginManager, registry: Registry,
                 plugins: list[PluginInfo], settings: dict[str, Any]) -> None:
        self.config = config
        self.pm = pm
        self.registry = registry
        self.plugins = plugins
        #: each plugin's validated settings, by plugin name
        self.settings = settings
        self.safety = SafetyPipeline([c for _, c in registry.safety_checks])
        self._store: RunStore | None = None
        self._bus: EventBus | None = None
        self._runner: Runner | None = None
        #: runtime state plugins build in `startup`, each under its own plugin name
        self.state: dict[str, Any] = {}
        self.started = False
        #: set once the server is shutting down, after the runner stopped: transports end
        #: their streams and waits on it (see `request_shutdown`)
        self.stopping = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._shutdown: asyncio.Task[None] | None = None

    # --- services ------------------------------------------------------------------

    @property
    def store(self) -> RunStore:
        if self._store is None:
            raise StartupError("the run store is not started (await kernel.start() first)")
        return self._store

    @property
    def bus(self) -> EventBus:
        if self._bus is None:
            raise StartupError("the event bus is not started (await kernel.start() first)")
        return self._bus

    @property
    def runner(self) -> Runner:
        if self._runner is None:
            raise StartupError("the runner is not started (await kernel.start() first)")
        return self._runner

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        self._shutdown = None
        url = self.config.store_url()
        store = self.pm.hook.make_store(url=url, config=self.config)
        if store is None:
            scheme = url.split(":", 1)[0]
            raise StartupError(f"{self.config.source}: [kernel] store: no installed plugin "
                               f"handles {scheme!r} URLs ({url})")
        await store.open()
        self._store = store
        bus = self.pm.hook.make_event_bus(config=self.config)
        if bus is None:
            raise StartupError("no plugin provides an event bus")
        await bus.start()
        self._bus = bus
        runner = self.pm.hook.make_runner(kernel=self)
        if runner is None:
            raise StartupError("no plugin provides a runner")
        self._runner = runner
        await runner.start()
        for name, caller in self._per_plugin("startup"):
            try:
                await caller(kernel=self)
            except Exception as exc:
                raise StartupError(f"plugin {name!r} failed in its startup hook: "
                                   f"{type(exc).__name__}: {exc}") from exc
        self.started = True

    def _per_plugin(self, hook: str) -> Iterator[tuple[str, Callable[..., Awaitable[None]]]]:
        """(plugin name, an async call of that plugin's `hook`) for each plugin, in load
        order, so a failure can be pinned on the plugin that failed."""
        plugins = self.pm.list_name_plugin()
        for name, _ in plugins:
            if name is None or self.pm.get_plugin(name) is None:
                continue
            caller = self.pm.subset_hook_caller(hook, [p for n, p in plugins if n != name])

            async def call(caller: Any = caller, **kwargs: Any) -> None:
                for coro in caller(**kwargs):
                    await coro

            yield name, call

    def request_shutdown(self, then: Callable[[], None] | None = None,
                         grace: float = 0.0) -> bool:
        """Begin shutting down now, from any thread (a signal handler, say): the runner
        stops, its in-flight runs end `interrupted` (their followers get the end event),
        then `stopping` is set so every stream and `wait` ends. After that and `grace`
        more seconds (for streams to write their last events), `then()` is called on the
        loop. `stop()` still follows (the server's lifespan shutdown). Returns False, and
        does nothing, before `start()` or once the loop is gone."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return False
        try:
            loop.call_soon_threadsafe(self._begin_shutdown, then, grace)
        except RuntimeError:  # the loop closed meanwhile
            return False
        return True

    def _begin_shutdown(self, then: Callable[[], None] | None, grace: float) -> None:
        if self._shutdown is None:
            self._shutdown = asyncio.get_running_loop().create_task(
                self._shut_down_now(then, grace), name="armillary-shutdown")
        elif then is not None:
            then()

    async def _shut_down_now(self, then: Callable[[], None] | None, grace: float) -> None:
        try:
            if self._runner is not None:
                await self._runner.stop()
        except Exception:
            log.exception("stopping the runner failed")
        finally:
            self.stopping.set()
        if then is not None:
            await asyncio.sleep(grace)
            then()

    async def stop(self) -> None:
        if self._shutdown is not None:
            with contextlib.suppress(Exception):
                await self._shutdown
        self.stopping.set()
        for name, call in self._per_plugin("shutdown"):
            try:
                await call(kernel=self)
            except Exception:
                log.exception("plugin %s failed in its shutdown hook", name)
        # each step runs whatever the one before did: a failing runner must not leave the
        # store's file lock or the providers' connections open
        steps: list[tuple[str, Callable[[], Awaitable[None]] | None]] = [
            ("runner", self._runner.stop if self._runner else None),
            ("event bus", self._bus.stop if self._bus else None),
            ("store", self._store.close if self._store else None),
            *((f"provider {p.name}", p.aclose) for _, p in self.registry.providers.values()),
        ]
        for what, step in steps:
            if step is None:
                continue
            try:
                await step()
            except Exception:
                log.exception("stopping the %s failed", what)
        self.started = False

    # --- lookups -------------------------------------------------------------------

    def provider(self, name: str | None = None) -> Provider:
        """The named provider, or the default one."""
        name = name or self.config.kernel.default_provider or self.registry.default_provider
        if name is None:
            if not self.registry.providers:
                raise UnknownProvider("no provider is enabled: enable a provider plugin "
                                      "(ollama, openai, …) in plugins.toml")
            name = next(iter(self.registry.providers))
        entry = self.registry.providers.get(name)
        if entry is None:
            raise UnknownProvider(f"no provider named {name!r}"
                                  + did_you_mean(name, list(self.registry.providers),
                                                 "Providers"))
        return entry[1]

    def conversations(self, kind: str, policy: ConversationPolicy = UNBOUNDED
                      ) -> Conversations:
        """The store's conversations of `kind` (a plugin's namespace: "chat", …), kept
        under `policy` (TTL, max items, LRU cap)."""
        return Conversations(self.store, kind, policy)

    def service(self, interface: type[S]) -> S:
        """The enabled plugin's implementation of a kernel service interface (the SSE
        transport, say); raises `ServiceUnavailable` (503 `service_unavailable`) naming
        the interface when no enabled plugin offers one."""
        entry = self.registry.services.get(interface)
        if entry is None:
            raise ServiceUnavailable(f"no enabled plugin offers {interface.__name__} "
                                     f"(enable one that does in plugins.toml)",
                                     extra={"service": interface.__name__})
        return entry.item  # type: ignore[return-value]

    def guard(self, **context: Any) -> Guard:
        """The safety pipeline bound to one request or conversation (`context` goes to
        every check, e.g. `conversation_id=…, agent=…`). Call models through
        `guard.provider(kernel.provider(name))`: `kernel.provider` alone is unchecked."""
        return Guard(self.safety, context)

    def agent(self, name: str | None = None) -> AgentSpec:
        name = name or DEFAULT_AGENT
        entry = self.registry.agents.get(name)
        if entry is None:
            raise NotFound(f"no agent named {name!r}", code="agent_not_found")
        return entry[1]

    def tools_for(self, agent: AgentSpec) -> list[Tool]:
        """The agent's tools: every registered tool when it names none."""
        if agent.tools is None:
            return [t for _, t in self.registry.tools.values()]
        return [self.registry.tools[n][1] for n in agent.tools if n in self.registry.tools]


# --- assembly ------------------------------------------------------------------------

def _registrars(plugin: str, reg: Registry) -> dict[str, Any]:
    def provider(provider: Provider, *, default: bool = False) -> None:
        reg.add_provider(plugin, provider, default)

    def tool(tool: Tool) -> None:
        reg.add_tool(plugin, tool)

    def router(router: Any, *, prefix: str = "", tags: list[str] | None = None) -> None:
        reg.add_router(plugin, router, prefix, tags)

    def middleware(middleware_class: type, **options: Any) -> None:
        reg.add_middleware(plugin, middleware_class, options)

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


def _validate_settings(name: str, model: type[BaseModel] | None, raw: dict[str, Any],
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


def _override(base: Entry[AgentSpec] | None, agent: AgentSpec) -> AgentSpec:
    """A plugins.toml agent over a plugin's agent of the same name: what the file sets wins,
    the rest (a shipped prompt, a description) is kept."""
    if base is None:
        return agent
    changes = {f: getattr(agent, f) for f in agent.model_fields_set if f != "name"}
    return base[1].model_copy(update=changes)


def _refuse_async(plugin: str, hook: str, results: list[Any]) -> None:
    pending = [r for r in results if inspect.isawaitable(r)]
    for r in pending:
        if inspect.iscoroutine(r):
            r.close()  # never awaited: close it so Python does not warn later
    if pending:
        raise RegistrationError(f"plugin {plugin!r}: {hook} must be a plain function; "
                                f"it is async, so nothing it registers would be kept")


def _unknown_hook_message(pm: pluggy.PluginManager, exc: pluggy.PluginValidationError) -> str:
    name = pm.get_name(exc.plugin) or repr(exc.plugin)
    found = re.search(r"unknown hook '([^']+)'", str(exc))
    if found is None:
        return f"plugin {name!r}: {exc}"
    hooks = sorted(n for n in dir(hookspecs) if hasattr(getattr(hookspecs, n), "armillary_spec"))
    return (f"plugin {name!r} implements an unknown hook {found.group(1)!r}"
            + did_you_mean(found.group(1), hooks, "Hooks"))


def _check_agents(registry: Registry, config: Config) -> None:
    """Every agent's provider, tools and strategy must exist: found at startup, not on the
    first request."""
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
    if problems:
        raise ConfigError(problems)


def build_kernel(config: Config, *, pm: pluggy.PluginManager | None = None,
                 load_entry_points: bool = True,
                 extra_plugins: Iterable[tuple[str, object]] = ()) -> Kernel:
    """Load plugins, validate their settings and collect their registrations.

    Raises `ConfigError`, `PluginLoadError` or `RegistrationError` with a message that
    names the file, section, field or plugin at fault."""
    pm = pm or new_plugin_manager()
    infos = register_default_plugins(pm)
    for name, plugin in extra_plugins:
        pm.register(plugin, name=name)
        infos.append(PluginInfo(name=name, enabled=True, status="loaded",
                                module=getattr(plugin, "__name__", type(plugin).__name__)))
    if load_entry_points:
        infos += load_entry_point_plugins(pm, config)

    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise RegistrationError(_unknown_hook_message(pm, exc)) from None

    names = [n for n, _ in pm.list_name_plugin() if n is not None]
    installed = sorted({i.name for i in infos if not i.name.startswith("builtin:")})
    unknown_sections = [s for s in config.plugins if s not in installed]
    if unknown_sections:
        raise ConfigError([f"{config.source}: [plugins.{s}]: unknown plugin {s!r}"
                           + did_you_mean(s, installed) for s in unknown_sections])

    explicit = set(config.explicit or []) | {n for n, _ in extra_plugins}
    by_name = {i.name: i for i in infos}
    registry = Registry()
    settings: dict[str, Any] = {}
    problems: list[str] = []

    def skip(name: str, what: str, exc: Exception) -> None:
        """A plugin failed: stop startup if it was asked for by name, else skip it."""
        reason = f"{type(exc).__name__}: {exc}"
        if name in explicit or name.startswith("builtin:"):
            raise PluginLoadError(f"plugin {name!r} failed {what}: {reason}") from exc
        log.warning("plugin %s failed %s and is skipped: %s", name, what, reason)
        by_name[name].status, by_name[name].error = "failed", reason
        pm.unregister(name=name)

    for name in names:
        others = [p for n, p in pm.list_name_plugin() if n != name]
        try:
            model = pm.subset_hook_caller("settings_model", others)()
            settings[name] = _validate_settings(name, model, config.plugins.get(name, {}), config)
        except ConfigError as exc:
            problems += exc.problems
            continue
        except Exception as exc:
            skip(name, "in settings_model", exc)
            continue
        own = Registry()
        try:
            for hook_name, register in _registrars(name, own).items():
                caller = pm.subset_hook_caller(hook_name, others)
                results = caller(register=register, settings=settings[name], config=config)
                _refuse_async(name, hook_name, results)
            registry.merge(own)
        except RegistrationError:
            raise
        except Exception as exc:
            skip(name, "while registering", exc)
    if problems:
        raise ConfigError(problems)

    for agent in config.agents.values():
        registry.agents[agent.name] = Entry("plugins.toml", _override(
            registry.agents.get(agent.name), agent))
    if DEFAULT_AGENT not in registry.agents:
        registry.agents[DEFAULT_AGENT] = Entry("builtin", AgentSpec(
            name=DEFAULT_AGENT, description="Uses the default provider and every enabled tool.",
            instructions="You are a helpful assistant. Use the tools when they help."))
    _check_agents(registry, config)
    if config.kernel.default_provider and config.kernel.default_provider not in registry.providers:
        raise ConfigError([f"{config.source}: [kernel] default_provider: no provider named "
                           f"{config.kernel.default_provider!r} is registered (have: "
                           f"{', '.join(registry.providers) or 'none'})"])
    for info in infos:
        if info.status in ("loaded", "builtin"):
            info.registered = registry.by_plugin(info.name)
    return Kernel(config, pm, registry, infos, settings)
