"""`NamedInstances`: the settings mixin for a provider plugin that can register several
named instances (two Ollama hosts, say), one of them the default."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, model_validator

#: settings never inherited by an instance on another host (see `per_instance`)
PRIVATE_FIELDS = frozenset({"api_key", "headers", "organization"})


class NamedInstances(BaseModel):
    """Settings mixin: a main instance called `name`, more under `instances.<name>`
    (unset fields fall back to the main section, credentials only on the same host), and
    `default` naming the default one.

    Subclasses declare `instances: dict[str, TheirInstanceModel]`."""

    name: str
    instances: dict[str, Any] = {}
    default: str | None = None

    @model_validator(mode="after")
    def _check_instance_names(self) -> NamedInstances:
        if self.name in self.instances:
            raise ValueError(f"instances: {self.name!r} is already the main instance's name")
        if self.default is not None and self.default not in self.instance_names():
            raise ValueError(f"default: no instance named {self.default!r} "
                             f"(have: {', '.join(self.instance_names())})")
        return self

    def instance_names(self) -> list[str]:
        return [self.name, *self.instances]

    def default_name(self) -> str:
        return self.default or self.name

    def per_instance(self, fields: set[str], *,
                     private: frozenset[str] | set[str] = PRIVATE_FIELDS,
                     ) -> dict[str, dict[str, Any]]:
        """Each instance's values for `fields`, by provider name: the main section's,
        overridden by what the instance sets.

        `private` fields (credentials: an API key, headers that may carry a token) are
        inherited only by an instance on the main section's `base_url`: a key written for
        one host is never sent to another. An instance on another host that needs one
        sets its own."""
        main = {k: getattr(self, k) for k in fields}
        main_url = _same_url(getattr(self, "base_url", None))
        out = {self.name: main}
        for name, inst in self.instances.items():
            own = {k: getattr(inst, k) for k in fields if getattr(inst, k, None) is not None}
            inherited = main
            if "base_url" in own and _same_url(own["base_url"]) != main_url:
                inherited = {k: (None if k in private else v) for k, v in main.items()}
            out[name] = {**inherited, **own}
        return out


def _same_url(url: str | None) -> str | None:
    return url.rstrip("/").lower() if isinstance(url, str) else url
