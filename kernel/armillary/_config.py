"""plugins.toml: which plugins are on, their settings, and the agents.

Resolution order for the file: the `path` argument, `ARMILLARY_CONFIG`, `./plugins.toml`
when it exists, else built-in defaults. `{ "$env" = "NAME" }` anywhere in the file is
replaced by that environment variable. `ARMILLARY_PLUGINS` (comma-separated short names;
empty = none) overrides `[kernel] enable`; `ARMILLARY_STORE` overrides `[kernel] store`.
Relative paths resolve against the file's folder.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from armillary._errors import ConfigError
from armillary._models import AgentSpec

DEFAULT_FILE = "plugins.toml"


class KernelSettings(BaseModel):
    """The `[kernel]` section."""

    model_config = ConfigDict(extra="forbid")

    #: plugins to load; None (omitted) = every installed plugin, [] = none
    enable: list[str] | None = None
    disable: list[str] = Field(default_factory=list)
    store: str = "sqlite:///./armillary.db"
    #: the provider used when an agent names none; default: the one registered as default
    default_provider: str | None = None
    #: the strategy a run uses when neither the request nor its agent names one (the
    #: built-in tool-calling loop; a plugin may register its own under this name)
    default_strategy: str = Field(default="single_agent", min_length=1)
    #: an event of a type no plugin declared (`register_event_types`), or whose payload
    #: does not fit its model, fails the emit (`unknown_event_type`,
    #: `invalid_event_payload`) instead of being logged once per type
    strict_events: bool = False
    #: requests with a larger body are refused with 413 `payload_too_large`
    max_body_bytes: int = Field(default=1_048_576, ge=1)
    #: a request body silent this many seconds (between two pieces, or before the first)
    #: gets 408 `request_timeout` and its connection closed; None: wait for ever
    body_read_timeout_seconds: float | None = Field(default=30.0, gt=0)
    #: runs executing at once in this process; the rest wait queued
    max_concurrent_runs: int = Field(default=8, ge=1)
    #: how long a cancel/stop waits for the strategy to finish its cleanup before the
    #: run's end is written regardless (a strategy that swallows its cancel)
    cancel_grace_seconds: float = Field(default=10.0, gt=0)
    #: finished runs (and their event logs) kept; older ones are pruned
    keep_finished_runs: int | None = Field(default=10_000, ge=0)
    #: finished runs older than this many seconds are pruned
    finished_run_ttl_seconds: float | None = Field(default=7 * 24 * 3600, gt=0)
    #: seconds between background reachability checks of the providers (for /health)
    provider_check_interval: float = Field(default=15.0, gt=0)
    log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = "info"


@dataclass
class Config:
    """Everything read from plugins.toml and the environment."""

    kernel: KernelSettings = field(default_factory=KernelSettings)
    #: raw `[plugins.<name>]` sections, validated later against each plugin's model
    plugins: dict[str, dict[str, Any]] = field(default_factory=dict)
    agents: dict[str, AgentSpec] = field(default_factory=dict)
    #: the file read, or None for built-in defaults
    path: Path | None = None
    #: folder relative paths resolve against
    base_dir: Path = field(default_factory=Path.cwd)
    #: names from `ARMILLARY_PLUGINS` or `[kernel] enable` (None: not explicit)
    explicit: list[str] | None = None
    #: what error messages call this configuration when it has no file
    label: str = "(built-in defaults)"

    @property
    def source(self) -> str:
        return str(self.path) if self.path else self.label

    def resolve(self, value: str | Path) -> Path:
        """A path from the file, made absolute against the file's folder."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.base_dir / p)

    def store_url(self) -> str:
        """The store URL with a relative sqlite path resolved against the file's folder."""
        url = self.kernel.store
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/"):
            rest = url[len(prefix):]
            if rest != ":memory:":
                return prefix + str(self.resolve(rest))
        return url


def _resolve_env(value: Any, where: str, problems: list[str], source: str) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$env"}:
            name = value["$env"]
            if not isinstance(name, str) or name not in os.environ:
                problems.append(f"{source}: {where}: environment variable {name!r} is not set")
                return None
            return os.environ[name]
        return {k: _resolve_env(v, f"{where}.{k}", problems, source) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_env(v, f"{where}[{i}]", problems, source) for i, v in enumerate(value)]
    return value


def format_validation_error(exc: ValidationError, source: str, section: str) -> list[str]:
    """One line per problem: `file: [section] field: message`."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(section)"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"{source}: [{section}] {loc}: {msg}")
    return lines


def find_config_path(path: str | Path | None = None) -> Path | None:
    if path is not None:
        return Path(path)
    env = os.environ.get("ARMILLARY_CONFIG")
    if env:
        return Path(env)
    default = Path.cwd() / DEFAULT_FILE
    return default if default.exists() else None


def load_config(path: str | Path | None = None) -> Config:
    """Read and check plugins.toml. Raises `ConfigError` listing every problem found."""
    file = find_config_path(path)
    data: dict[str, Any] = {}
    source = "(built-in defaults)"
    base_dir = Path.cwd()
    if file is not None:
        source = str(file)
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError([f"{source}: file not found"]) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{source}: not valid TOML: {exc}"]) from None
        base_dir = file.resolve().parent
    return config_from_dict(data, path=file, base_dir=base_dir, source=source)


def _read_instructions(agent: AgentSpec, base: Path, where: str,
                       problems: list[str]) -> AgentSpec:
    """Read `instructions_file` once, at startup, into `instructions`."""
    assert agent.instructions_file is not None
    if agent.instructions is not None:
        problems.append(f"{where}: set instructions or instructions_file, not both")
        return agent
    file = agent.instructions_file
    file = file if file.is_absolute() else base / file
    try:
        text = file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        problems.append(f"{where} instructions_file: cannot read {file}: "
                        f"{exc.strerror or exc}")
        return agent
    return agent.model_copy(update={"instructions_file": file, "instructions": text})


def config_from_dict(data: dict[str, Any], *, path: Path | None = None,
                     base_dir: Path | None = None, source: str = "(config)") -> Config:
    """Build a `Config` from an already-parsed document (what tests and `make_app` use)."""
    problems: list[str] = []
    data = _resolve_env(data, "", problems, source)
    for key in data:
        if key not in ("kernel", "plugins", "agents"):
            problems.append(
                f"{source}: [{key}]: unknown section (expected kernel, plugins, agents)")

    for key in ("kernel", "plugins", "agents"):
        if key in data and not isinstance(data[key], dict):
            problems.append(f"{source}: [{key}]: must be a table, not {data[key]!r}")
            data = {k: v for k, v in data.items() if k != key}
    kernel_raw = dict(data.get("kernel") or {})
    env_plugins = os.environ.get("ARMILLARY_PLUGINS")
    if env_plugins is not None:
        kernel_raw["enable"] = [n.strip() for n in env_plugins.split(",") if n.strip()]
    if os.environ.get("ARMILLARY_STORE"):
        kernel_raw["store"] = os.environ["ARMILLARY_STORE"]
    kernel = KernelSettings()
    try:
        kernel = KernelSettings.model_validate(kernel_raw)
    except ValidationError as exc:
        problems += format_validation_error(exc, source, "kernel")

    plugins = data.get("plugins") or {}
    if not isinstance(plugins, dict) or not all(isinstance(v, dict) for v in plugins.values()):
        problems.append(f"{source}: [plugins]: each entry must be a table [plugins.<name>]")
        plugins = {}

    base = base_dir or Path.cwd()
    agents: dict[str, AgentSpec] = {}
    for name, raw in (data.get("agents") or {}).items():
        if not isinstance(raw, dict):
            problems.append(f"{source}: [agents.{name}]: must be a table")
            continue
        if "name" in raw:
            problems.append(f"{source}: [agents.{name}] name: the table's name is the agent's "
                            f"name; remove this key")
            continue
        try:
            agent = AgentSpec.model_validate({"name": name, **raw})
        except ValidationError as exc:
            problems += format_validation_error(exc, source, f"agents.{name}")
            continue
        if agent.instructions_file is not None:
            agent = _read_instructions(agent, base, f"{source}: [agents.{name}]", problems)
        agents[name] = agent

    if problems:
        raise ConfigError(problems)
    return Config(kernel=kernel, plugins=plugins, agents=agents, path=path, base_dir=base,
                  explicit=list(kernel.enable) if kernel.enable is not None else None,
                  label=source if path is None else str(path))
