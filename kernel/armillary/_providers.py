"""The provider interface every LLM backend implements.

A provider is an object registered through `register_providers`. The kernel and the
strategies only ever see this interface; errors are raised as the `ProviderError`
family from `armillary._errors` so every route reports the same codes.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator

from armillary._models import ChatChunk, ChatRequest, ChatResponse, ModelInfo, ProviderHealth


class Provider(abc.ABC):
    """Base class for providers.

    Contract:
    - `chat` returns the whole reply; `stream` yields `ChatChunk`s, the last with `done=True`.
    - Failures before the first chunk raise a `ProviderError` subclass. A failure after the
      stream started yields one chunk with `error` set and `done=True`, then ends.
    - Closing the iterator returned by `stream` (`aclose()`, or the consumer being
      cancelled) closes the upstream connection at once.
    - `health` never raises: it reports `reachable=False` with a reason.
    """

    #: the registered instance name (set by the plugin; e.g. "ollama", "ollama-gpu")
    name: str = ""
    #: the model used when a request names none
    default_model: str = ""

    @abc.abstractmethod
    async def chat(self, request: ChatRequest) -> ChatResponse: ...

    @abc.abstractmethod
    def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]: ...

    @abc.abstractmethod
    async def models(self) -> list[ModelInfo]: ...

    @abc.abstractmethod
    async def health(self) -> ProviderHealth: ...

    async def aclose(self) -> None:  # noqa: B027 - optional hook, default no-op
        """Release connections. Called once at shutdown."""
