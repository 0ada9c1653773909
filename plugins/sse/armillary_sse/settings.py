"""`[plugins.sse]`: the settings of every SSE stream."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SSESettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: one write per stream at most this often (0.2 s = the Pori seed's 5 messages/s)
    min_interval_seconds: float = Field(default=0.2, ge=0)
    #: a heartbeat comment after this many idle seconds
    heartbeat_seconds: float = Field(default=15.0, gt=0)
    #: the reconnect delay suggested to clients (`retry:`)
    retry_ms: int = Field(default=3000, ge=0)
    #: rendered events kept for reuse across streams
    render_cache_size: int = Field(default=4096, ge=0)
