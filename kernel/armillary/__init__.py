"""Armillary: a plugin-based microkernel for LLM agent servers.

This module is the public API: plugins (ours, contrib's and third parties') import only
from `armillary` and `armillary.testing`; every other module is internal and may change.
A test keeps plugins to that. Names load on first use, so `import armillary` is cheap
(a provider plugin's `HTTPProvider` brings httpx; a tool pack never does)::

    from armillary import hookimpl, tool, Strategy, RunContext, ChatRequest, Message
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import pluggy

__version__ = "0.1.0"

#: mark a plugin's hook implementations: `@hookimpl def register_tools(register): ...`
hookimpl = pluggy.HookimplMarker("armillary")

#: public name → the internal module that defines it
_NAMES: dict[str, str] = {}
for _module, _names in {
    "_conversations": "Conversation ConversationItem ConversationPolicy Conversations",
    "_cli_run": "ProgressPrinter",
    "_config": "Config",
    "_deps": "KernelDep",
    "_disconnects": "ClientDisconnected WatchedStreamingResponse cancel_on_disconnect",
    "_errors": "ArmillaryError Conflict ErrorResponse InvalidRequest ModelNotFound NotFound "
              "ProviderError ProviderProtocolError ProviderTimeout ProviderUnavailable "
              "ServiceUnavailable UnknownProvider",
    "_event_stream": "HEARTBEAT EventStreamParser SSEMessage encode_event",
    "_events": "END_EVENT_TYPES FIREHOSE LIFECYCLE_EVENT_TYPES EventBus Subscription coalesce "
              "follow_run follow_topic iso to_json",
    "_guard": "CheckedProvider Guard OutputGuard close_stream",
    "_hookspecs": "RegisterAgent RegisterCommand RegisterEventType RegisterMiddleware "
                 "RegisterProvider RegisterRouter RegisterSafetyCheck RegisterService "
                 "RegisterStrategy RegisterTool",
    "_kernel": "Kernel",
    "_media": "EVENT_STREAM JSON NDJSON PLAIN_TEXT accepts asks_for preferred",
    "_models": "AgentSpec ChatChunk ChatRequest ChatResponse ErrorInfo Event Message ModelInfo "
              "Principal ProviderHealth Role Run RunStatus ToolCall ToolSpec Usage Verdict "
              "acting_as current_principal new_id owner_filter visible",
    "_provider_http": "HTTPProvider NamedInstances tls_for transport_error",
    "_providers": "Provider",
    "_redact": "redact_text redact_url",
    "_registry": "Entry",
    "_runner": "Runner",
    "_safety": "SafetyBlocked SafetyCheck SafetyPipeline Stage",
    "_store": "RunStore",
    "_strategies": "RunContext Strategy",
    "_tools": "Tool ToolArgumentsError ToolError ToolTimeout build_tool tool",
    "_transport": "EventStreams SSERender WebSocketRender follow_websocket render_event",
}.items():
    _NAMES.update(dict.fromkeys(_names.split(), f"armillary.{_module}"))


def __getattr__(name: str) -> Any:
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'armillary' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_NAMES])


__all__ = sorted(["__version__", "hookimpl", *_NAMES])

if TYPE_CHECKING:  # what type checkers see; at run time the names load on first use
    from armillary._cli_run import ProgressPrinter
    from armillary._config import Config
    from armillary._conversations import (
        Conversation,
        ConversationItem,
        ConversationPolicy,
        Conversations,
    )
    from armillary._deps import KernelDep
    from armillary._disconnects import (
        ClientDisconnected,
        WatchedStreamingResponse,
        cancel_on_disconnect,
    )
    from armillary._errors import (
        ArmillaryError,
        Conflict,
        ErrorResponse,
        InvalidRequest,
        ModelNotFound,
        NotFound,
        ProviderError,
        ProviderProtocolError,
        ProviderTimeout,
        ProviderUnavailable,
        ServiceUnavailable,
        UnknownProvider,
    )
    from armillary._event_stream import HEARTBEAT, EventStreamParser, SSEMessage, encode_event
    from armillary._events import (
        END_EVENT_TYPES,
        FIREHOSE,
        LIFECYCLE_EVENT_TYPES,
        EventBus,
        Subscription,
        coalesce,
        follow_run,
        follow_topic,
        iso,
        to_json,
    )
    from armillary._guard import CheckedProvider, Guard, OutputGuard, close_stream
    from armillary._hookspecs import (
        RegisterAgent,
        RegisterCommand,
        RegisterEventType,
        RegisterMiddleware,
        RegisterProvider,
        RegisterRouter,
        RegisterSafetyCheck,
        RegisterService,
        RegisterStrategy,
        RegisterTool,
    )
    from armillary._kernel import Kernel
    from armillary._media import (
        EVENT_STREAM,
        JSON,
        NDJSON,
        PLAIN_TEXT,
        accepts,
        asks_for,
        preferred,
    )
    from armillary._models import (
        AgentSpec,
        ChatChunk,
        ChatRequest,
        ChatResponse,
        ErrorInfo,
        Event,
        Message,
        ModelInfo,
        Principal,
        ProviderHealth,
        Role,
        Run,
        RunStatus,
        ToolCall,
        ToolSpec,
        Usage,
        Verdict,
        acting_as,
        current_principal,
        new_id,
        owner_filter,
        visible,
    )
    from armillary._provider_http import HTTPProvider, NamedInstances, tls_for, transport_error
    from armillary._providers import Provider
    from armillary._redact import redact_text, redact_url
    from armillary._registry import Entry
    from armillary._runner import Runner
    from armillary._safety import SafetyBlocked, SafetyCheck, SafetyPipeline, Stage
    from armillary._store import RunStore
    from armillary._strategies import RunContext, Strategy
    from armillary._tools import Tool, ToolArgumentsError, ToolError, ToolTimeout, build_tool, tool
    from armillary._transport import (
        EventStreams,
        SSERender,
        WebSocketRender,
        follow_websocket,
        render_event,
    )
