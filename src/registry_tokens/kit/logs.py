"""Logs as JSON lines (``REGISTRY_TOKENS_LOG_FORMAT=json``), for log stores that search
fields: one object per line, its time in UTC with milliseconds.

A record's ``fields`` (``logger.info("request", extra={"fields": {...}})``) become
top-level keys; the request log (``api.observability``) writes its fields so.
"""

import json
import logging
from datetime import UTC, datetime
from typing import Any

from registry_tokens.kit.timestamps import format_timestamp

FIELDS = "fields"
# The logger of the one line per request.
REQUEST_LOGGER = "registry_tokens.requests"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": format_timestamp(datetime.fromtimestamp(record.created, UTC)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, FIELDS, None)
        if isinstance(fields, dict):
            document.update(fields)
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str, separators=(",", ":"))


def json_logging_config(level: str) -> dict[str, Any]:
    """uvicorn's ``log_config`` in JSON: its own logs, ours and the request lines on
    standard error, as JSON; uvicorn's access log off (the request lines replace it)."""
    level = level.upper()
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"json": handler},
        "loggers": {
            "uvicorn": {"handlers": ["json"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
            "registry_tokens": {"handlers": ["json"], "level": level, "propagate": False},
            # Every request is logged at info, whatever the level of the rest.
            REQUEST_LOGGER: {"level": "INFO"},
        },
        "root": {"handlers": ["json"], "level": "WARNING"},
    }
