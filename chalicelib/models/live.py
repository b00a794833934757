"""Open live-update sockets (WebSocket connections) and the job each one follows.

Access patterns:
- a connection by id ($disconnect, a message): GetItem/DeleteItem wsconnections[connection_id]
- the sockets following a job: Query wsconnections.by_job[job_key]
- what a socket has been sent of the job's log: UpdateItem with a condition (see
  services/live.claim_log), so two pushers never send the same bytes twice
"""

from __future__ import annotations

from pynamodb.attributes import BooleanAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex

from chalicelib.models.base import IdAttribute, Model, table_name


class ConnectionsByJob(GlobalSecondaryIndex["WsConnection"]):
    class Meta:
        index_name = "by_job"
        projection = AllProjection()

    job_key = UnicodeAttribute(hash_key=True)
    connection_id = UnicodeAttribute(range_key=True)


class WsConnection(Model):
    class Meta:
        table_name = table_name("wsconnections")

    connection_id = UnicodeAttribute(hash_key=True)
    job_key = UnicodeAttribute()  # "<project_id>#<job_id>"
    project_id = IdAttribute()
    job_id = IdAttribute()
    user_id = IdAttribute(null=True)  # None: an anonymous reader of a public project
    connected_at = UnicodeAttribute()
    expires_at = NumberAttribute()  # epoch seconds; API Gateway's 2-hour connection limit
    # Where the log replay starts (the client's ?offset=, else the last REPLAY_BYTES).
    replay_from = NumberAttribute(default=0)
    # Set once the greeting went out; before that, job changes leave the socket to the greeting.
    welcomed = BooleanAttribute(null=True)
    # The attempt whose log the socket is being sent, and how many bytes of it were sent.
    log_attempt = NumberAttribute(null=True)
    log_offset = NumberAttribute(null=True)
    completed_sent = BooleanAttribute(null=True)  # `complete` went out (claimed once)
    by_job = ConnectionsByJob()


def job_key(project_id: int, job_id: int) -> str:
    return f"{project_id}#{job_id}"
