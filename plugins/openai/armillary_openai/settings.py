"""The `[plugins.openai]` section of plugins.toml."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from armillary import NamedInstances


class OpenAIInstance(BaseModel):
    """One more OpenAI-compatible server (`[plugins.openai.instances.<name>]`); unset
    fields take the value from the main section, except the credentials (`api_key`,
    `organization`, `headers`) when `base_url` names another server."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = None
    api_key: SecretStr | None = None
    model: str | None = None
    organization: str | None = None
    connect_timeout: float | None = Field(default=None, gt=0)
    chunk_timeout: float | None = Field(default=None, gt=0)
    request_timeout: float | None = Field(default=None, gt=0)
    include_usage: bool | None = None
    max_tokens_field: str | None = None
    options: dict[str, Any] | None = None
    headers: dict[str, str] | None = None


class OpenAISettings(NamedInstances):
    """Settings of the main instance, plus any number of named extra instances.

    ```toml
    [plugins.openai]
    base_url = "https://api.openai.com/v1"
    api_key = { "$env" = "OPENAI_API_KEY" }
    model = "gpt-4o-mini"

    [plugins.openai.instances.vllm]
    base_url = "http://gpu-box:8000/v1"
    api_key = "EMPTY"
    model = "Qwen/Qwen2.5-7B-Instruct"
    ```
    """

    model_config = ConfigDict(extra="forbid")

    #: provider name of the main instance
    name: str = "openai"
    #: the API root, ending in /v1 for most servers
    base_url: str = "https://api.openai.com/v1"
    #: sent as `Authorization: Bearer …`; use `{ "$env" = "OPENAI_API_KEY" }`
    api_key: SecretStr | None = None
    #: the model used when a request names none
    model: str = "gpt-4o-mini"
    organization: str | None = None
    connect_timeout: float = Field(default=5.0, gt=0)
    #: longest silence while streaming, first token included
    chunk_timeout: float = Field(default=120.0, gt=0)
    #: a whole non-streamed reply
    request_timeout: float = Field(default=600.0, gt=0)
    #: ask for token usage on the last stream chunk (`stream_options.include_usage`)
    include_usage: bool = True
    #: the body field for ChatRequest.max_tokens (newer OpenAI models want
    #: "max_completion_tokens"; most compatible servers take "max_tokens")
    max_tokens_field: str = "max_tokens"
    #: default body fields for every request (top_p, tool_choice, …)
    options: dict[str, Any] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    instances: dict[str, OpenAIInstance] = Field(default_factory=dict)
    #: which instance is the default provider (default: `name`)
    default: str | None = None

    def resolved(self) -> dict[str, dict[str, Any]]:
        """Each instance's full settings (api_key unwrapped), by provider name."""
        out = self.per_instance(set(OpenAIInstance.model_fields),
                                private={"api_key", "organization", "headers"})
        for values in out.values():
            key = values.pop("api_key")
            values["api_key"] = key.get_secret_value() if key is not None else None
        return out
