"""What plugin authors test with.

- `fresh_plugin_manager()` and `registered(pm, plugin)`: a plugin registered for a block.
- `make_kernel(...)` / `make_app(...)`: an app with just the plugins you pass (entry-point
  plugins are not loaded unless asked), for use with `httpx.ASGITransport` or `serve`.
- `ScriptedProvider`: plays back text, token streams and tool calls, with delays and faults;
  `ProviderPlugin(*providers)` and `ToolsPlugin(*tools)` register them.
- `serve_app(app)`: the app under uvicorn in this event loop, on a free loopback port.
- `ArmillaryServer`: a real `armillary serve` subprocess on a free loopback port.
- `LoopbackHTTPServer` (`armillary.testing.loopback`): a small HTTP/1.1 server on a free
  loopback port, in its own thread, to fake a provider's model server over real sockets
  (whole and chunked replies, hang-up detection, per-request and per-stream records).
- `armillary.testing.contract`: the provider contract suite.
"""

from __future__ import annotations

from armillary.testing.harness import (
    fresh_plugin_manager,
    make_app,
    make_kernel,
    registered,
)
from armillary.testing.loopback import (
    LoopbackHTTPServer,
    RecordedRequest,
    Responder,
    StreamRecord,
)
from armillary.testing.plugins import ProviderPlugin, ToolsPlugin
from armillary.testing.scripted import ScriptedProvider, Turn
from armillary.testing.server import ArmillaryServer, free_port, serve_app


def __getattr__(name: str) -> object:
    # the contract suite needs pytest; import it only for those who ask for it
    if name in ("ContractTarget", "ProviderContract", "Scenario"):
        from armillary.testing import contract

        return getattr(contract, name)
    raise AttributeError(f"module 'armillary.testing' has no attribute {name!r}")


__all__ = [
    "ArmillaryServer", "ContractTarget", "LoopbackHTTPServer", "ProviderContract",
    "ProviderPlugin", "RecordedRequest", "Responder", "Scenario", "ScriptedProvider",
    "StreamRecord", "ToolsPlugin", "Turn", "free_port", "fresh_plugin_manager", "make_app",
    "make_kernel", "registered", "serve_app",
]
