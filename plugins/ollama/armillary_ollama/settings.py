"""The `[plugins.ollama]` section of plugins.toml."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from armillary import NamedInstances


class OllamaInstance(BaseModel):
    """One more Ollama host (`[plugins.ollama.instances.<name>]`); unset fields take the
    value from the main section, except `headers` when `base_url` names another host."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = None
    model: str | None = None
    connect_timeout: float | None = Field(default=None, gt=0)
    chunk_timeout: float | None = Field(default=None, gt=0)
    request_timeout: float | None = Field(default=None, gt=0)
    keep_alive: str | int | None = None
    options: dict[str, Any] | None = None
    headers: dict[str, str] | None = None


class OllamaSettings(NamedInstances):
    """Settings of the main instance, plus any number of named extra instances.

    ```toml
    [plugins.ollama]
    base_url = "http://127.0.0.1:11434"
    model = "llama3.2"
    connect_timeout = 5        # seconds to open the TCP connection
    chunk_timeout = 120        # longest silence while streaming (includes model load)
    request_timeout = 600      # a whole non-streamed reply
    keep_alive = "5m"
    options = { num_ctx = 4096 }

    [plugins.ollama.instances.ollama-gpu]
    base_url = "http://gpu-box:11434"
    model = "llama3.1:70b"
    ```
    """

    model_config = ConfigDict(extra="forbid")

    #: provider name of the main instance
    name: str = "ollama"
    base_url: str = "http://127.0.0.1:11434"
    #: the model used when a request names none
    model: str = "llama3.2"
    connect_timeout: float = Field(default=5.0, gt=0)
    chunk_timeout: float = Field(default=120.0, gt=0)
    request_timeout: float = Field(default=600.0, gt=0)
    #: how long Ollama keeps the model loaded after a request ("5m", "1h", 0, -1)
    keep_alive: str | int | None = None
    #: default Ollama `options` for every request (num_ctx, top_k, …)
    options: dict[str, Any] = Field(default_factory=dict)
    #: extra HTTP headers (e.g. a proxy's Authorization); not inherited by an instance
    #: on another host
    headers: dict[str, str] = Field(default_factory=dict)
    #: extra instances by provider name
    instances: dict[str, OllamaInstance] = Field(default_factory=dict)
    #: which instance is the default provider (default: `name`)
    default: str | None = None
    #: serve the seed routes POST /ollama/chat and GET /ollama/models
    routes: bool = True

    def resolved(self) -> dict[str, dict[str, Any]]:
        """Each instance's full settings, by provider name."""
        return self.per_instance(set(OllamaInstance.model_fields), private={"headers"})
