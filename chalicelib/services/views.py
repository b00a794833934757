"""Project views: `views_count` moves at most once per viewer, project and hour.

A GET of a project reads a view mark (ratelimits["view#<project_id>#<viewer>"]) in the same
BatchGetItem as the project, so a repeated view costs no write and no extra round trip. When
the mark is missing or has expired, one transaction writes a fresh mark (conditional on there
being none that is still valid) and adds 1 to the project's counter; of two first views racing,
one counts. Marks expire through the table's TTL; until DynamoDB removes one, its `expires_at`
decides. Viewers are users by id, anonymous readers by client address.
"""

from __future__ import annotations

import time

from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.models.accounts import RateCounter
from chalicelib.models.base import transaction_connection
from chalicelib.models.projects import Project

WINDOW_SECONDS = 3600


def viewer_key(user_id: int | None, client: str) -> str:
    """Who is viewing: a user by id, else the client's address."""
    return f"u{user_id}" if user_id is not None else f"a{client or 'unknown'}"


def mark(project_id: int, viewer: str) -> RateCounter:
    """The key of the viewer's mark on the project, to read with the project."""
    return RateCounter(f"view#{project_id}#{viewer}")


def count(project_id: int, viewer: str, found: RateCounter | None, now: float | None = None) -> bool:
    """Count a view unless `found` (the mark as read) is still valid; True when it counted."""
    at = int(time.time() if now is None else now)
    if found is not None and int(found.expires_at or 0) > at:
        return False
    fresh = mark(project_id, viewer)
    fresh.expires_at = at + WINDOW_SECONDS
    fresh.hits = 1
    try:
        with TransactWrite(connection=transaction_connection()) as tx:
            tx.save(fresh, condition=RateCounter.key.does_not_exist() | (RateCounter.expires_at <= at))
            tx.update(Project(project_id), actions=[Project.views_count.add(1)],
                      condition=Project.id.exists(), add_version_condition=False)
    except TransactWriteError:
        return False  # another request counted this view first, or the project is gone
    return True
