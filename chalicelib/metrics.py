"""Job metrics as CloudWatch embedded-metric-format lines (powertools EMF), for the API and runner.

Each event is one JSON line on stdout (Lambda and the runner's awslogs driver ship stdout to
CloudWatch Logs, which turns it into metrics) with two dimension sets: (service, stage) for
the stage's alarms in infra/api.yaml, and (service, stage, job_type) for per-type graphs.
POWERTOOLS_METRICS_DISABLED=true (or POWERTOOLS_DEV=true) turns them off."""

from __future__ import annotations

import sys
from collections.abc import Callable

from chalicelib.config import get_settings
from chalicelib.logs import SERVICE

FINISHED = {"completed": "JobsCompleted", "failed": "JobsFailed", "cancelled": "JobsCancelled"}

Sink = Callable[[str], None]


def _stdout(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


_sink: Sink = _stdout


def set_sink(sink: Sink | None) -> None:
    """Send EMF lines to `sink` instead of stdout (tests); None restores stdout."""
    global _sink
    _sink = sink or _stdout


def _publish(job_type: str, values: dict[str, tuple[float, str]]) -> None:
    import json

    from aws_lambda_powertools.metrics import EphemeralMetrics
    from aws_lambda_powertools.metrics.functions import is_metrics_disabled

    if is_metrics_disabled() or not values:
        return
    settings = get_settings()
    stage = settings.stage
    metrics = EphemeralMetrics(namespace=settings.metrics_namespace, service=SERVICE)
    metrics.add_dimension(name="service", value=SERVICE)
    metrics.add_dimension(name="stage", value=stage)
    metrics.add_dimensions(service=SERVICE, stage=stage, job_type=job_type)
    for name, (value, unit) in values.items():
        metrics.add_metric(name=name, unit=unit, value=value)
    _sink(json.dumps(metrics.serialize_metric_set(), separators=(",", ":")))


def job_submitted(job_type: str) -> None:
    """The API accepted a job and queued it."""
    _publish(job_type, {"JobsSubmitted": (1, "Count")})


def job_started(job_type: str, queue_wait_seconds: float) -> None:
    """A runner claimed the job `queue_wait_seconds` after it was submitted."""
    _publish(job_type, {"JobQueueWait": (max(0.0, queue_wait_seconds), "Seconds")})


def job_finished(job_type: str, status: str, duration_seconds: float | None) -> None:
    """The job ended `completed`, `failed` or `cancelled`; duration from claim to end, if it ran."""
    if status not in FINISHED:
        raise ValueError(f"not a final job status: {status!r}")
    values: dict[str, tuple[float, str]] = {FINISHED[status]: (1, "Count")}
    if duration_seconds is not None:
        values["JobDuration"] = (max(0.0, duration_seconds), "Seconds")
    _publish(job_type, values)
