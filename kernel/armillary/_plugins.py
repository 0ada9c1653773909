"""Plugin discovery and loading, and the order hooks are called in.

Installed plugins are entry points in group `armillary`; listing them reads metadata only
and imports nothing. Loading goes through stevedore's `NamedExtensionManager`, which checks
each name before importing, so a plugin that is not enabled is never imported.

`hook_order` and `call_one`: the kernel calls its hooks one plugin at a time, in one
order (tryfirst, the rest, trylast, the built-ins; each group in load order).
"""

from __future__ import annotations

import difflib
import importlib
import logging
import traceback
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any, Literal

import pluggy

from armillary._config import Config
from armillary._errors import ConfigError, PluginLoadError

GROUP = "armillary"

#: built-in plugins, registered like any other and implemented `trylast`; whatever a real
#: plugin registers under a name a built-in took (a strategy, a route, a service…)
#: replaces the built-in's (see `armillary._registry`)
DEFAULT_PLUGINS: tuple[str, ...] = (
    "armillary._default_plugins.health",
    "armillary._default_plugins.introspection",
    "armillary._default_plugins.local_services",
    "armillary._default_plugins.single_agent",
    "armillary._default_plugins.agent_events",
)
#: what the built-ins' plugin names start with (`builtin:health`)
BUILTIN_PREFIX = "builtin:"

log = logging.getLogger("armillary.plugins")

Status = Literal["loaded", "failed", "disabled", "builtin"]


@dataclass
class PluginInfo:
    """What is known about one plugin: where it comes from and how loading went."""

    name: str
    distribution: str | None = None
    version: str | None = None
    module: str | None = None
    enabled: bool = False
    status: Status = "disabled"
    error: str | None = None
    registered: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "distribution": self.distribution, "version": self.version,
            "module": self.module, "enabled": self.enabled, "status": self.status,
            "error": self.error, "registered": self.registered,
        }


def installed_entry_points() -> dict[str, EntryPoint]:
    """Installed plugins by short name. Reads metadata only; imports nothing."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=GROUP):
        found.setdefault(ep.name, ep)
    return dict(sorted(found.items()))


def describe(ep: EntryPoint) -> PluginInfo:
    dist = ep.dist
    return PluginInfo(
        name=ep.name,
        distribution=dist.metadata["Name"] if dist is not None else None,
        version=dist.version if dist is not None else None,
        module=ep.value,
    )


def did_you_mean(name: str, choices: list[str], what: str = "Installed plugins") -> str:
    """`; did you mean 'x'? Installed plugins: a, b` (or `. Installed plugins: …`)."""
    close = difflib.get_close_matches(name, choices, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "."
    return f"{hint} {what}: {', '.join(choices) if choices else '(none)'}"


def enabled_names(config: Config, installed: list[str]) -> list[str]:
    """The plugins to load, in order: `enable` (or every installed one) minus `disable`.

    Raises `ConfigError` for a name that is not installed."""
    problems = []
    for key, names in (("enable", config.kernel.enable or []), ("disable", config.kernel.disable)):
        for name in names:
            if name not in installed:
                problems.append(f"{config.source}: [kernel] {key}: unknown plugin {name!r}"
                                + did_you_mean(name, installed))
    if problems:
        raise ConfigError(problems)
    wanted = installed if config.kernel.enable is None else config.kernel.enable
    return [n for n in dict.fromkeys(wanted) if n not in config.kernel.disable]


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def load_entry_point_plugins(pm: pluggy.PluginManager, config: Config) -> list[PluginInfo]:
    """Import and register the enabled plugins. Returns info on every installed plugin.

    A plugin that fails to import is reported as failed, on its own `PluginInfo` only;
    when one was named explicitly (`enable` or `ARMILLARY_PLUGINS`) loading stops with a
    `PluginLoadError` naming each explicitly enabled plugin that failed."""
    eps = installed_entry_points()
    infos = {name: describe(ep) for name, ep in eps.items()}
    names = enabled_names(config, list(eps))
    for name in names:
        infos[name].enabled = True
    failures: dict[str, BaseException] = {}
    if names:
        _import_with_stevedore(pm, names, infos, failures)
    fatal = []
    for name, exc in failures.items():
        infos[name].status = "failed"
        infos[name].error = _reason(exc)
        if config.explicit is not None and name in config.explicit:
            fatal.append(f"plugin {name!r} ({infos[name].module}) failed to load: "
                         f"{_reason(exc)}")
        else:
            log.warning("plugin %s failed to load and is skipped: %s", name, _reason(exc))
    if fatal:
        raise PluginLoadError("\n".join(fatal))
    return list(infos.values())


def _import_with_stevedore(pm: pluggy.PluginManager, names: list[str],
                           infos: dict[str, PluginInfo],
                           failures: dict[str, BaseException]) -> None:
    from stevedore import ExtensionManager, NamedExtensionManager  # only loading needs it

    def on_failure(_manager: Any, ep: EntryPoint, exc: BaseException) -> None:
        failures[ep.name] = exc
        log.debug("plugin %s failed to load:\n%s", ep.name,
                  "".join(traceback.format_exception(exc)))

    # stevedore memoises entry points per group for the life of the process; drop that so
    # every kernel built sees what is installed now (tests and `check` build several)
    ExtensionManager.ENTRY_POINT_CACHE.pop(GROUP, None)
    manager = NamedExtensionManager(
        GROUP, names=names, invoke_on_load=False, name_order=True,
        on_load_failure_callback=on_failure,
        on_missing_entrypoints_callback=lambda missing: None,  # enabled_names checked them
    )
    for ext in manager:
        try:  # pluggy checks each hook implementation's signature here
            pm.register(ext.plugin, name=ext.name)
        except pluggy.PluginValidationError as exc:
            failures[ext.name] = exc
            continue
        infos[ext.name].status = "loaded"


def register_default_plugins(pm: pluggy.PluginManager) -> list[PluginInfo]:
    infos = []
    for path in DEFAULT_PLUGINS:
        module: ModuleType = importlib.import_module(path)
        short = BUILTIN_PREFIX + path.rsplit(".", 1)[-1]
        pm.register(module, name=short)
        infos.append(PluginInfo(name=short, distribution="armillary", module=path,
                                enabled=True, status="builtin", version=_kernel_version()))
    return infos


def is_builtin(plugin: str) -> bool:
    """Whether `plugin` (a plugin name) is one of the kernel's `DEFAULT_PLUGINS`."""
    return plugin.startswith(BUILTIN_PREFIX)


def hook_order(pm: pluggy.PluginManager, hook: str) -> list[str]:
    """The plugins implementing `hook`, in the order the kernel calls them: `tryfirst`
    ones, then the rest, then `trylast` ones, then the built-ins, each group in load order.
    (pluggy's own call order is last-registered first; the kernel's hooks are called one
    plugin at a time, so each plugin's settings and failures stay its own.)"""
    load = {name: i for i, (name, _) in enumerate(pm.list_name_plugin())}

    def key(impl: Any) -> tuple[int, int]:
        name = impl.plugin_name
        group = 3 if is_builtin(name) else 0 if impl.tryfirst else 2 if impl.trylast else 1
        return group, load.get(name, len(load))

    return [impl.plugin_name for impl in sorted(getattr(pm.hook, hook).get_hookimpls(), key=key)]


def call_one(pm: pluggy.PluginManager, hook: str, plugin: str, **kwargs: Any) -> Any:
    """Call `plugin`'s implementation of `hook` alone (what pluggy returns for it)."""
    others = [p for n, p in pm.list_name_plugin() if n != plugin]
    return pm.subset_hook_caller(hook, others)(**kwargs)


def _kernel_version() -> str:
    from armillary import __version__

    return __version__
