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
    "_guard": "SAFETY_FINISH CheckedProvider Guard OutputGuard close_stream",
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
        ConversationItem as ConversationItem,
        ConversationPolicy as ConversationPolicy,
        Conversations as Conversations,
    )
    from armillary._deps import KernelDep as KernelDep
    from armillary._disconnects import (
        ClientDisconnected as ClientDisconnected,
        WatchedStreamingResponse as WatchedStreamingResponse,
        cancel_on_disconnect as cancel_on_disconnect,
    )
    from armillary._errors import (
        ArmillaryError as ArmillaryError,
        Conflict as Conflict,
        ErrorResponse as ErrorResponse,
        InvalidRequest as InvalidRequest,
        ModelNotFound as ModelNotFound,
        NotFound as NotFound,
        ProviderError as ProviderError,
        ProviderProtocolError as ProviderProtocolError,
        ProviderTimeout as ProviderTimeout,
        ProviderUnavailable as ProviderUnavailable,
        ServiceUnavailable as ServiceUnavailable,
        UnknownProvider as UnknownProvider,
    )
    from armillary._event_stream import (
        HEARTBEAT as HEARTBEAT,
        EventStreamParser as EventStreamParser,
        SSEMessage as SSEMessage,
        encode_event as encode_event,
    )
    from armillary._events import (
        END_EVENT_TYPES as END_EVENT_TYPES,
        FIREHOSE as FIREHOSE,
        LIFECYCLE_EVENT_TYPES as LIFECYCLE_EVENT_TYPES,
        EventBus as EventBus,
        Subscription as Subscription,
        coalesce as coalesce,
        follow_run as follow_run,
        follow_topic as follow_topic,
        iso as iso,
        to_json as to_json,
    )
    from armillary._guard import (
        SAFETY_FINISH as SAFETY_FINISH,
        CheckedProvider as CheckedProvider,
        Guard as Guard,
        OutputGuard as OutputGuard,
        close_stream as close_stream,
    )
    from armillary._hookspecs import (
        RegisterAgent as RegisterAgent,
        RegisterCommand as RegisterCommand,
        RegisterEventType as RegisterEventType,
        RegisterMiddleware as RegisterMiddleware,
        RegisterProvider as RegisterProvider,
        RegisterRouter as RegisterRouter,
        RegisterSafetyCheck as RegisterSafetyCheck,
        RegisterService as RegisterService,
        RegisterStrategy as RegisterStrategy,
        RegisterTool as RegisterTool,
    )
    from armillary._kernel import Kernel as Kernel
    from armillary._media import (
        EVENT_STREAM as EVENT_STREAM,
        JSON as JSON,
        NDJSON as NDJSON,
        PLAIN_TEXT as PLAIN_TEXT,
        accepts as accepts,
        asks_for as asks_for,
        preferred as preferred,
    )
    from armillary._models import (
        AgentSpec as AgentSpec,
        ChatChunk as ChatChunk,
        ChatRequest as ChatRequest,
        ChatResponse as ChatResponse,
        ErrorInfo as ErrorInfo,
        Event as Event,
        Message as Message,
        ModelInfo as ModelInfo,
        Principal as Principal,
        ProviderHealth as ProviderHealth,
        Role as Role,
        Run as Run,
        RunStatus as RunStatus,
        ToolCall as ToolCall,
        ToolSpec as ToolSpec,
        Usage as Usage,
        Verdict as Verdict,
        acting_as as acting_as,
        current_principal as current_principal,
        new_id as new_id,
        owner_filter as owner_filter,
        visible as visible,
    )
    from armillary._provider_http import (
        HTTPProvider as HTTPProvider,
        NamedInstances as NamedInstances,
        tls_for as tls_for,
        transport_error as transport_error,
    )
    from armillary._providers import Provider as Provider
    from armillary._redact import redact_text as redact_text, redact_url as redact_url
    from armillary._registry import Entry as Entry
    from armillary._runner import Runner as Runner
    from armillary._safety import (
        Action as Action,
        FlaggedVerdict as FlaggedVerdict,
        SafetyBlocked as SafetyBlocked,
        SafetyCheck as SafetyCheck,
        SafetyPipeline as SafetyPipeline,
        Stage as Stage,
        VerdictRecord as VerdictRecord,
    )
    from armillary._store import RunStore as RunStore
    from armillary._strategies import RunContext as RunContext, Strategy as Strategy
    from armillary._tools import (
        Tool as Tool,
        ToolArgumentsError as ToolArgumentsError,
        ToolError as ToolError,
        ToolTimeout as ToolTimeout,
        build_tool as build_tool,
        tool as tool,
    )
    from armillary._transport import (
        EventStreams as EventStreams,
        SSERender as SSERender,
        WebSocketRender as WebSocketRender,
        follow_websocket as follow_websocket,
        render_event as render_event,
    )
