"""A project's FPGA build settings (the web client's build page) and its latest build job.

Access patterns:
- settings of a project: GetItem build_settings[project_id]
- save settings / record the latest build: PutItem / UpdateItem build_settings[project_id]

One row per project, written by its editors; the job itself lives in the jobs table.
"""

from __future__ import annotations

from pynamodb.attributes import JSONAttribute, UnicodeAttribute

from chalicelib.models.base import IdAttribute, Model, table_name


class BuildSettings(Model):
    class Meta:
        table_name = table_name("build-settings")

    project_id = IdAttribute(hash_key=True)
    # The build page's form as last saved or built (chalicelib/schemas/builds.py BuildFlowConfig).
    config = JSONAttribute(null=True)
    last_job_id = IdAttribute(null=True)
    updated_by = IdAttribute(null=True)
    updated_at = UnicodeAttribute(null=True)
