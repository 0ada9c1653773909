"""The kernel: plugins loaded, their registrations, and the runtime services.

`build_kernel(config)` does everything that needs no I/O (load plugins, validate settings,
collect registrations); `await kernel.start()` creates and starts the store, event bus and
runner and runs the `startup` hooks; `await kernel.stop()` undoes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar, cast

import pluggy

from armillary import _hookspecs as hookspecs
from armillary._config import Config
from armillary._conversations import UNBOUNDED, ConversationPolicy, Conversations
from armillary._errors import (
    ConfigError,
    NotFound,
    PluginLoadError,
    RegistrationError,
    ServiceUnavailable,
    StartupError,
    UnknownProvider,
)
from armillary._events import FIREHOSE, EventBus
from armillary._guard import CallRecord, Guard
from armillary._models import AgentSpec, Event, new_id
from armillary._plugins import (
    PluginInfo,
    call_one,
    did_you_mean,
    hook_order,
    is_builtin,
    load_entry_point_plugins,
    register_default_plugins,
)
from armillary._providers import Provider
from armillary._registration import (
    HOOK_KINDS,
    check_references,
    override_agent,
    plugin_settings,
    refuse_async,
    registrars,
    unknown_hook_message,
)
from armillary._registry import Entry, Registry
from armillary._runner import Runner
from armillary._safety import SafetyPipeline
from armillary._store import RunStore
from armillary._tools import Tool

log = logging.getLogger("armillary")
S = TypeVar("S")

DEFAULT_AGENT = "default"


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("armillary")
    pm.add_hookspecs(hookspecs)
    return pm


class Kernel:
    """The assembled server core. Routes reach it through `armillary._deps.KernelDep`."""

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
        #: `provider.call` events on their way to the bus
        self._publishing: set[asyncio.Future[None]] = set()

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

    def amend_openapi(self, document: dict[str, Any]) -> None:
        """Each plugin's `openapi_document` hook on the freshly built document, in hook
        order, with its own settings."""
        for name in hook_order(self.pm, "openapi_document"):
            try:
                call_one(self.pm, "openapi_document", name, document=document,
                         settings=self.settings.get(name, {}))
            except Exception as exc:
                raise StartupError(f"plugin {name!r} failed in openapi_document: "
                                   f"{type(exc).__name__}: {exc}") from exc

    def _make(self, hook: str, **kwargs: Any) -> Any:
        """The first non-None answer of a factory hook, asking each plugin in hook order
        (tryfirst first, built-ins last) with its own settings."""
        for name in hook_order(self.pm, hook):
            try:
                made = call_one(self.pm, hook, name, settings=self.settings.get(name, {}),
                                **kwargs)
            except StartupError:
                raise
            except Exception as exc:
                raise StartupError(f"plugin {name!r} failed in {hook}: "
                                   f"{type(exc).__name__}: {exc}") from exc
            if made is not None:
                log.debug("%s: plugin %s answered", hook, name)
                return made
        return None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        self._shutdown = None
        url = self.config.store_url()
        store = self._make("make_store", url=url, config=self.config)
        if store is None:
            scheme = url.split(":", 1)[0]
            raise StartupError(f"{self.config.source}: [kernel] store: no installed plugin "
                               f"handles {scheme!r} URLs ({url})")
        await store.open()
        self._store = store
        bus = self._make("make_event_bus", config=self.config)
        if bus is None:
            raise StartupError("no plugin provides an event bus")
        await bus.start()
        self._bus = bus
        runner = self._make("make_runner", kernel=self)
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

    def _per_plugin(self, hook: str, *, reverse: bool = False
                    ) -> Iterator[tuple[str, Callable[..., Awaitable[None]]]]:
        """(plugin name, an async call of that plugin's `hook`) for each plugin, in load
        order (or its reverse), so a failure can be pinned on the plugin that failed."""
        plugins = self.pm.list_name_plugin()
        for name, _ in (reversed(plugins) if reverse else plugins):
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
        # the runner first (its in-flight runs end `interrupted`), as `shutdown` hooks are
        # promised; after a signal `request_shutdown` has begun that already
        if self._shutdown is not None:
            with contextlib.suppress(Exception):
                await self._shutdown
        else:
            await self._shut_down_now(None, 0.0)
        # the reverse of startup: a plugin started after another (and maybe using what
        # that one built) shuts down before it
        for name, call in self._per_plugin("shutdown", reverse=True):
            try:
                await call(kernel=self)
            except Exception:
                log.exception("plugin %s failed in its shutdown hook", name)
        # each step runs whatever the one before did (the runner's included, above): a
        # failing one must not leave the store's file lock or the providers' connections open
        steps: list[tuple[str, Callable[[], Awaitable[None]] | None]] = [
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

    def service(self, interface: Callable[..., S]) -> S:
        """The enabled plugin's implementation of a kernel service interface (the SSE
        transport, say); raises `ServiceUnavailable` (503 `service_unavailable`) naming
        the interface when no enabled plugin offers one.

        `interface` is the interface class; it is typed as a callable (not `type[S]`) so
        that an abstract interface type-checks: mypy refuses an abstract class where
        `type[S]` is expected (`type-abstract`)."""
        entry = self.registry.services.get(interface)  # type: ignore[call-overload]
        if entry is None:
            name = getattr(interface, "__name__", repr(interface))
            raise ServiceUnavailable(f"no enabled plugin offers {name} "
                                     f"(enable one that does in plugins.toml)",
                                     extra={"service": name})
        return cast(S, entry.item)

    def guard(self, **context: Any) -> Guard:
        """The safety pipeline bound to one request or conversation (`context` goes to
        every check, e.g. `conversation_id=…, agent=…`). Call models through
        `guard.provider(kernel.provider(name))`: `kernel.provider` alone is unchecked."""
        return Guard(self.safety, context, on_call=self.provider_called)

    def announce(self, type: str, payload: dict[str, Any], *, scope: str) -> None:
        """Publish an event on the firehose only (in no run's log, `seq` 0, `run_id` the
        `scope` it concerns), without waiting: for what metrics and consoles want to see
        that is not a run's step (a provider call, a rate-limit refusal). Callable from
        sync code; does nothing before the bus starts."""
        bus = self._bus
        if bus is None:
            return
        event = Event(id=new_id("evt_"), run_id=scope, seq=0, type=type, payload=payload)
        task = asyncio.ensure_future(bus.publish(FIREHOSE, event))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    def provider_called(self, call: CallRecord) -> None:
        """A guard's provider call is over: a `provider.call` event on the firehose (not in
        any run's log), for metrics and consoles. `run_id` is the guard's scope."""
        self.announce("provider.call", call.payload(), scope=call.scope)

    def strategy_name(self, agent: AgentSpec, requested: str | None = None) -> str:
        """The strategy a run uses: the one it asks for, else its agent's, else
        `[kernel] default_strategy`."""
        return requested or agent.strategy or self.config.kernel.default_strategy

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
        raise RegistrationError(unknown_hook_message(pm, exc)) from None

    names = [n for n, _ in pm.list_name_plugin() if n is not None]
    installed = sorted({i.name for i in infos if not is_builtin(i.name)})
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
        if name in explicit or is_builtin(name):
            raise PluginLoadError(f"plugin {name!r} failed {what}: {reason}") from exc
        log.warning("plugin %s failed %s and is skipped: %s", name, what, reason)
        by_name[name].status, by_name[name].error = "failed", reason
        pm.unregister(name=name)

    # each plugin registers into its own registry first, so a plugin that fails leaves
    # nothing behind; then each hook's registrations are merged in that hook's order
    # (tryfirst … built-ins), which decides list order (checks, middleware) and which of
    # a real plugin and a built-in keeps a name
    own: dict[str, Registry] = {}
    for name in names:
        try:
            settings[name] = plugin_settings(pm, name, config)
        except ConfigError as exc:
            problems += exc.problems
            continue
        except Exception as exc:
            skip(name, "in settings_model", exc)
            continue
        mine = Registry()
        try:
            for hook_name, register in registrars(name, mine).items():
                results = call_one(pm, hook_name, name, register=register,
                                   settings=settings[name], config=config)
                refuse_async(name, hook_name, results)
            own[name] = mine
        except RegistrationError:
            raise
        except Exception as exc:
            skip(name, "while registering", exc)
    if problems:
        raise ConfigError(problems)
    for hook_name, kind in HOOK_KINDS.items():
        for name in hook_order(pm, hook_name):
            if name in own:
                registry.merge(own[name], (kind,))
    registry.resolve_routes()

    for agent in config.agents.values():
        registry.agents[agent.name] = Entry("plugins.toml", override_agent(
            registry.agents.get(agent.name), agent))
    if DEFAULT_AGENT not in registry.agents:
        registry.agents[DEFAULT_AGENT] = Entry("builtin", AgentSpec(
            name=DEFAULT_AGENT, description="Uses the default provider and every enabled tool.",
            instructions="You are a helpful assistant. Use the tools when they help."))
    check_references(registry, config)
    for info in infos:
        if info.status in ("loaded", "builtin"):
            info.registered = registry.by_plugin(info.name)
    return Kernel(config, pm, registry, infos, settings)
