"""The parent powertools Logger (JSON lines); library modules use Logger(child=True).

No line may carry a credential: the formatter masks bearer tokens, JWTs, personal API tokens
and any field named like a password, token, secret or Authorization header, whoever logged it
(ours, or a library logging through this logger), in messages and exceptions alike."""

from __future__ import annotations

import re
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from chalicelib.config import get_settings

SERVICE = "a6hub"
REDACTED = "[REDACTED]"

_SENSITIVE_KEY = re.compile(r"pass(word)?|token|secret|authori[sz]ation|cookie|credential", re.I)
_SENSITIVE_TEXT = [
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"),  # a JWT
    re.compile(r"\ba6p_[A-Za-z0-9_-]+"),  # a personal API token
]


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
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))  # what the JSON encoder would write (e.g. an exception object)


class RedactingFormatter(LambdaPowertoolsFormatter):
    """The powertools JSON formatter, masking credentials in the finished line: message, extra
    fields, appended keys, exception text and stack trace alike."""

    def serialize(self, log: Any) -> str:
        return super().serialize(redact(log))


def configure_logging() -> Logger:
    return Logger(service=SERVICE, level=get_settings().log_level,
                  logger_formatter=RedactingFormatter())
