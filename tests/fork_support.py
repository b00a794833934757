"""Forking in tests: a fork is a runner job, so a helper forks on a private queue and lets an
in-process runner copy the history before the test looks at the fork."""

from __future__ import annotations

import dataclasses
from typing import Any

from tests.conftest import Api, UserCtx
from tests.jobs_support import api_queue, make_queues


def fork(api: Api, user: UserCtx, project_id: int | str, body: dict[str, Any] | None = None,
         *, run: bool = True) -> Any:
    """POST .../fork as `user`; unless `run` is False, a runner then takes the fork job (the
    reply is the 202; read the fork again to see it completed)."""
    from runner.worker import RunnerSettings, Worker

    queues = make_queues(max_receives=2, visibility=30)
    with api_queue(queues.url):
        reply = api.post(f"/api/v1/projects/{project_id}/fork", token=user.token,
                         json_body=body if body is not None else {})
        if run and reply.status == 202:
            settings = dataclasses.replace(RunnerSettings.from_queue(queues.url),
                                           wait_seconds=1, dlq_check_seconds=60,
                                           log_flush_seconds=0.2, cancel_poll_seconds=0.2)
            assert Worker(settings).poll_once(wait_seconds=1) == 1
    return reply
