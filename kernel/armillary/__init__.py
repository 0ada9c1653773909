"""Armillary: a plugin-based microkernel for LLM agent servers.

Plugin authors need only this module's names::

    from armillary import hookimpl, tool
"""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

#: mark a plugin's hook implementations: `@hookimpl def register_tools(register): ...`
hookimpl = pluggy.HookimplMarker("armillary")

from armillary.errors import (  # noqa: E402
    ArmillaryError,
    ModelNotFound,
    ProviderError,
    ProviderProtocolError,
    ProviderTimeout,
    ProviderUnavailable,
)
from armillary.models import (  # noqa: E402
    AgentSpec,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Event,
    Message,
    ModelInfo,
    ProviderHealth,
    Run,
    RunStatus,
    ToolCall,
    ToolSpec,
    Usage,
    Verdict,
)
from armillary.providers import Provider  # noqa: E402
from armillary.redact import redact_text, redact_url  # noqa: E402
from armillary.safety import SafetyCheck  # noqa: E402
from armillary.strategies import RunContext, Strategy  # noqa: E402
from armillary.tools import Tool, tool  # noqa: E402

__all__ = [
    "AgentSpec", "ArmillaryError", "ChatChunk", "ChatRequest", "ChatResponse", "Event",
    "Message", "ModelInfo", "ModelNotFound", "Provider", "ProviderError", "ProviderHealth",
    "ProviderProtocolError", "ProviderTimeout", "ProviderUnavailable", "Run", "RunContext",
    "RunStatus", "SafetyCheck", "Strategy", "Tool", "ToolCall", "ToolSpec", "Usage", "Verdict",
    "__version__", "hookimpl", "redact_text", "redact_url", "tool",
]
