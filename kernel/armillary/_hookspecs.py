"""Every hook a plugin can implement.

Hooks are called with keyword arguments; an implementation may accept fewer parameters
than the spec names. Registration hooks get a `register` callback: the kernel validates,
de-duplicates and records which plugin registered what in one place. They also get the
plugin's own validated settings (`settings`) and the whole `config`.

Call order at startup: `settings_model` → the `register_*` hooks (providers, tools, safety
checks, strategies, agents, event types, services, routers, middleware) → `make_store`,
`make_event_bus`, `make_runner` → `startup` (async, inside the server's lifespan).
`shutdown` runs last. `register_commands` is called by the CLI, not the server.

Hook order: the kernel calls each hook one plugin at a time, `tryfirst` implementations
first, then the others, then `trylast` ones, then the built-ins (`builtin:*`), each group
in load order (`[kernel] enable`). That order is the order of lists (safety checks,
middleware of equal `order`) and of the factories' answers. Whatever a real plugin
registers under a name a built-in took (the `single_agent` strategy, `GET /health`, an
event type, a service…) replaces the built-in's; two real plugins taking one name stop
startup naming both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    import click
    from fastapi import APIRouter
    from fastapi.params import Depends
    from pydantic import BaseModel

    from armillary._config import Config
    from armillary._events import EventBus
    from armillary._kernel import Kernel
    from armillary._models import AgentSpec
    from armillary._providers import Provider
    from armillary._runner import Runner
    from armillary._safety import SafetyCheck
    from armillary._store import RunStore
    from armillary._strategies import Strategy
    from armillary._tools import Tool

hookspec = pluggy.HookspecMarker("armillary")


class RegisterProvider(Protocol):
    def __call__(self, provider: Provider, *, default: bool = False) -> None: ...


class RegisterTool(Protocol):
    def __call__(self, tool: Tool) -> None: ...


class RegisterSafetyCheck(Protocol):
    def __call__(self, check: SafetyCheck) -> None: ...


class RegisterStrategy(Protocol):
    def __call__(self, strategy: Strategy) -> None: ...


class RegisterAgent(Protocol):
    def __call__(self, agent: AgentSpec) -> None: ...


class RegisterRouter(Protocol):
    def __call__(self, router: APIRouter, *, prefix: str = "",
                 tags: list[str] | None = None,
                 dependencies: list[Depends] | None = None) -> None: ...


class RegisterMiddleware(Protocol):
    def __call__(self, middleware_class: type, *, order: int = 100,
                 **options: Any) -> None: ...


class RegisterEventType(Protocol):
    def __call__(self, type: str, payload: type[BaseModel] | None = None) -> None: ...


class RegisterService(Protocol):
    def __call__(self, interface: type, service: object) -> None: ...


class RegisterCommand(Protocol):
    def __call__(self, command: click.Command) -> None: ...


# --- settings --------------------------------------------------------------------------

@hookspec(firstresult=True)
def settings_model() -> type[BaseModel] | None:
    """Return the pydantic model for this plugin's `[plugins.<name>]` section.

    Called once per plugin at startup. The kernel validates the section against it, rejects
    unknown keys, and passes the instance to this plugin's registration hooks as
    `settings`. A plugin without settings does not implement this hook (and gets `{}`).

    Example::

        class OllamaSettings(BaseModel):
            base_url: str = "http://127.0.0.1:11434"

        @hookimpl
        def settings_model():
            return OllamaSettings
    """


# --- registration ----------------------------------------------------------------------

@hookspec
def register_providers(register: RegisterProvider, settings: Any, config: Config) -> None:
    """Register LLM providers: `register(provider, default=False)`.

    `provider` is an `armillary._providers.Provider` whose `name` is unique across plugins.
    Register several instances of one backend under different names when the settings ask
    for them; mark one `default=True` (or the kernel's `default_provider` setting picks).
    """


@hookspec
def register_tools(register: RegisterTool, settings: Any, config: Config) -> None:
    """Register tools the model may call: `register(tool)`.

    `tool` is an `armillary._tools.Tool`, usually made with the `@tool` decorator. Tool names
    are unique across plugins; a second plugin registering a taken name stops startup.
    """


@hookspec
def register_safety_checks(register: RegisterSafetyCheck, settings: Any, config: Config) -> None:
    """Register safety checks: `register(check)`.

    `check` is an `armillary._safety.SafetyCheck`; its `stages` say where it runs (`input`,
    `output`, `tool`). Checks run in registration order.
    """


@hookspec
def register_strategies(register: RegisterStrategy, settings: Any, config: Config) -> None:
    """Register orchestration strategies: `register(strategy)`.

    `strategy` is an `armillary._strategies.Strategy`; runs name it by `strategy.name`.
    """


@hookspec
def register_agents(register: RegisterAgent, settings: Any, config: Config) -> None:
    """Register agents: `register(agent)` with an `armillary._models.AgentSpec`.

    Agents from plugins.toml (`[agents.<name>]`) are registered by the kernel and win over
    a plugin's agent of the same name.
    """


@hookspec
def register_event_types(register: RegisterEventType, settings: Any, config: Config) -> None:
    """Declare the event types this plugin's strategies and routes emit:
    `register("debate.argument", ArgumentPayload)`.

    `payload` is a pydantic model of the event's payload (None: any object). With
    `[kernel] strict_events = true` (what `armillary.testing` builds kernels with) an
    event of an undeclared type, or whose payload does not fit its model, is an error;
    otherwise it is logged once per type. Names are unique across plugins.
    """


@hookspec
def register_services(register: RegisterService, settings: Any, config: Config) -> None:
    """Offer a service other plugins use: `register(Interface, implementation)`.

    `Interface` is a class the kernel defines (e.g. `armillary.EventStreams`, the SSE
    transport); routes look it up with `kernel.service(Interface)`, which raises a coded
    `service_unavailable` error naming the interface when no enabled plugin offers it.
    One implementation per interface.
    """


@hookspec
def register_routers(register: RegisterRouter, settings: Any, config: Config) -> None:
    """Register HTTP routes: `register(router, prefix="", tags=None, dependencies=None)`.

    `router` is a FastAPI `APIRouter`; `dependencies` (a list of `fastapi.Depends(...)` /
    `Security(...)`) run before every route of that router and show in the OpenAPI
    document (a security scheme, say). Two plugins claiming the same method and path stop
    startup with a message naming both; a built-in's route (`GET /health`) is replaced.
    Routes get the kernel with the `armillary._deps.KernelDep` dependency.
    """


@hookspec
def register_middleware(register: RegisterMiddleware, settings: Any, config: Config) -> None:
    """Register ASGI middleware: `register(middleware_class, *, order=100, **options)`.

    Lower `order` is outer. 0-49 is the edge (CORS at 10): outside the kernel's body
    limits, which sit at 50 (the read timeout, then the size limit), so even their 408
    and 413 answers pass through it. The default, 100, is inside them. Equal orders keep
    hook order (plugin load order). `options` go to the class's constructor.
    """


# --- the API document --------------------------------------------------------------------

@hookspec
def openapi_document(document: dict[str, Any], settings: Any) -> None:
    """Amend the OpenAPI document in place, once, when it is first built (for
    `GET /openapi.json` and `armillary openapi` alike), after the kernel has documented its
    error model on every operation: a security scheme an auth plugin enforces, say.
    Called in hook order with the plugin's own settings. An error is logged naming the
    plugin and `/openapi.json` answers 500 `internal_error`.
    """


# --- command line ------------------------------------------------------------------------

@hookspec
def register_commands(register: RegisterCommand, settings: Any, config: Config) -> None:
    """Add `armillary` subcommands: `register(command)` with a `click.Command`.

    Called by the CLI (not the server) for the plugins enabled by the default config
    lookup (`ARMILLARY_CONFIG`, else ./plugins.toml), when it needs them: for `--help` or
    a command that is not built in. A command named like a built-in one, or like another
    plugin's, is an error naming both. Keep imports inside the command's function.
    """


# --- service factories -----------------------------------------------------------------

# Each plugin is asked in hook order (tryfirst first, the built-ins last) with its own
# validated settings, until one answers something other than None.

@hookspec(firstresult=True)
def make_store(url: str, config: Config, settings: Any) -> RunStore | None:
    """Return a `RunStore` for `url` (the kernel's `store` setting) if this plugin handles
    its scheme, else None. `settings` is this plugin's own. The first non-None answer
    wins; built-ins handle `memory://` and `sqlite:///…` last."""


@hookspec(firstresult=True)
def make_event_bus(config: Config, settings: Any) -> EventBus | None:
    """Return the `EventBus`, or None to leave it to the next plugin (built-in: local).
    `settings` is this plugin's own."""


@hookspec(firstresult=True)
def make_runner(kernel: Kernel, settings: Any) -> Runner | None:
    """Return the `Runner`, or None to leave it to the next plugin (built-in: local
    asyncio runner). `settings` is this plugin's own; `kernel.store` and `kernel.bus`
    are ready when this is called."""


# --- lifecycle -------------------------------------------------------------------------

@hookspec
async def startup(kernel: Kernel) -> None:
    """Async; called once when the server starts, after the store, bus and runner are
    started and before the first request. Raise to stop startup: the server exits with
    one line naming this plugin and the error."""


@hookspec
async def shutdown(kernel: Kernel) -> None:
    """Async; called once when the server stops. In-flight runs have been ended by then
    (`interrupted`) and the runner takes no more work; the store and the event bus are
    still open, and close after every plugin's `shutdown`. Plugins shut down in the
    reverse of their startup order. Errors are logged and do not stop the other plugins'
    shutdown."""
