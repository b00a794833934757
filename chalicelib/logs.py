"""The parent powertools Logger (JSON lines); library modules use Logger(child=True)."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger

SERVICE = "a6hub"


def configure_logging() -> Logger:
    return Logger(service=SERVICE, level=os.environ.get("A6HUB_LOG_LEVEL", "INFO"))
