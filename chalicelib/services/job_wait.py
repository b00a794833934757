"""Completion without client polling: the long-poll form of GET /projects/{id}/jobs/{job_id}.

`GET .../jobs/{job_id}?wait=S[&since_status=X]` answers the job (the same body as a plain GET)
as soon as its status differs from X -- by default the status it had when the request arrived --
or after S seconds with the status unchanged, whichever comes first. A job that has already
ended (or already differs from `since_status`) is answered at once.

Bounds: 0 < S <= MAX_WAIT_SECONDS (25): API Gateway's REST integration timeout is 29 s (the
`Maximum integration timeout` quota, https://docs.aws.amazon.com/apigateway/latest/developerguide/
limits.html) and the function's own `lambda_timeout` is 29 (.chalice/config.json), which leaves
4 s for authorisation, the final read and the answer.

How it waits: the API's Lambda cannot follow the jobs table's stream per request (a stream is
read by one event-source mapping, services/live.py's pusher, not by a request handler), so it
re-reads the job (GetItem, strongly consistent, the whole item) on a backoff: every
FAST_POLL_SECONDS for the first FAST_PHASE_SECONDS -- where the short simulations end, so
their completion is seen within ~20 ms -- then each pause 1.5x the previous up to
MAX_POLL_SECONDS. The first read is the authorisation's BatchGetItem (project, membership and
job in one round trip) and the answer is the read that saw the change, so an answer costs no
read beyond the polls. Reading the whole item rather than a `status` projection costs the same:
DynamoDB charges read units by the item's size, whatever a projection returns
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/
Expressions.ProjectionExpressions.html), and it saves the final re-read. A full 25 s wait is
at most ~55 reads (25 fast, then 30 slow), against ~1,250 for a loop without pauses at the
local emulator's ~20 ms per read. The job record has no `updated_at` (the runner's writes set
`status`, `log_bytes`, lease times), so `status` is what is compared.

Cost of waiting (us-east-1 list prices, https://aws.amazon.com/lambda/pricing/ and
https://aws.amazon.com/api-gateway/pricing/, read 2026-11): Lambda bills the whole wait,
$0.0000166667 per GB-second on x86; at the API's 512 MB a full 25 s wait is 12.5 GB-s =
$0.00021, and one API Gateway REST request $0.0000035; the ~55 strongly consistent reads of a
small item cost ~55 read request units (on demand, $0.125 per million: $0.000007). A client
polling once a second for the same 25 s pays 25 API Gateway requests ($0.0000875) plus 25
short Lambda invocations (~50 ms each at 512 MB: $0.00001 + $0.000005 in requests): ~$0.0001.
So a wait that runs its full 25 s costs about twice one-second polling and sees the change up
to a second sooner; a job that ends within a second (the common simulation) costs less than two
polls. The real limit is concurrency: every waiting client holds one Lambda execution (the
account's regional default is 1,000 concurrent executions), so 500 students long-polling at a
deadline hold 500 of them -- the WebSocket updates (services/live.py) hold none and are the
better channel for the web client; the long poll is for scripts and CLIs.

Locally (devstack/server.py) a worker process serves one request at a time, as one Lambda
instance does, so each waiting client holds one of the `A6HUB_API_WORKERS` (default 2 x cores)
workers for up to `wait` seconds: more concurrent long polls than workers delay everyone else's
requests on the local server (not in AWS, where each request gets its own instance).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from chalicelib.errors import NotFound, Unprocessable
from chalicelib.models.jobs import CANCELLED, COMPLETED, FAILED, PENDING, RUNNING, TERMINAL, Job
from chalicelib.schemas.jobs import JobPublic
from chalicelib.services.jobs import authorized_job, job_public

if TYPE_CHECKING:
    from chalicelib.services.identity import Caller

MAX_WAIT_SECONDS = 25.0
FAST_POLL_SECONDS = 0.02
FAST_PHASE_SECONDS = 0.5
MAX_POLL_SECONDS = 1.0
BACKOFF = 1.5
STATUSES = (PENDING, RUNNING, COMPLETED, FAILED, CANCELLED)


def parse_wait(raw: str | None) -> float | None:
    """The `wait` query parameter in seconds (a decimal number), None when absent.

    Raises Unprocessable (422) unless 0 < wait <= MAX_WAIT_SECONDS.
    """
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError as e:
        raise Unprocessable("wait must be a number of seconds") from e
    if not 0 < value <= MAX_WAIT_SECONDS:  # also refuses nan and inf
        raise Unprocessable(f"wait must be more than 0 and at most {MAX_WAIT_SECONDS:g} seconds")
    return value


def parse_since_status(raw: str | None, wait: float | None) -> str | None:
    """The `since_status` query parameter; 422 for an unknown status or without `wait`."""
    if raw is None:
        return None
    if wait is None:
        raise Unprocessable("since_status needs wait (the long-poll form of this route)")
    if raw not in STATUSES:
        raise Unprocessable(f"since_status must be one of {', '.join(STATUSES)}")
    return raw


def pauses() -> Callable[[], float]:
    """The backoff: next() gives the next pause in seconds (see the module docstring)."""
    state = {"elapsed": 0.0, "pause": FAST_POLL_SECONDS}

    def step() -> float:
        if state["elapsed"] >= FAST_PHASE_SECONDS:
            state["pause"] = min(MAX_POLL_SECONDS, state["pause"] * BACKOFF)
        state["elapsed"] += state["pause"]
        return state["pause"]

    return step


def _job(project_id: int, job_id: int) -> Job:
    """The whole job (one strongly consistent GetItem); 404 once the job is gone."""
    try:
        return Job.get(project_id, job_id, consistent_read=True)
    except Job.DoesNotExist as e:
        raise NotFound("Job not found") from e


def wait_for_job(caller: Caller | None, project_id: int, job_id: int, wait: float,
                 since_status: str | None = None, *,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> JobPublic:
    """The job once its status differs from `since_status` (default: its status now), or after
    `wait` seconds unchanged. Readers of the project only (404/403/401 as GET, before any wait).

    `sleep` and `clock` are the time source (tests pass a fake one); the job is read from
    DynamoDB each time, whole, and the answer is the read that saw the change. Raises NotFound
    when the job does not exist or is deleted meanwhile.
    """
    deadline = clock() + wait
    job = authorized_job(caller, project_id, job_id, consistent=True)
    baseline = since_status or job.status
    next_pause = pauses()
    while job.status == baseline and job.status not in TERMINAL:
        remaining = deadline - clock()
        if remaining <= 0:
            break
        sleep(min(next_pause(), remaining))
        job = _job(project_id, job_id)
    return job_public(job, with_position=True)
