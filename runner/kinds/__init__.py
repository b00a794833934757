"""The job kinds the runner executes with the HDL tools, one module each, registered in KINDS.

A new kind is one module (its config model comes from chalicelib/schemas/job_configs.py; its
`plan_<kind>` builds the tool steps; its `collect` reads the results; see runner/kinds/base.py)
and one line in KINDS. `import` jobs are not a kind: they run our own code, not tools
(runner/importer.py).
"""

from __future__ import annotations

from runner.kinds import build, cocotb, formal, lint, simulation, synthesis
from runner.kinds.base import JobFailed, JobKind

KINDS: dict[str, JobKind] = {kind.job_type: kind for kind in (
    simulation.KIND,
    synthesis.KIND,
    lint.KIND,
    formal.KIND,
    cocotb.KIND,
    build.KIND,
)}

__all__ = ["KINDS", "JobFailed", "JobKind"]
