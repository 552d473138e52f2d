"""Log formats (`--log-format text|json`) and the access log: one line per call.

With `json`, every log line is one JSON object (time, level, logger, message,
and for calls: method, code, duration_ms, peer, instance_id), and access lines
are logged at INFO. With `text`, access lines are logged at DEBUG, so they show
only with `--log-level debug`. Request metadata (where tokens travel) is never
logged.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Final, Literal

from sayiir_server.mesh.calls import FinishedCall

LogFormat = Literal["text", "json"]
LOG_FORMATS: Final[tuple[LogFormat, ...]] = ("text", "json")

ACCESS_LOGGER: Final = "sayiir_server.access"
FIELDS_ATTRIBUTE: Final = "fields"
"""LogRecord attribute (set with `extra={"fields": {...}}`) whose entries JSON lines carry as top-level keys."""

TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, FIELDS_ATTRIBUTE, None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def log_formatter(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def configure_logging(level: str, log_format: LogFormat) -> None:
    """Log to stderr at `level` ("info", ...) in `log_format`; like logging.basicConfig, a no-op once configured."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(log_formatter(log_format))
    logging.basicConfig(level=level.upper(), handlers=[handler])


class AccessLog:
    """A call sink writing one line per finished call to the `sayiir_server.access` logger."""

    def __init__(self, log_format: LogFormat) -> None:
        self._logger = logging.getLogger(ACCESS_LOGGER)
        self._level = logging.INFO if log_format == "json" else logging.DEBUG

    @property
    def enabled(self) -> bool:
        """Whether a line would be written at the current log level (text lines are DEBUG)."""
        return self._logger.isEnabledFor(self._level)

    def call_started(self, method: str) -> None:
        pass

    def call_finished(self, call: FinishedCall) -> None:
        if not self._logger.isEnabledFor(self._level):
            return
        fields = access_fields(call)
        shown = " ".join(f"{key}={fields[key]}" for key in ("peer", "instance_id") if key in fields)
        self._logger.log(
            self._level,
            "%s %s %.1f ms %s",
            call.method,
            call.code.name,
            fields["duration_ms"],
            shown,
            extra={FIELDS_ATTRIBUTE: fields},
        )


def access_fields(call: FinishedCall) -> dict[str, Any]:
    """The fields of a call's access line; instance_id only when the request named one."""
    fields: dict[str, Any] = {
        "method": call.method,
        "code": call.code.name,
        "duration_ms": round(call.duration_seconds * 1000, 3),
        "peer": call.peer,
    }
    if call.instance_id:
        fields["instance_id"] = call.instance_id
    return fields
