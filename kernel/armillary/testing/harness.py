"""Build kernels and apps in-process from plugin objects."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pluggy
from fastapi import FastAPI

from armillary._app import assemble
from armillary._config import Config, config_from_dict
from armillary._kernel import Kernel, build_kernel, new_plugin_manager


def fresh_plugin_manager() -> pluggy.PluginManager:
    """A plugin manager with the hook specs and nothing registered."""
    return new_plugin_manager()


@contextmanager
def registered(pm: pluggy.PluginManager, plugin: object,
               name: str | None = None) -> Iterator[pluggy.PluginManager]:
    """Register `plugin` for the duration of the block, then unregister it."""
    pm.register(plugin, name=name)
    try:
        yield pm
    finally:
        pm.unregister(plugin)


def _as_config(config: Config | Mapping[str, Any] | None, base_dir: Path | None) -> Config:
    """The test config: the store defaults to `memory://` and `strict_events` to on (an
    event type a plugin forgot to declare fails its test), unless the config sets them."""
    if isinstance(config, Config):
        if "strict_events" in config.kernel.model_fields_set:
            return config
        return dataclasses.replace(config, kernel=config.kernel.model_copy(
            update={"strict_events": True}))
    data = dict(config or {})
    kernel = dict(data.get("kernel") or {})
    kernel.setdefault("store", "memory://")
    kernel.setdefault("strict_events", True)
    data["kernel"] = kernel
    return config_from_dict(data, base_dir=base_dir, source="(test config)")


def make_kernel(plugins: Mapping[str, object] | list[object] | None = None,
                config: Config | Mapping[str, Any] | None = None, *,
                load_entry_points: bool = False, base_dir: Path | None = None) -> Kernel:
    """A kernel with the given plugin objects (modules, classes or instances) registered.

    `plugins` may be a list (named `test-0`, `test-1`, …) or a name → plugin mapping.
    `config` is a `Config` or the parsed-TOML dict; the store defaults to `memory://` and
    `[kernel] strict_events` to true."""
    plugins = plugins or []
    items = plugins.items() if isinstance(plugins, Mapping) else (
        (f"test-{i}", p) for i, p in enumerate(plugins))
    return build_kernel(_as_config(config, base_dir), load_entry_points=load_entry_points,
                        extra_plugins=list(items))


def make_app(plugins: Mapping[str, object] | list[object] | None = None,
             config: Config | Mapping[str, Any] | None = None, *,
             load_entry_points: bool = False, base_dir: Path | None = None) -> FastAPI:
    """A FastAPI app assembled from the given plugins (see `make_kernel`).

    Its lifespan starts the kernel: use it with `asgi_lifespan`-style helpers, with
    `fastapi.testclient.TestClient` as a context manager, or serve it."""
    return assemble(make_kernel(plugins, config, load_entry_points=load_entry_points,
                                base_dir=base_dir))
