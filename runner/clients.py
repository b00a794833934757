"""The runner's AWS clients, made at start-up instead of on its first job.

PynamoDB gives each model class its own connection, and each connection builds its botocore
client from a botocore session of its own (`Connection.session`, one per thread), so every
session loads and parses DynamoDB's service model again: about 78 ms of CPU per model class on
this machine, measured. A runner's first job touched four model classes (Job, File, JobCache,
Pipeline) and so paid about 0.3 s of CPU for clients before its first `completed`; with one job
per task (Fargate), that is every job. `warm()` makes those clients at start-up from one shared
session, whose loader parses the service model once (about 7 ms per further client).

The shared session is chalicelib.aws's, the one every model class (chalicelib.models.base.Model)
and every chalicelib.aws client of the process is made from, under its lock; `warm()` only makes
those clients early, the API makes them on first use.
"""

from __future__ import annotations

from typing import Any

from chalicelib import aws
from chalicelib.models.files import File
from chalicelib.models.jobs import Job
from chalicelib.models.pipelines import JobCache, Pipeline
from chalicelib.models.projects import Project

# The tables a job's path reads or writes: the job, the files table (each input's file id and
# version), the cache keys, the pipelines woken when a job ends, the project (artifact quota).
MODELS: tuple[Any, ...] = (Job, File, JobCache, Pipeline, Project)
SERVICES = ("dynamodb", "s3", "sqs")  # chalicelib.aws clients: raw DynamoDB calls, S3, SQS


def warm(models: tuple[Any, ...] = MODELS, services: tuple[str, ...] = SERVICES) -> int:
    """Make the botocore clients of `models` (chalicelib.models.base.Model classes) and the
    `chalicelib.aws` clients of `services`, all from the process's shared botocore session;
    returns how many model clients were made. A model whose client exists already is left as it
    is. Raises what botocore raises for a bad region or endpoint setting (nothing is sent:
    making a client makes no request)."""
    made = 0
    for model in models:
        fresh = model._connection is None or model._connection.connection._client is None
        model._get_connection()  # makes the client from the shared session (share_session)
        made += fresh
    for service in services:
        aws.client(service)
    return made
