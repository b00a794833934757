"""What a project's webhooks are sent: a delivery row per webhook and a queued first attempt.

`on_pipeline_ended(pipeline)` is the reaction to chalicelib.hooks.pipeline_ended (a pipeline
reached passed, failed or cancelled; the write that made it so is done) and never raises into
the job-completion path: a delivery that cannot be recorded or queued is logged (or marked
failed) and the pipeline stays as it is.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aws_lambda_powertools import Logger

from chalicelib.config import get_settings
from chalicelib.ids import with_new_id
from chalicelib.logs import SERVICE
from chalicelib.models.base import id_taken, utcnow_iso
from chalicelib.models.pipelines import Pipeline
from chalicelib.models.projects import Project
from chalicelib.models.webhooks import DELIVERY_TTL_DAYS, FAILED, PENDING, Webhook, WebhookDelivery
from chalicelib.services.webhooks import delivery

logger = Logger(service=SERVICE, child=True)

PIPELINE_EVENT = "pipeline"
PING_EVENT = "ping"
MAX_ERROR_CHARS = 500


def _api(path: str) -> str:
    """An API link: absolute under A6HUB_PUBLIC_URL when it is set, else the path."""
    return get_settings().public_url + path


def project_part(project: Project) -> dict[str, Any]:
    pid = int(project.id)
    return {"id": pid, "name": project.name, "slug": project.slug,
            "visibility": project.visibility, "url": _api(f"/api/v1/projects/{pid}")}


def pipeline_payload(pipeline: Pipeline, project: Project) -> dict[str, Any]:
    """The body of a `pipeline` delivery: the project, the pipeline's commit, ref and status,
    and each job's outcome with links (API paths, absolute under A6HUB_PUBLIC_URL)."""
    pid = int(pipeline.project_id)
    jobs = [{"name": str(e["name"]), "job_type": str(e["job_type"]), "status": str(e["status"]),
             "job_id": e.get("job_id"),
             "error": (str(e["error"])[:MAX_ERROR_CHARS] if e.get("error") else None),
             "url": (_api(f"/api/v1/projects/{pid}/jobs/{e['job_id']}")
                     if e.get("job_id") is not None else None)}
            for e in pipeline.jobs or []]
    return {
        "event": PIPELINE_EVENT,
        "project": project_part(project),
        "pipeline": {
            "id": int(pipeline.id), "commit": pipeline.commit, "ref": pipeline.ref,
            "status": pipeline.status, "errors": list(pipeline.errors or []),
            "created_at": pipeline.created_at, "updated_at": pipeline.updated_at,
            "url": _api(f"/api/v1/projects/{pid}/pipelines?ref=main"),
            "commit_url": _api(f"/api/v1/projects/{pid}/git/commits/{pipeline.commit}"),
            "jobs": jobs,
        },
    }


def record(hook: Webhook, event: str, payload: dict[str, Any]) -> WebhookDelivery:
    """Write a pending delivery of `payload` to `hook` and queue its first attempt; a queue
    that cannot be reached marks the delivery failed (it is returned either way)."""
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True)
    now = utcnow_iso()

    def create(delivery_id: int) -> WebhookDelivery:
        row = WebhookDelivery(
            int(hook.id), delivery_id, project_id=int(hook.project_id), event=event,
            payload=body, status=PENDING, attempts=0, created_at=now, updated_at=now,
            expires_at=int(time.time()) + DELIVERY_TTL_DAYS * 86400)
        row.save(condition=WebhookDelivery.id.does_not_exist())
        return row

    row = with_new_id(create, id_taken)
    try:
        delivery.enqueue(int(hook.id), int(row.id), 1)
    except Exception as e:  # noqa: BLE001 - the caller's own work must not fail on this
        logger.warning("webhook delivery not queued", extra={"webhook_id": hook.id,
                                                             "error": str(e)})
        row.update(actions=[WebhookDelivery.status.set(FAILED),
                            WebhookDelivery.error.set("the job queue was unavailable; "
                                                      "the delivery was not attempted"),
                            WebhookDelivery.updated_at.set(utcnow_iso())])
    return row


def on_pipeline_ended(pipeline: Pipeline) -> None:
    """Record and queue a `pipeline` delivery to each webhook of the pipeline's project."""
    try:
        hooks = list(Webhook.query(int(pipeline.project_id)))
        if not hooks:
            return
        payload = pipeline_payload(pipeline, Project.get(int(pipeline.project_id)))
        for hook in hooks:
            record(hook, PIPELINE_EVENT, payload)
    except Exception:  # noqa: BLE001 - the pipeline ended; only its notification is lost
        logger.exception("webhook deliveries not recorded",
                         extra={"project_id": pipeline.project_id, "pipeline_id": pipeline.id})
