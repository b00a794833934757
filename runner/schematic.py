"""Synthesis with `"schematic": true`: an SVG of the synthesised top module (`schematic.svg`).

Yosys `show -format dot` writes the top's netlist as a Graphviz graph in the synthesis run
itself (no second Yosys start), then Graphviz `dot -Tsvg` lays it out in the sandbox. Graphviz
over netlistsvg (npm): Graphviz is a Debian package already on the runner (`dot` is what
`show` is made for, cell types and instance names as node labels), runs under /usr inside the
sandbox like every other tool, and needs no Node.js runtime in the runner image; netlistsvg
draws nicer gate symbols but would add Node plus an npm tree outside /usr.

Caps (a layout's time and size grow faster than linearly with the graph): a design over
`MAX_CELLS` cells or whose graph file is over `MAX_DOT_BYTES` is not laid out, an SVG over
`MAX_SVG_BYTES` is not kept; each case leaves the job completed, with `summary.schematic`
saying why and what to do (synthesise a submodule as `top`).
"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING, Any

from chalicelib.schemas.job_configs import SynthesisConfig
from runner.tools import BUILD_DIR, Plan

if TYPE_CHECKING:
    from runner.execute import JobRun

# Graphviz `dot` on yosys' generic gates (this machine, 2 cores shared): 10 cells 0.4 s, 859
# cells 22 s, 1,579 cells 83 s (a 12- and a 16-bit multiplier); past a few hundred cells a
# schematic is unreadable anyway.
MAX_CELLS = 500
LAYOUT_SECONDS = 60  # coreutils `timeout` around dot, within the job's own wall limit
MAX_DOT_BYTES = 4 * 1024 * 1024
MAX_SVG_BYTES = 8 * 1024 * 1024
DOT_PREFIX = f"{BUILD_DIR}/schematic"
SVG = "schematic.svg"


def with_schematic(config: SynthesisConfig, plan: Plan) -> Plan:
    """`plan` (runner/tools.plan_synthesis) with the top's graph written at the end of its
    Yosys script when the config asks for a schematic; unchanged otherwise."""
    if not config.schematic:
        return plan
    assert plan.compile_set is not None
    top = plan.compile_set.roots[0]
    plan.generated["synth.ys"] += f"show -format dot -prefix {DOT_PREFIX} -width -stretch {top}\n"
    return plan


def collect_schematic(run: JobRun) -> None:
    """Lay out the graph as `schematic.svg` within the caps, or say in `summary.schematic` why not.

    Called by the synthesis kind's collect, after summary.synthesis (its `cells`) is written.
    """
    cells = int((run.result.summary.get("synthesis") or {}).get("cells") or 0)
    info: dict[str, Any] = {"cells": cells, "max_cells": MAX_CELLS, "drawn": False}
    run.result.summary["schematic"] = info
    dot_size = _size(run, os.path.basename(DOT_PREFIX) + ".dot")
    reason: str | None
    if cells > MAX_CELLS:
        reason = (f"not drawn: the design has {cells:,} cells, over the schematic cap of "
                  f"{MAX_CELLS:,}; synthesise a submodule (config.top) to see it")
    elif dot_size is None:
        reason = "not drawn: yosys wrote no graph of the top module"
    elif dot_size > MAX_DOT_BYTES:
        reason = (f"not drawn: the graph is {dot_size:,} bytes, over the cap of {MAX_DOT_BYTES:,}; "
                  "synthesise a submodule (config.top) to see it")
    else:
        reason = _draw(run, info)
    if reason:
        info["reason"] = reason
        run.result.summary.setdefault("warnings", []).append(f"schematic {reason}")
        run.say(f"schematic {reason}")


def _draw(run: JobRun, info: dict[str, Any]) -> str | None:
    argv = ["timeout", str(LAYOUT_SECONDS), "dot", "-Tsvg", "-o", f"{BUILD_DIR}/{SVG}",
            f"{DOT_PREFIX}.dot"]
    result = run.run_extra_step("schematic", argv)
    if result.limit:  # the job's own wall time, memory...: the synthesis stands
        return f"not drawn: {result.limit}"
    if result.exit_code == 124:  # timeout(1)
        return (f"not drawn: the layout took over {LAYOUT_SECONDS} s; synthesise a submodule "
                "(config.top) to see it")
    if result.exit_code != 0:
        return f"not drawn: dot exited {result.exit_code}"
    size = _size(run, SVG)
    if size is None:
        return "not drawn: dot wrote no SVG"
    if size > MAX_SVG_BYTES:
        return (f"not kept: the SVG is {size:,} bytes, over the cap of {MAX_SVG_BYTES:,}; "
                "synthesise a submodule (config.top) to see it")
    build = run.build_fd()
    try:
        if not run.copy_out(build, SVG, SVG, "schematic", "image/svg+xml"):
            return "not drawn: the SVG is not a regular file"
    finally:
        os.close(build)
    info.update(drawn=True, size_bytes=size)
    return None


def _size(run: JobRun, name: str) -> int | None:
    """Size of a regular file in the build dir, links not followed; None when there is none."""
    build = run.build_fd()
    try:
        st = os.stat(name, dir_fd=build, follow_symlinks=False)
    except OSError:
        return None
    finally:
        os.close(build)
    return st.st_size if stat.S_ISREG(st.st_mode) else None
