from __future__ import annotations

from pathlib import Path

import pytest

from armillary._config import load_config
from armillary._errors import ConfigError


def write(tmp_path: Path, text: str, name: str = "plugins.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


def test_no_file_gives_the_defaults(tmp_path: Path) -> None:
    config = load_config()
    assert config.path is None
    assert config.kernel.enable is None
    assert config.store_url() == f"sqlite:///{tmp_path / 'armillary.db'}"


def test_plugins_toml_in_the_working_folder_is_read(tmp_path: Path) -> None:
    write(tmp_path, '[kernel]\nenable = ["tasks"]\n')
    assert load_config().kernel.enable == ["tasks"]


def test_armillary_config_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "[kernel]\nenable = []\n", "other.toml")
    monkeypatch.setenv("ARMILLARY_CONFIG", str(path))
    assert load_config().path == path


def test_malformed_toml_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[kernel\nenable = 1\n")
    message = problems(path)
    assert str(path) in message
    assert "not valid TOML" in message
    assert "line 1" in message


def test_a_missing_file_is_reported(tmp_path: Path) -> None:
    assert "file not found" in problems(tmp_path / "nope.toml")


def test_wrong_type_names_file_section_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, '[kernel]\nenable = "tasks"\nmax_body_bytes = "big"\n')
    message = problems(path)
    assert f"{path}: [kernel] enable:" in message
    assert f"{path}: [kernel] max_body_bytes:" in message


def test_unknown_kernel_key_and_section_are_refused(tmp_path: Path) -> None:
    message = problems(write(tmp_path, "[kernel]\nstroe = 'memory://'\n[kernal]\n"))
    assert "[kernel] stroe: unknown key" in message
    assert "[kernal]: unknown section" in message


def test_env_references_are_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "s3cret")
    path = write(tmp_path, '[plugins.openai]\napi_key = { "$env" = "MY_KEY" }\n')
    assert load_config(path).plugins["openai"]["api_key"] == "s3cret"


def test_a_missing_env_reference_names_the_field(tmp_path: Path) -> None:
    path = write(tmp_path, '[plugins.openai]\napi_key = { "$env" = "NOT_SET_ANYWHERE" }\n')
    message = problems(path)
    assert "plugins.openai.api_key" in message
    assert "NOT_SET_ANYWHERE" in message


def test_armillary_plugins_overrides_enable(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[kernel]\nenable = ["tasks"]\n')
    monkeypatch.setenv("ARMILLARY_PLUGINS", "ollama, chat")
    assert load_config(path).kernel.enable == ["ollama", "chat"]
    monkeypatch.setenv("ARMILLARY_PLUGINS", "")
    assert load_config(path).kernel.enable == []


def test_armillary_store_overrides_the_store(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARMILLARY_STORE", "memory://")
    assert load_config(write(tmp_path, "")).store_url() == "memory://"


def test_relative_paths_resolve_against_the_files_folder(tmp_path: Path) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    (folder / "prompts").mkdir()
    (folder / "prompts" / "helper.txt").write_text("Be brief.\n")
    path = write(folder, '[kernel]\nstore = "sqlite:///data/a.db"\n'
                         '[agents.helper]\ninstructions_file = "prompts/helper.txt"\n')
    config = load_config(path)
    assert config.store_url() == f"sqlite:///{folder / 'data' / 'a.db'}"
    assert config.agents["helper"].system_prompt() == "Be brief."


def test_agents_are_validated(tmp_path: Path) -> None:
    message = problems(write(tmp_path, '[agents.a]\ntools = "calculator"\nmax_step = 3\n'
                                       '[agents.b]\ninstructions_file = "missing.txt"\n'))
    assert "[agents.a] tools:" in message
    assert "[agents.a] max_step: unknown key" in message
    assert "[agents.b] instructions_file: cannot read" in message
    assert "No such file or directory" in message


def test_instructions_and_instructions_file_together_are_refused(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("x")
    message = problems(write(tmp_path, '[agents.a]\ninstructions = "hi"\n'
                                       'instructions_file = "p.txt"\n'))
    assert "[agents.a]: set instructions or instructions_file, not both" in message


def test_a_prompt_file_is_read_once_at_startup(tmp_path: Path) -> None:
    prompt = tmp_path / "p.txt"
    prompt.write_text("Be kind.\n")
    config = load_config(write(tmp_path, '[agents.a]\ninstructions_file = "p.txt"\n'))
    prompt.unlink()  # a file removed later cannot break requests
    assert config.agents["a"].system_prompt() == "Be kind."


def test_sections_of_the_wrong_shape_are_named_not_a_traceback(tmp_path: Path) -> None:
    message = problems(write(tmp_path, 'kernel = 5\nagents = "many"\n'))
    assert "[kernel]: must be a table, not 5" in message
    assert "[agents]: must be a table, not 'many'" in message


def test_an_agent_table_cannot_rename_its_agent(tmp_path: Path) -> None:
    message = problems(write(tmp_path, '[agents.helper]\nname = "other"\n'))
    assert "[agents.helper] name: the table's name is the agent's name" in message


def test_log_level_is_checked(tmp_path: Path) -> None:
    assert "[kernel] log_level:" in problems(write(tmp_path, '[kernel]\nlog_level = "loud"\n'))
