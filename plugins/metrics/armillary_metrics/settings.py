"""`[plugins.metrics]`: what the metrics plugin serves and measures."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class MetricsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: where the Prometheus exposition is served
    path: str = "/metrics"
    #: measure HTTP requests, SSE streams and WebSockets in a middleware (off: only the
    #: firehose metrics, and no request ids)
    http: bool = True
    #: the request id header: taken from the request when well formed, else generated,
    #: and sent back on every answer (and written on every JSON log line)
    request_id_header: str = Field(default="X-Request-ID", min_length=1)
    #: use the caller's request id (a proxy's) when it is well formed; false: always new
    trust_request_id: bool = True
    #: one INFO log line per finished run (run id, agent, strategy, status, duration)
    log_runs: bool = True
    #: HTTP duration buckets, seconds (None: Prometheus' defaults, 5 ms to 10 s)
    http_buckets: list[float] | None = None
    #: distinct values kept per free-form label (model, tool, check, agent); the rest are
    #: counted under "(other)", so a misbehaving client cannot grow the exposition
    max_label_values: int = Field(default=100, ge=1)

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value

    @field_validator("http_buckets")
    @classmethod
    def _increasing(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (not value or sorted(set(value)) != value):
            raise ValueError("must be a non-empty list of increasing numbers")
        return value
