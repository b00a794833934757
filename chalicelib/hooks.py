"""Reactions of a higher layer to events of a lower one, declared here by name.

The git store moves main and the job lifecycle ends jobs; CI (chalicelib/services/pipelines)
reacts to both, and itself reads commits and writes jobs. A direct import either way closes a
cycle (tests/test_import_graph.py), so the low layers announce the event here and the reaction
is found by its name on first use: the dependency is written down in this one table instead of
hidden in a function-level import. Nothing here imports a service at import time.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chalicelib.models.jobs import Job
    from chalicelib.models.pipelines import Pipeline

# event -> "module:function" of each reaction, called in order; a reaction must never raise.
REACTIONS: dict[str, tuple[str, ...]] = {
    "main_moved": ("chalicelib.services.pipelines.runs:on_main_moved",
                   "chalicelib.services.assignments.grading:on_main_moved"),
    "job_ended": ("chalicelib.services.pipelines.runs:on_job_ended",
                  "chalicelib.services.git.imports:on_job_ended"),
    "pipeline_ended": ("chalicelib.services.webhooks.events:on_pipeline_ended",),
}


def _call(event: str, *args: Any) -> None:
    for target in REACTIONS[event]:
        module, _, function = target.partition(":")
        getattr(importlib.import_module(module), function)(*args)


def main_moved(project_id: int, commit: bytes) -> None:
    """main of `project_id` now points at `commit` (push, files-API edit, restore, import)."""
    _call("main_moved", project_id, commit)


def job_ended(job: Job) -> None:
    """`job` reached completed, failed or cancelled (the write that ended it succeeded)."""
    _call("job_ended", job)


def pipeline_ended(pipeline: Pipeline) -> None:
    """`pipeline` reached passed, failed or cancelled (the write that ended it succeeded)."""
    _call("pipeline_ended", pipeline)
