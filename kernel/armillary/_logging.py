"""Structured logs: one JSON object per line, with the request and run they belong to,
secrets masked. Opt-in (`armillary serve --log-format json`, or
`ARMILLARY_LOG_FORMAT=json`); the text format stays the default and never imports this.

Each line has `ts` (ISO 8601 UTC), `level`, `logger` and `message`, then:

- `request_id` — the record's `request_id` attribute, which the `metrics` plugin's
  request-id middleware sets on every record logged while a request is served (it
  installs a log-record factory; the kernel does not know the plugin);
- `run_id` — the record's `run_id` attribute (`log.info(..., extra={"run_id": ...})`),
  else `RUN_ID` (a context variable a runner sets around a strategy), else the run whose
  `LocalRunner` task is logging (`armillary-run-<id>`);
- uvicorn's access lines as fields: `client`, `method`, `path`, `status`, `http_version`;
- anything passed in `extra=`, and `exception` (the formatted traceback).

Every string goes through `redact_log_text`: URLs (`redact_text`), secret-looking query
parameters in bare paths (`/v1/stream?api_key=…`), `Bearer` tokens and `api_key=…`,
`"password": "…"`-style pairs, and `sk-…` keys.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from armillary._events import to_json
from armillary._redact import MASK, SECRET_PARAMS, SECRET_SUFFIXES, redact_text
from armillary._run_id import RUN_ID

#: the name `LocalRunner` gives a run's task
RUN_TASK_PREFIX = "armillary-run-"

#: LogRecord attributes that are not `extra=` fields (uvicorn's `color_message` is its
#: message again, with terminal colours)
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime",
                                                           "taskName", "color_message"}
#: `extra=` keys that are not secrets although a query parameter of that name would be
#: (an error `code`, a `session` id)
_PLAIN_KEYS = frozenset({"code", "session", "sig", "signature", "auth"})
_QUERY_PAIR = re.compile(r"([?&])([^=&\s#\"'<>]+)=([^&\s#\"'<>]*)")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{4,}")
_KEY_VALUE = re.compile(
    r"(?i)\b(x-api-key|api[_-]?key|apikey|authorization|password|passwd|secret|"
    r"client_secret|access_token|refresh_token|token)(\"?'?\s*[:=]\s*\"?'?)"
    r"(?!\*\*\*)([^\s\"',;&}\]]+)")
_OPENAI_KEY = re.compile(r"\bsk-[A-Za-z0-9_\-]{12,}")


def _secret_param(name: str) -> bool:
    key = name.strip().lower().replace("-", "_")
    return key in SECRET_PARAMS or key.endswith(SECRET_SUFFIXES)


def _mask_pair(match: re.Match[str]) -> str:
    sep, name, value = match.groups()
    return f"{sep}{name}={MASK}" if value and _secret_param(name) else match.group(0)


def redact_log_text(text: str) -> str:
    """`text` with the credentials a log line may carry masked (see the module doc)."""
    text = redact_text(text)
    if "=" in text:
        text = _QUERY_PAIR.sub(_mask_pair, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    text = _KEY_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    return _OPENAI_KEY.sub(f"sk-{MASK}", text)


def _secret_key(key: Any) -> bool:
    return isinstance(key, str) and key not in _PLAIN_KEYS and _secret_param(key)


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact_log_text(value)
    if isinstance(value, dict):
        return {k: (MASK if _secret_key(k) else _redacted(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact_log_text(str(value))


def current_run_id() -> str | None:
    """The run the calling code works for: `RUN_ID`, else the run task's name."""
    run_id = RUN_ID.get()
    if run_id is not None:
        return run_id
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running loop (a thread)
        return None
    name = task.get_name() if task is not None else ""
    return name[len(RUN_TASK_PREFIX):] if name.startswith(RUN_TASK_PREFIX) else None


class JSONFormatter(logging.Formatter):
    """One JSON object per record, secrets masked (see the module doc)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat()
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            client, method, path, version, status = args
            out["message"] = redact_log_text(record.getMessage())
            out.update(client=str(client), method=str(method),
                       path=redact_log_text(str(path)), status=status,
                       http_version=str(version))
        else:
            out["message"] = redact_log_text(record.getMessage())
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key not in out:
                out[key] = MASK if _secret_key(key) else _redacted(value)
        if "run_id" not in out:
            run_id = current_run_id()
            if run_id is not None:
                out["run_id"] = run_id
        if record.exc_info:
            out["exception"] = redact_log_text(self.formatException(record.exc_info))
        elif record.exc_text:
            out["exception"] = redact_log_text(record.exc_text)
        if record.stack_info:
            out["stack"] = redact_log_text(self.formatStack(record.stack_info))
        return to_json(out)


def use_json_logs(level: str) -> None:
    """Send every record (the root logger's, and uvicorn's, which propagate to it when
    uvicorn is given no `log_config`) to stderr as JSON lines at `level`."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter())
    root.addHandler(handler)
    numeric = logging.getLevelName(level.upper())
    root.setLevel(numeric if isinstance(numeric, int) else logging.INFO)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    if root.level > logging.DEBUG:
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).setLevel(logging.WARNING)
