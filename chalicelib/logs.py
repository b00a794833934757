"""The parent powertools Logger (JSON lines); library modules use Logger(child=True).

No line may carry a credential: the handler's filter masks bearer tokens, JWTs, personal API
tokens and any field named like a password, token, secret or Authorization header, whoever
logged it (ours, or a library propagating to this logger)."""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from aws_lambda_powertools import Logger

SERVICE = "a6hub"
REDACTED = "[REDACTED]"

_SENSITIVE_KEY = re.compile(r"pass(word)?|token|secret|authori[sz]ation|cookie|credential", re.I)
_SENSITIVE_TEXT = [
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"),  # a JWT
    re.compile(r"\ba6p_[A-Za-z0-9_-]+"),  # a personal API token
]
# LogRecord's own attributes, never redacted by name.
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({})))


def redact(value: Any) -> Any:
    """`value` with credentials masked: strings by pattern, mappings also by key name."""
    if isinstance(value, str):
        for pattern in _SENSITIVE_TEXT:
            value = pattern.sub(REDACTED, value)
        return value
    if isinstance(value, dict):
        return {k: REDACTED if isinstance(k, str) and _SENSITIVE_KEY.search(k) else redact(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


class RedactCredentials(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.msg)
        if record.args:
            record.msg = redact(record.getMessage())
            record.args = None
        for name, value in list(vars(record).items()):
            if name in _RECORD_FIELDS or name == "message":
                continue
            setattr(record, name, REDACTED if _SENSITIVE_KEY.search(name) else redact(value))
        return True


def configure_logging() -> Logger:
    logger = Logger(service=SERVICE, level=os.environ.get("A6HUB_LOG_LEVEL", "INFO"))
    handler = logger.registered_handler
    if not any(isinstance(f, RedactCredentials) for f in handler.filters):
        handler.addFilter(RedactCredentials())
    return logger
