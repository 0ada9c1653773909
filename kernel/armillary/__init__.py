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
    "_safety": "Action FlaggedVerdict SafetyBlocked SafetyCheck SafetyPipeline Stage "
               "VerdictRecord",
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
    from armillary._cli_run import ProgressPrinter as ProgressPrinter
    from armillary._config import Config as Config
    from armillary._conversations import (
        Conversation as Conversation,
    )
    from armillary._conversations import (
        ConversationItem as ConversationItem,
    )
    from armillary._conversations import (
        ConversationPolicy as ConversationPolicy,
    )
    from armillary._conversations import (
        Conversations as Conversations,
    )
    from armillary._deps import KernelDep as KernelDep
    from armillary._disconnects import (
        ClientDisconnected as ClientDisconnected,
    )
    from armillary._disconnects import (
        WatchedStreamingResponse as WatchedStreamingResponse,
    )
    from armillary._disconnects import (
        cancel_on_disconnect as cancel_on_disconnect,
    )
    from armillary._errors import (
        ArmillaryError as ArmillaryError,
    )
    from armillary._errors import (
        Conflict as Conflict,
    )
    from armillary._errors import (
        ErrorResponse as ErrorResponse,
    )
    from armillary._errors import (
        InvalidRequest as InvalidRequest,
    )
    from armillary._errors import (
        ModelNotFound as ModelNotFound,
    )
    from armillary._errors import (
        NotFound as NotFound,
    )
    from armillary._errors import (
        ProviderError as ProviderError,
    )
    from armillary._errors import (
        ProviderProtocolError as ProviderProtocolError,
    )
    from armillary._errors import (
        ProviderTimeout as ProviderTimeout,
    )
    from armillary._errors import (
        ProviderUnavailable as ProviderUnavailable,
    )
    from armillary._errors import (
        ServiceUnavailable as ServiceUnavailable,
    )
    from armillary._errors import (
        UnknownProvider as UnknownProvider,
    )
    from armillary._event_stream import (
        HEARTBEAT as HEARTBEAT,
    )
    from armillary._event_stream import (
        EventStreamParser as EventStreamParser,
    )
    from armillary._event_stream import (
        SSEMessage as SSEMessage,
    )
    from armillary._event_stream import (
        encode_event as encode_event,
    )
    from armillary._events import (
        END_EVENT_TYPES as END_EVENT_TYPES,
    )
    from armillary._events import (
        FIREHOSE as FIREHOSE,
    )
    from armillary._events import (
        LIFECYCLE_EVENT_TYPES as LIFECYCLE_EVENT_TYPES,
    )
    from armillary._events import (
        EventBus as EventBus,
    )
    from armillary._events import (
        Subscription as Subscription,
    )
    from armillary._events import (
        coalesce as coalesce,
    )
    from armillary._events import (
        follow_run as follow_run,
    )
    from armillary._events import (
        follow_topic as follow_topic,
    )
    from armillary._events import (
        iso as iso,
    )
    from armillary._events import (
        to_json as to_json,
    )
    from armillary._guard import (
        CheckedProvider as CheckedProvider,
    )
    from armillary._guard import (
        Guard as Guard,
    )
    from armillary._guard import (
        OutputGuard as OutputGuard,
    )
    from armillary._guard import (
        close_stream as close_stream,
    )
    from armillary._hookspecs import (
        RegisterAgent as RegisterAgent,
    )
    from armillary._hookspecs import (
        RegisterCommand as RegisterCommand,
    )
    from armillary._hookspecs import (
        RegisterEventType as RegisterEventType,
    )
    from armillary._hookspecs import (
        RegisterMiddleware as RegisterMiddleware,
    )
    from armillary._hookspecs import (
        RegisterProvider as RegisterProvider,
    )
    from armillary._hookspecs import (
        RegisterRouter as RegisterRouter,
    )
    from armillary._hookspecs import (
        RegisterSafetyCheck as RegisterSafetyCheck,
    )
    from armillary._hookspecs import (
        RegisterService as RegisterService,
    )
    from armillary._hookspecs import (
        RegisterStrategy as RegisterStrategy,
    )
    from armillary._hookspecs import (
        RegisterTool as RegisterTool,
    )
    from armillary._kernel import Kernel as Kernel
    from armillary._media import (
        EVENT_STREAM as EVENT_STREAM,
    )
    from armillary._media import (
        JSON as JSON,
    )
    from armillary._media import (
        NDJSON as NDJSON,
    )
    from armillary._media import (
        PLAIN_TEXT as PLAIN_TEXT,
    )
    from armillary._media import (
        accepts as accepts,
    )
    from armillary._media import (
        asks_for as asks_for,
    )
    from armillary._media import (
        preferred as preferred,
    )
    from armillary._models import (
        AgentSpec as AgentSpec,
    )
    from armillary._models import (
        ChatChunk as ChatChunk,
    )
    from armillary._models import (
        ChatRequest as ChatRequest,
    )
    from armillary._models import (
        ChatResponse as ChatResponse,
    )
    from armillary._models import (
        ErrorInfo as ErrorInfo,
    )
    from armillary._models import (
        Event as Event,
    )
    from armillary._models import (
        Message as Message,
    )
    from armillary._models import (
        ModelInfo as ModelInfo,
    )
    from armillary._models import (
        Principal as Principal,
    )
    from armillary._models import (
        ProviderHealth as ProviderHealth,
    )
    from armillary._models import (
        Role as Role,
    )
    from armillary._models import (
        Run as Run,
    )
    from armillary._models import (
        RunStatus as RunStatus,
    )
    from armillary._models import (
        ToolCall as ToolCall,
    )
    from armillary._models import (
        ToolSpec as ToolSpec,
    )
    from armillary._models import (
        Usage as Usage,
    )
    from armillary._models import (
        Verdict as Verdict,
    )
    from armillary._models import (
        acting_as as acting_as,
    )
    from armillary._models import (
        current_principal as current_principal,
    )
    from armillary._models import (
        new_id as new_id,
    )
    from armillary._models import (
        owner_filter as owner_filter,
    )
    from armillary._models import (
        visible as visible,
    )
    from armillary._provider_http import (
        HTTPProvider as HTTPProvider,
    )
    from armillary._provider_http import (
        NamedInstances as NamedInstances,
    )
    from armillary._provider_http import (
        tls_for as tls_for,
    )
    from armillary._provider_http import (
        transport_error as transport_error,
    )
    from armillary._providers import Provider as Provider
    from armillary._redact import redact_text as redact_text
    from armillary._redact import redact_url as redact_url
    from armillary._registry import Entry as Entry
    from armillary._runner import Runner as Runner
    from armillary._safety import (
        Action as Action,
    )
    from armillary._safety import (
        FlaggedVerdict as FlaggedVerdict,
    )
    from armillary._safety import (
        SafetyBlocked as SafetyBlocked,
    )
    from armillary._safety import (
        SafetyCheck as SafetyCheck,
    )
    from armillary._safety import (
        SafetyPipeline as SafetyPipeline,
    )
    from armillary._safety import (
        Stage as Stage,
    )
    from armillary._safety import (
        VerdictRecord as VerdictRecord,
    )
    from armillary._store import RunStore as RunStore
    from armillary._strategies import RunContext as RunContext
    from armillary._strategies import Strategy as Strategy
    from armillary._tools import (
        Tool as Tool,
    )
    from armillary._tools import (
        ToolArgumentsError as ToolArgumentsError,
    )
    from armillary._tools import (
        ToolError as ToolError,
    )
    from armillary._tools import (
        ToolTimeout as ToolTimeout,
    )
    from armillary._tools import (
        build_tool as build_tool,
    )
    from armillary._tools import (
        tool as tool,
    )
    from armillary._transport import (
        EventStreams as EventStreams,
    )
    from armillary._transport import (
        SSERender as SSERender,
    )
    from armillary._transport import (
        WebSocketRender as WebSocketRender,
    )
    from armillary._transport import (
        follow_websocket as follow_websocket,
    )
    from armillary._transport import (
        render_event as render_event,
    )
