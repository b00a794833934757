"""What an assignment forbids its project: being made public (its git, files and jobs would
serve the hidden tests to anyone). Imports models only: services/projects.py asks it."""

from __future__ import annotations

from chalicelib.errors import Unprocessable
from chalicelib.models.assignments import Assignment


def refuse_publishing(project_id: int) -> None:
    """Unprocessable when the project is an assignment's (one Query of assignments.by_project)."""
    for _ in Assignment.by_project.query(project_id, limit=1):
        raise Unprocessable("this project is an assignment's: making it public would serve its "
                            "hidden tests to anyone")
