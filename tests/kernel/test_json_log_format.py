"""The kernel's JSON log format (`armillary serve --log-format json`): one JSON object per
record, the run id from the run's context, the request id the metrics middleware sets,
secrets masked wherever a log line may carry them."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from armillary._logging import RUN_ID, JSONFormatter, redact_log_text


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JSONFormatter())
    logger = logging.getLogger("test.jsonlogs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, out
    logger.removeHandler(handler)


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.mark.parametrize(("text", "secret"), [
    ("GET /v1/stream/tasks/t1?api_key=k3y-value&x=1 HTTP/1.1", "k3y-value"),
    ("calling http://user:hunter2pw@gpu-box:11434/api/chat", "hunter2pw"),
    ("upstream said: https://api.example/v1?access_token=tok-abc123", "tok-abc123"),
    ("Authorization: Bearer eyJhbGciOi.payload.sig", "eyJhbGciOi"),
    ('settings {"api_key": "abcd-secret-1234", "model": "x"}', "abcd-secret-1234"),
    ("password=letmein99 and X-API-Key: key-xyz-789", "letmein99"),
    ("X-API-Key: key-xyz-789", "key-xyz-789"),
    ("the key sk-proj-abcdefghijklmnop1234 leaked", "abcdefghijklmnop1234"),
])
def test_secrets_are_masked(text: str, secret: str) -> None:
    masked = redact_log_text(text)
    assert secret not in masked
    assert "***" in masked


def test_ordinary_text_is_left_alone() -> None:
    text = "run run_1 completed in 3 steps (max_tokens=256, prompt_tokens: 12) GET /v1/tasks"
    assert redact_log_text(text) == text


def test_a_record_is_one_json_object_with_extras_exceptions_and_masked_fields(
        capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = capture
    logger.info("hello %s", "world", extra={"agent": "poet", "api_key": "abc",
                                            "code": "provider_timeout",
                                            "url": "http://u:pw-123@h/x"})
    try:
        raise ValueError("boom at http://u:pw-456@h/")
    except ValueError:
        logger.exception("failed")
    first, second = lines(out)
    assert first["message"] == "hello world" and first["level"] == "info"
    assert first["logger"] == "test.jsonlogs" and str(first["ts"]).endswith("Z")
    assert first["agent"] == "poet" and first["api_key"] == "***"
    assert first["code"] == "provider_timeout"
    assert "pw-123" not in out.getvalue() and "pw-456" not in out.getvalue()
    assert second["level"] == "error" and "ValueError" in str(second["exception"])
    assert "run_id" not in first and "request_id" not in first


async def test_the_run_id_comes_from_the_run_context_or_the_run_task(
        capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = capture

    async def in_run() -> None:
        logger.info("inside the strategy")

    await asyncio.create_task(in_run(), name="armillary-run-run_abc")
    token = RUN_ID.set("run_ctx")
    try:
        logger.info("with the context variable")
    finally:
        RUN_ID.reset(token)
    logger.info("given explicitly", extra={"run_id": "run_explicit"})
    logger.info("outside any run")
    assert [r.get("run_id") for r in lines(out)] == ["run_abc", "run_ctx", "run_explicit",
                                                     None]


def test_the_request_id_set_by_the_metrics_middleware_is_written(
        capture: tuple[logging.Logger, io.StringIO]) -> None:
    from armillary_metrics.middleware import REQUEST_ID, install_log_record_factory

    logger, out = capture
    install_log_record_factory()
    token = REQUEST_ID.set("req-42")
    try:
        logger.warning("during a request")
    finally:
        REQUEST_ID.reset(token)
    logger.warning("after it")
    during, after = lines(out)
    assert during["request_id"] == "req-42"
    assert "request_id" not in after
