"""Log lines as JSON objects, for log collectors (REPLYHUB_LOG_FORMAT=json).

Each record becomes one line: ``time`` (UTC, ISO 8601), ``level``, ``logger``,
``message``, the traceback as ``exception`` when there is one, and every field the call
passed in ``extra`` (``message_id``, ``draft_id``, ``mailbox``, ``task``…), so that a
collector can find all the lines about one draft without parsing sentences.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

FORMATS = ("plain", "json")
PLAIN = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the record's ``extra`` fields beside the message."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # default=str: an extra that JSON cannot hold (a datetime, a model) is still logged.
        return json.dumps(entry, ensure_ascii=False, default=str)


def formatter_config(log_format: str) -> dict[str, Any]:
    """The ``formatters`` entry of a logging dictConfig for ``log_format`` ("plain" or "json")."""
    if log_format not in FORMATS:
        raise ValueError(
            f"REPLYHUB_LOG_FORMAT must be one of {', '.join(FORMATS)}, not {log_format!r}"
        )
    if log_format == "json":
        return {"()": "replyhub.logging.JsonFormatter"}
    return {"format": PLAIN}


def gunicorn_logconfig(log_format: str) -> dict[str, Any]:
    """Gunicorn's own log lines (start-up, worker restarts, access log) in ``log_format``.

    Used by deploy/gunicorn.conf.py, so the web server's lines match the app's.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"replyhub": formatter_config(log_format)},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "replyhub",
                "stream": "ext://sys.stdout",
            }
        },
        "loggers": {
            "gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
            "gunicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
        },
    }
