"""Plugins add `armillary` subcommands (`register_commands`), run as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.fake_dists import install_plugin

GREETER = '''
import click
from pydantic import BaseModel

from armillary import hookimpl


class Settings(BaseModel):
    greeting: str = "hello"


@click.command()
@click.argument("who")
def greet(who):
    """Greet WHO with the configured greeting."""
    click.echo(f"{SETTINGS[0].greeting}, {who}!")


SETTINGS = []


@hookimpl
def settings_model():
    return Settings


@hookimpl
def register_commands(register, settings):
    SETTINGS[:] = [settings]
    register(greet)
'''

CLAIMS = '''
import click

from armillary import hookimpl


@click.command(name="{command}")
def claimed():
    """Claims {command}."""
    click.echo("{plugin} ran")


@hookimpl
def register_commands(register):
    register(claimed)
'''

ECHO_STRATEGY = '''
from armillary import Strategy, hookimpl


class Echo(Strategy):
    name = "echo"

    async def execute(self, ctx):
        await ctx.emit("step", {"step_number": 1, "success": True})
        return "echo: " + ctx.run.goal


@hookimpl
def register_strategies(register):
    register(Echo())
'''


def armillary(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "armillary", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=60)


def test_a_plugins_command_is_listed_and_runs_with_the_plugins_settings(
        site: Path, tmp_path: Path) -> None:
    install_plugin(site, "greeter", GREETER)
    (tmp_path / "plugins.toml").write_text('[kernel]\nenable = ["greeter"]\n'
                                           '[plugins.greeter]\ngreeting = "ahoy"\n')
    listed = armillary("--help", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "  greet " in listed.stdout and "Greet WHO" in listed.stdout
    assert "  serve " in listed.stdout
    done = armillary("greet", "world", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ahoy, world!\n"


def test_a_disabled_plugins_command_is_not_there(site: Path, tmp_path: Path) -> None:
    install_plugin(site, "greeter", GREETER)
    (tmp_path / "plugins.toml").write_text('[kernel]\nenable = []\n')
    out = armillary("greet", "world", cwd=tmp_path)
    assert out.returncode == 2 and "No such command 'greet'" in out.stderr
    assert "submit" not in armillary("--help", cwd=tmp_path).stdout  # tasks is off too


def test_two_plugins_registering_one_command_name_is_an_error_naming_both(
        site: Path, tmp_path: Path) -> None:
    install_plugin(site, "alpha", CLAIMS.format(command="deploy", plugin="alpha"))
    install_plugin(site, "beta", CLAIMS.format(command="deploy", plugin="beta"))
    (tmp_path / "plugins.toml").write_text('[kernel]\nenable = ["alpha", "beta"]\n')
    out = armillary("deploy", cwd=tmp_path)
    assert out.returncode == 1
    assert "command 'deploy' is registered by both plugin 'alpha' and plugin 'beta'" \
        in out.stderr
    assert "Traceback" not in out.stderr


def test_a_plugin_command_named_like_a_builtin_one_is_an_error_naming_both(
        site: Path, tmp_path: Path) -> None:
    install_plugin(site, "usurper", CLAIMS.format(command="serve", plugin="usurper"))
    (tmp_path / "plugins.toml").write_text('[kernel]\nenable = ["usurper"]\n')
    out = armillary("--help", cwd=tmp_path)
    assert out.returncode == 1
    assert "command 'serve' is registered by both the built-in commands and plugin " \
           "'usurper'" in out.stderr


def test_a_broken_config_still_shows_the_builtin_commands_with_one_warning(
        tmp_path: Path) -> None:
    (tmp_path / "plugins.toml").write_text("[kernel]\nenable = [\n")  # not TOML
    out = armillary("--help", cwd=tmp_path)
    assert out.returncode == 0
    for command in ("serve", "plugins", "check", "run", "openapi"):
        assert f"  {command} " in out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "warning: plugin commands not loaded" in lines[0]
    assert "not valid TOML" in lines[0]


def test_submit_is_the_tasks_plugins_command(tmp_path: Path) -> None:
    (tmp_path / "plugins.toml").write_text('[kernel]\nenable = ["tasks"]\n')
    out = armillary("submit", "--help", cwd=tmp_path)
    assert out.returncode == 0 and "Submit GOAL to a running server's task API" in out.stdout
    (tmp_path / "plugins.toml").write_text('[kernel]\nenable = []\n')
    gone = armillary("submit", "hi", cwd=tmp_path)
    assert gone.returncode == 2 and "No such command 'submit'" in gone.stderr


def test_run_uses_the_kernels_default_strategy(site: Path, tmp_path: Path) -> None:
    install_plugin(site, "echoes", ECHO_STRATEGY)
    (tmp_path / "plugins.toml").write_text(
        '[kernel]\nenable = ["echoes"]\ndefault_strategy = "echo"\n')
    out = armillary("run", "the goal", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "echo: the goal\n"


def test_a_default_strategy_nobody_registers_stops_startup(tmp_path: Path) -> None:
    (tmp_path / "plugins.toml").write_text(
        '[kernel]\nenable = []\ndefault_strategy = "single_agnet"\n')
    out = armillary("check", cwd=tmp_path)
    assert out.returncode == 1
    assert "[kernel] default_strategy: no strategy named 'single_agnet'; did you mean " \
           "'single_agent'?" in out.stderr


def test_a_builtin_command_never_asks_the_plugins_for_theirs(site: Path, tmp_path: Path) -> None:
    marker = tmp_path / "asked"
    install_plugin(site, "watcher", f'''
from pathlib import Path

from armillary import hookimpl


@hookimpl
def register_commands(register):
    Path({str(marker)!r}).write_text("asked")
''')
    (tmp_path / "plugins.toml").write_text('[kernel]\nenable = ["watcher"]\n'
                                           'store = "memory://"\n')
    assert armillary("check", cwd=tmp_path).returncode == 0
    assert not marker.exists()
    assert armillary("--help", cwd=tmp_path).returncode == 0
    assert marker.exists()
