"""Jobs (simulation, synthesis, lint) of a project.

Access patterns:
- job by id: GetItem jobs[project_id, id]
- jobs of a project, newest first: Query jobs[project_id] descending
"""

from __future__ import annotations

from pynamodb.attributes import MapAttribute, NumberAttribute, UnicodeAttribute, VersionAttribute
from pynamodb.models import Model

from chalicelib.models.base import table_name


class Job(Model):
    class Meta:
        table_name = table_name("jobs")

    project_id = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)
    job_type = UnicodeAttribute()
    status = UnicodeAttribute()
    config = MapAttribute(default=dict)  # type: ignore[var-annotated]
    created_by = UnicodeAttribute()
    created_at = UnicodeAttribute()
    started_at = UnicodeAttribute(null=True)
    completed_at = UnicodeAttribute(null=True)
    error_message = UnicodeAttribute(null=True)
    exit_code = NumberAttribute(null=True)
    version = VersionAttribute()
