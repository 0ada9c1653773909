"""The trimmed Raspberry Pi install, as docs/raspberry-pi.md describes it.

Wheels of the kernel, the Ollama provider, chat and agents are built and installed into a
fresh virtualenv with nothing else; the server runs with plugins.pi.toml against the
Ollama test server. Nothing else may be installed, and nothing else may be imported:
`PYTHONPROFILEIMPORTTIME` makes the server process log every module it imports.
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from armillary.testing import ArmillaryServer
from tests.support.ollama_server import OllamaTestServer, Reply
from tests.support.wheels import REPO, build_wheels, fresh_venv, installed, pip_install

pytestmark = pytest.mark.slow

PI_PACKAGES = ("armillary", "armillary-ollama", "armillary-chat", "armillary-agents")
PI_PLUGINS = {"ollama", "chat", "agents"}
#: dependencies of other plugins a Pi must never carry (plus whatever their
#: pyproject.toml files declare, read below)
NEVER_ON_A_PI = {"openai", "prometheus-client", "redis", "sse-starlette", "limits",
                 "pydantic-settings", "websockets", "hiredis", "celery", "arq", "rq",
                 "numpy", "pytest", "sqlalchemy", "asyncpg"}
PI_MODEL = "llama3.2:1b"


def _requirement_name(req: str) -> str:
    return re.split(r"[\s<>=!~;\[(]", req, maxsplit=1)[0].lower().replace("_", "-")


def _pyproject(path: Path) -> dict:  # type: ignore[type-arg]
    return tomllib.loads(path.read_text(encoding="utf-8"))


def other_members() -> dict[str, set[str]]:
    """Every workspace member that is not part of the Pi install → its dependencies."""
    out = {}
    for pyproject in [*REPO.glob("plugins/*/pyproject.toml"),
                      *REPO.glob("contrib/*/pyproject.toml")]:
        project = _pyproject(pyproject)["project"]
        name = project["name"].lower()
        if name not in PI_PACKAGES:
            out[name] = {_requirement_name(r) for r in project.get("dependencies", [])}
    return out


def pi_dependencies() -> set[str]:
    deps = {_requirement_name(r) for r in _pyproject(REPO / "pyproject.toml")["project"]
            ["dependencies"]}
    for member in ("ollama", "chat", "agents"):
        project = _pyproject(REPO / "plugins" / member / "pyproject.toml")["project"]
        deps |= {_requirement_name(r) for r in project.get("dependencies", [])}
    return deps


@pytest.fixture(scope="module")
def pi_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pi")
    wheels = build_wheels(root / "wheels", *PI_PACKAGES)
    assert len(wheels) == len(PI_PACKAGES), wheels
    python = fresh_venv(root / "venv")
    pip_install(python, *wheels)
    return python


@pytest.fixture(scope="module")
def ollama() -> Iterator[OllamaTestServer]:
    with OllamaTestServer(models=[PI_MODEL], default="Hello from Ollama on the Pi.") as server:
        yield server


def pi_profile(folder: Path, ollama_url: str) -> Path:
    """plugins.pi.toml as shipped, pointed at the Ollama test server."""
    text = (REPO / "plugins.pi.toml").read_text(encoding="utf-8")
    shipped = 'base_url = "http://127.0.0.1:11434"'
    assert shipped in text
    config = folder / "plugins.pi.toml"
    config.write_text(text.replace(shipped, f'base_url = "{ollama_url}"'), encoding="utf-8")
    return config


def test_the_pi_venv_holds_only_the_pi_plugins_and_their_dependencies(pi_python: Path) -> None:
    have = installed(pi_python)
    assert {p for p in have if p.startswith("armillary")} == set(PI_PACKAGES)
    others = other_members()
    pi_deps = pi_dependencies()
    foreign = (NEVER_ON_A_PI | set().union(*others.values())) - pi_deps - set(PI_PACKAGES)
    assert not (have & set(others)), f"other plugins installed: {have & set(others)}"
    assert not (have & foreign), f"other plugins' dependencies installed: {have & foreign}"
    entry_points = subprocess.run(
        [str(pi_python), "-c", "from importlib.metadata import entry_points;"
         "print(sorted(e.name for e in entry_points(group='armillary')))"],
        check=True, capture_output=True, text=True).stdout
    assert entry_points.strip() == str(sorted(PI_PLUGINS))


def test_the_pi_server_chats_with_ollama_and_imports_nothing_else(
        pi_python: Path, ollama: OllamaTestServer, tmp_path: Path) -> None:
    config = pi_profile(tmp_path, ollama.url)
    ollama.push("Hi! I run on a Raspberry Pi.", Reply(text="You said hello.", delay=0.01))
    log = tmp_path / "serve.log"
    with ArmillaryServer(config, python=str(pi_python), cwd=tmp_path, log_path=log,
                         env={"PYTHONPROFILEIMPORTTIME": "1"}) as server:
        url = server.url
        health = httpx.get(url + "/health?fresh=true").json()
        first = httpx.post(url + "/chat", json={"message": "hello"}, timeout=10)
        cid = first.json()["conversation_id"]
        streamed = httpx.post(url + "/chat", timeout=10, json={
            "message": "what did I say?", "stream": True, "conversation_id": cid})
        agents = httpx.get(url + "/agents").json()["agents"]
        plugins = httpx.get(url + "/v1/plugins").json()["plugins"]
        history = httpx.get(f"{url}/chat/{cid}").json()

    assert health["status"] == "ok", health
    assert health["providers"]["ollama"]["reachable"] is True
    assert first.status_code == 200, first.text
    assert first.json()["reply"] == "Hi! I run on a Raspberry Pi."
    assert first.json()["model"] == PI_MODEL
    assert streamed.status_code == 200
    assert streamed.text == "You said hello."
    assert [t["assistant"] for t in history["turns"]] == [
        "Hi! I run on a Raspberry Pi.", "You said hello."]

    # Ollama saw the shipped general prompt, the history, and the profile's settings
    sent = ollama.chat_requests[-1].json
    assert sent["model"] == PI_MODEL
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant", "user"]
    assert sent["options"]["num_ctx"] == 2048

    general = {a["name"]: a for a in agents}["general"]
    assert (general["provider"], general["model"]) == ("ollama", PI_MODEL)
    assert general["task_count"] == 2
    loaded = {p["name"] for p in plugins if not p["name"].startswith("builtin:")}
    assert loaded == PI_PLUGINS

    imported = imported_modules(log.read_text(errors="replace"))
    assert {"armillary_chat", "armillary_agents", "armillary_ollama"} <= imported
    foreign = {name.replace("-", "_") for name in (NEVER_ON_A_PI | set(other_members()))}
    # the log also lists imports that were tried and failed (uvicorn probes `websockets`);
    # a module the venv cannot find was not loaded
    loaded_foreign = findable(pi_python, imported & foreign)
    assert not loaded_foreign, f"imported: {loaded_foreign}"
    assert "Traceback" not in log.read_text(errors="replace")



def test_the_pi_server_uses_an_agents_general_prompt_file_and_reports_ollama_faults(
        pi_python: Path, tmp_path: Path) -> None:
    """The profile's documented `[agents.general]` with a prompt file relative to the
    profile (not the working directory), a failure mid-stream, and Ollama stopped."""
    profile = tmp_path / "etc"
    (profile / "prompts").mkdir(parents=True)
    prompt = "You are the kitchen assistant. Answer in one sentence."
    (profile / "prompts" / "x.txt").write_text(prompt + "\n", encoding="utf-8")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    with OllamaTestServer(models=[PI_MODEL], default="Fine.") as own:
        config = pi_profile(profile, own.url)
        config.write_text(config.read_text(encoding="utf-8")
                          + '\n[agents.general]\ninstructions_file = "prompts/x.txt"\n',
                          encoding="utf-8")
        own.push("Soup.", Reply(text="alpha beta gamma", error="model runner crashed",
                                after=2))
        log = tmp_path / "serve.log"
        with ArmillaryServer(config, python=str(pi_python), cwd=elsewhere,
                             log_path=log) as server:
            url = server.url
            first = httpx.post(url + "/chat", json={"message": "what's for dinner?"},
                               timeout=10)
            sent = own.chat_requests[-1].json
            broken = httpx.post(url + "/chat", json={"message": "more", "stream": True},
                                timeout=10)
            own.stop()  # Ollama goes away
            down = httpx.post(url + "/chat", json={"message": "hi"}, timeout=10)
            down_stream = httpx.post(url + "/chat", json={"message": "hi", "stream": True},
                                     timeout=10)
            general = {a["name"]: a for a in httpx.get(url + "/agents").json()["agents"]}[
                "general"]

    assert first.status_code == 200, first.text
    assert first.json()["reply"] == "Soup."
    # the prompt file, not the shipped prompt, is what Ollama got as the system message
    assert sent["messages"][0] == {"role": "system", "content": prompt}
    # a failure mid-stream: 200, the text so far, then the error marker line
    assert broken.status_code == 200
    assert broken.text.startswith("alpha beta ")
    assert broken.text.endswith("\n[error: provider_error] ollama: model runner crashed\n")
    for r in (down, down_stream):
        assert r.status_code == 503, r.text
        assert r.json()["code"] == "provider_unavailable"
    # the override set only the prompt: the rest of the chat plugin's general is kept
    assert general["description"] == "General-purpose chat assistant"
    assert general["tools"] == []
    assert (general["task_count"], general["success_count"], general["error_count"]) == (
        4, 1, 3)
    assert general["last_error_code"] == "provider_unavailable"
    assert "Traceback" not in log.read_text(errors="replace")

def findable(python: Path, names: set[str]) -> set[str]:
    """The names among `names` the venv's interpreter can import."""
    code = ("import importlib.util, json, sys; print(json.dumps([n for n in sys.argv[1:] "
            "if importlib.util.find_spec(n) is not None]))")
    out = subprocess.run([str(python), "-c", code, *sorted(names)], check=True,
                         capture_output=True, text=True).stdout
    return set(json.loads(out))


def imported_modules(log: str) -> set[str]:
    """Top-level names of the modules in `-X importtime` output."""
    names = set()
    for line in log.splitlines():
        if line.startswith("import time:") and "|" in line:
            module = line.rsplit("|", 1)[1].strip()
            if module and module != "imported package":
                names.add(module.split(".")[0])
    return names


def test_armillary_plugins_in_the_pi_venv_lists_just_the_three(pi_python: Path,
                                                              tmp_path: Path) -> None:
    config = pi_profile(tmp_path, "http://127.0.0.1:9")
    out = subprocess.run([str(pi_python), "-m", "armillary", "plugins", "--json",
                          "--config", str(config)], check=True, capture_output=True, text=True)
    rows = json.loads(out.stdout)
    assert {r["name"] for r in rows} == PI_PLUGINS
    assert all(r["status"] == "loaded" for r in rows)
