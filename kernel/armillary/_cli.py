"""The `armillary` command: serve, plugins, check, run, openapi, and the enabled plugins'
commands (`register_commands`; `submit` comes from the `tasks` plugin).

Plugin commands are loaded only when needed (`--help`, or a name that is not built in),
from the plugins the default config lookup enables (`ARMILLARY_CONFIG`, else
./plugins.toml), so `armillary serve` and the other built-in commands pay nothing for them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

import click

from armillary._config import Config, load_config
from armillary._errors import PluginLoadError, StartupError

#: a backstop: connections still open this long after SIGTERM are closed anyway
GRACEFUL_SHUTDOWN_SECONDS = 10
#: after a shutdown signal, how long open streams get to send their last events
FOLLOWER_GRACE_SECONDS = 0.5

CONFIG_HELP = "plugins.toml to read (default: $ARMILLARY_CONFIG, then ./plugins.toml)."


def _fail(exc: StartupError) -> None:
    click.secho("armillary: cannot start:", fg="red", err=True)
    for line in str(exc).splitlines():
        click.echo(f"  {line}", err=True)
    sys.exit(2)


def _config(path: str | None) -> Config:
    try:
        return load_config(path)
    except StartupError as exc:
        _fail(exc)
        raise  # unreachable


def _warn(text: str) -> None:
    click.secho(f"armillary: warning: {text}", fg="yellow", err=True)


def plugin_commands(builtin: Mapping[str, click.Command]) -> dict[str, click.Command]:
    """The commands the enabled plugins register, by name, in hook order.

    A configuration that cannot be read, or a plugin that cannot load or register, costs
    only its commands (one warning line each). A name taken twice raises
    `click.ClickException` naming both owners."""
    from armillary._errors import ConfigError
    from armillary._kernel import new_plugin_manager
    from armillary._plugins import call_one, hook_order, load_entry_point_plugins
    from armillary._registration import plugin_settings

    try:
        config = load_config()
        pm = new_plugin_manager()
        load_entry_point_plugins(pm, config)
    except StartupError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        _warn(f"plugin commands not loaded: {first}")
        return {}
    found: dict[str, tuple[str, click.Command]] = {}
    for name in hook_order(pm, "register_commands"):
        mine: list[click.Command] = []

        def register(command: click.Command, mine: list[click.Command] = mine) -> None:
            if not isinstance(command, click.Command):
                raise TypeError(f"{command!r} is not a click.Command")
            mine.append(command)

        try:
            settings = plugin_settings(pm, name, config)
            call_one(pm, "register_commands", name, register=register, settings=settings,
                     config=config)
        except ConfigError as exc:
            _warn(f"plugin {name!r}: commands not loaded: {exc.problems[0]}")
            continue
        except Exception as exc:
            _warn(f"plugin {name!r}: commands not loaded: {type(exc).__name__}: {exc}")
            continue
        for command in mine:
            command_name = command.name or ""
            owner = "the built-in commands" if command_name in builtin else \
                f"plugin {found[command_name][0]!r}" if command_name in found else None
            if owner is not None:
                raise click.ClickException(
                    f"command {command_name!r} is registered by both {owner} and plugin "
                    f"{name!r}; disable the plugin in plugins.toml")
            found[command_name] = (name, command)
    return {n: c for n, (_, c) in found.items()}


class ArmillaryGroup(click.Group):
    """The built-in commands plus the enabled plugins', which are loaded (once) only when
    a name is not built in or the list is shown."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plugin_commands: dict[str, click.Command] | None = None

    def _plugins(self) -> dict[str, click.Command]:
        if self._plugin_commands is None:
            self._plugin_commands = plugin_commands(self.commands)
        return self._plugin_commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self._plugins()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        builtin = self.commands.get(cmd_name)
        return builtin if builtin is not None else self._plugins().get(cmd_name)


@click.group(cls=ArmillaryGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="armillary")
def main() -> None:
    """Armillary: a plugin-based microkernel for LLM agent servers."""


def _log_to_stderr(level: str) -> None:
    """Plugins log with `logging.getLogger(__name__)`: give the root logger a handler at
    the server's level so their records show beside uvicorn's (which keeps its own
    handlers). HTTP clients' per-request lines stay at WARNING unless debugging."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        root.addHandler(handler)
    numeric = logging.getLevelName(level.upper())
    root.setLevel(numeric if isinstance(numeric, int) else logging.INFO)
    if root.level > logging.DEBUG:
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).setLevel(logging.WARNING)


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help=CONFIG_HELP)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--log-level", default=None, help="uvicorn log level (default: [kernel] log_level)")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              envvar="ARMILLARY_LOG_FORMAT", show_default=True, show_envvar=True,
              help="json: one JSON object per line (request and run ids, secrets masked).")
def serve(config_path: str | None, host: str, port: int, log_level: str | None,
          log_format: str) -> None:
    """Assemble the app from the enabled plugins and serve it."""
    import uvicorn

    from armillary._app import create_app

    config = _config(config_path)
    level = log_level or config.kernel.log_level
    uvicorn_logging: dict[str, Any] = {}
    if log_format == "json":
        from armillary._logging import use_json_logs

        use_json_logs(level)
        uvicorn_logging["log_config"] = None  # uvicorn's records propagate to the JSON root
    else:
        _log_to_stderr(level)
    try:
        app = create_app(config)
    except StartupError as exc:
        _fail(exc)
    kernel = app.state.kernel

    class Server(uvicorn.Server):
        """On SIGTERM/SIGINT, also tell the kernel: its runs end `interrupted` and its
        streams and waits end, so uvicorn's wait for open connections is short."""

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # first signal: end the runs and streams, then let uvicorn close connections
            # (it would otherwise close WebSockets before their last event went out);
            # a second signal, or no running kernel, stops at once
            if self.should_exit or getattr(self, "_draining", False) or \
                    not kernel.request_shutdown(then=lambda: uvicorn.Server.handle_exit(
                        self, sig, frame), grace=FOLLOWER_GRACE_SECONDS):
                super().handle_exit(sig, frame)
            self._draining = True

    server = Server(uvicorn.Config(
        app, host=host, port=port, log_level=level, lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS, **uvicorn_logging))
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:  # e.g. lifespan startup failed (already said why)
        sys.exit(3)


class _SkippedPluginWarnings(logging.Handler):
    """While `plugins` or `check` runs: prints the loader's warnings to stderr as they
    would be, except "plugin X failed ... and is skipped", which the command reports
    itself, once, with the plugin it belongs to."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, str) and record.msg.startswith("plugin %s failed"):
            return
        click.echo(self.format(record), err=True)


@contextlib.contextmanager
def _cli_reports_plugin_failures() -> Iterator[None]:
    logger = logging.getLogger("armillary")
    handler = _SkippedPluginWarnings()
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _plugin_infos(config: Config) -> tuple[list[dict[str, Any]], StartupError | None]:
    """Every installed plugin's row and the error that stops the server from starting
    (None if it would start). Each load failure stays on the plugin it belongs to."""
    from armillary._kernel import build_kernel, new_plugin_manager
    from armillary._plugins import describe, installed_entry_points, load_entry_point_plugins

    def rows(infos: list[Any]) -> list[dict[str, Any]]:
        return [i.as_dict() for i in infos if not i.name.startswith("builtin:")]

    try:
        return rows(build_kernel(config).plugins), None
    except StartupError as exc:
        problem = exc
    # an explicitly enabled plugin failing stops at the first one: load again as if every
    # plugin were enabled implicitly, so each failure is recorded on its own plugin
    lenient = dataclasses.replace(config, explicit=None)
    try:
        return rows(build_kernel(lenient).plugins), problem
    except StartupError:
        pass
    try:  # the kernel cannot be built at all: at least say which plugins import
        return rows(load_entry_point_plugins(new_plugin_manager(), lenient)), problem
    except StartupError:
        return [{**describe(ep).as_dict(), "status": "not loaded"}
                for ep in installed_entry_points().values()], problem


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help=CONFIG_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins(config_path: str | None, as_json: bool) -> None:
    """List installed plugins: name, distribution, version, enabled, load status.

    Exits 1 when an enabled plugin cannot load (each failure is shown on its own
    plugin's row and once on stderr) or the configuration has problems."""
    config = _config(config_path)
    with _cli_reports_plugin_failures():
        infos, problem = _plugin_infos(config)
    if as_json:
        click.echo(json.dumps(infos, indent=2))
    else:
        rows = [("NAME", "DISTRIBUTION", "VERSION", "ENABLED", "STATUS")]
        for i in infos:
            status = i["status"] if not i.get("error") else f"{i['status']}: {i['error']}"
            rows.append((i["name"], i["distribution"] or "-", i["version"] or "-",
                         "yes" if i["enabled"] else "no", status))
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        for r in rows:
            click.echo("  ".join(r[c].ljust(widths[c]) for c in range(4)) + "  " + r[4])
    failed = [i for i in infos if i["enabled"] and i["status"] == "failed"]
    if not failed and problem is None:
        return
    click.secho(f"{config.source}: problems found:", fg="red", err=True)
    for i in failed:
        click.echo(f"  plugin {i['name']!r} failed to load: {i['error']}", err=True)
    if problem is not None and not (failed and isinstance(problem, PluginLoadError)):
        for line in str(problem).splitlines():
            click.echo(f"  {line}", err=True)
    sys.exit(1)


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help=CONFIG_HELP)
def check(config_path: str | None) -> None:
    """Validate plugins.toml and the enabled plugins' settings; exit non-zero on problems.

    Exits 1 on any problem, including an implicitly enabled plugin (no `[kernel] enable`)
    that fails to load: `serve` would start without it, with a warning. Disable it in
    `[kernel] disable` to leave it out on purpose."""
    from armillary._app import assemble
    from armillary._kernel import build_kernel

    config = _config(config_path)
    try:
        with _cli_reports_plugin_failures():
            kernel = build_kernel(config)
        assemble(kernel)
    except StartupError as exc:
        click.secho(f"{config.source}: problems found:", fg="red", err=True)
        for line in str(exc).splitlines():
            click.echo(f"  {line}", err=True)
        sys.exit(1)
    failed = [i for i in kernel.plugins if i.enabled and i.status == "failed"]
    if failed:
        click.secho(f"{config.source}: problems found:", fg="red", err=True)
        for i in failed:
            click.echo(f"  plugin {i.name!r} failed to load: {i.error}", err=True)
        click.echo("  (serve would start without "
                   f"{'it' if len(failed) == 1 else 'them'}; to leave a plugin out on "
                   f"purpose, add it to [kernel] disable)", err=True)
        sys.exit(1)
    loaded = [i.name for i in kernel.plugins if i.status == "loaded"]
    click.echo(f"{config.source}: OK ({len(loaded)} plugins: {', '.join(loaded) or 'none'})")


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help=CONFIG_HELP)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None)
def openapi(config_path: str | None, output: Path | None) -> None:
    """Print the assembled app's OpenAPI document."""
    from armillary._app import create_app

    config = _config(config_path)
    try:
        app = create_app(config)
    except StartupError as exc:
        _fail(exc)
    text = json.dumps(app.openapi(), indent=2)
    if output:
        output.write_text(text + "\n", encoding="utf-8")
    else:
        click.echo(text)


@main.command()
@click.argument("goal")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help=CONFIG_HELP)
@click.option("--agent", default=None, help="Agent name (default: the default agent).")
@click.option("--max-steps", default=None, type=click.IntRange(1, 1000))
def run(goal: str, config_path: str | None, agent: str | None, max_steps: int | None) -> None:
    """Run GOAL in-process (no server) and show its steps live."""
    from armillary._cli_run import run_goal

    config = _config(config_path)
    try:
        sys.exit(run_goal(config, goal, agent=agent, max_steps=max_steps))
    except StartupError as exc:
        _fail(exc)
