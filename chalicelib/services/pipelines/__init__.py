"""CI for hardware: the pipeline file, pipelines per commit of main, their status and cache.

spec.py parses and validates `.a6hub.yml`; runs.py starts a pipeline when main moves and moves
it on as its jobs end; views.py answers the API (lists, commit status, badge, compare).
"""

from chalicelib.services.pipelines.runs import (
    on_job_ended,
    on_main_moved,
    pipeline_file_problems,
)

__all__ = ["on_job_ended", "on_main_moved", "pipeline_file_problems"]
