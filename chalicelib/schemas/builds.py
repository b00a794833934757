"""The web client's build page (/api/v1/builds/...): its LibreLane-shaped form, mapped onto FPGA builds.

Shapes follow upstream's backend/app/schemas/librelane.py (LibreLaneFlowConfig, ...BuildRequest,
...BuildStatus, ...FlowPreset) and frontend/app/projects/[id]/build/page.tsx. `pdk` names one of
this deployment's FPGA targets (chalicelib/fpga_targets.py); `design_name` is the top module,
`clock_period` (ns) the target frequency, `verilog_files` the files (all when empty), and
`constraints` (ours) the .pcf. The ASIC-only knobs (density, core utilisation, DRC/LVS, Docker
image...) are kept so the client's form round-trips, and are not used by an FPGA build.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, RootModel

from chalicelib.schemas.common import PublicModel, RequestModel
from chalicelib.schemas.job_configs import MAX_FILES


class BuildFlowConfig(RequestModel):
    """The build page's form; unknown fields are an error, as for every request body."""

    model_config = ConfigDict(extra="forbid", strict=False, defer_build=True)

    design_name: str = Field(min_length=1, max_length=128)
    verilog_files: list[str] = Field(default_factory=list, max_length=MAX_FILES)
    pdk: str = Field(default="ice40-up5k-sg48", max_length=64)
    std_cell_library: str | None = Field(default=None, max_length=64)
    flow: str = Field(default="Classic", max_length=16)
    clock_period: str = Field(default="83.333", max_length=16)  # ns; 12 MHz
    clock_port: str | None = Field(default="clk", max_length=128)
    # Ours: the project's constraint file (.pcf); None: the project's only one.
    constraints: str | None = Field(default=None, max_length=1024)
    timing_allow_fail: bool = False
    # The client's ASIC knobs, accepted and stored for its form; an FPGA build does not use them.
    die_area: str | None = Field(default=None, max_length=64)
    core_area: str | None = Field(default=None, max_length=64)
    pl_target_density: str = Field(default="0.5", max_length=16)
    pl_random_seed: int = Field(default=42, ge=1, le=2**31 - 1)
    synth_strategy: str = Field(default="AREA 0", max_length=32)
    synth_max_fanout: int = Field(default=10, ge=1, le=10_000)
    synth_buffering: bool = True
    synth_sizing: bool = True
    fp_core_util: int = Field(default=50, ge=1, le=100)
    fp_aspect_ratio: float = Field(default=1.0, gt=0, le=100)
    fp_pdn_vpitch: float | None = None
    fp_pdn_hpitch: float | None = None
    grt_repair_antennas: bool = True
    drt_opt_iters: int = Field(default=64, ge=1, le=1000)
    vdd_nets: list[str] = Field(default_factory=lambda: ["vccd1"], max_length=8)
    gnd_nets: list[str] = Field(default_factory=lambda: ["vssd1"], max_length=8)
    run_drc: bool = False
    run_lvs: bool = False
    run_magic_drc: bool = False
    run_klayout_drc: bool = False
    sta_pre_cts: bool = True
    sta_post_cts: bool = True
    generate_final_summary: bool = True
    use_docker: bool = False
    docker_image: str = Field(default="", max_length=256)
    extra_args: dict[str, Any] | None = Field(default=None, max_length=0)


class BuildRequest(RequestModel):
    model_config = ConfigDict(extra="forbid", strict=False, defer_build=True)

    config: BuildFlowConfig


class BuildConfigSaved(PublicModel):
    message: str
    design_name: str
    pdk: str


class BuildPreset(PublicModel):
    name: str
    description: str
    config: BuildFlowConfig


class BuildPresets(RootModel[dict[str, BuildPreset]]):
    """{target name: preset}; the client merges a preset's config into its form."""


class BuildTargets(RootModel[list[str]]):
    """The target names `pdk` may take here (the client calls them PDKs)."""


class BuildStep(PublicModel):
    name: str
    label: str
    description: str


class BuildProgress(PublicModel):
    current_step: str
    progress_percent: int
    completed_steps: list[str]
    steps_info: list[BuildStep]


class BuildStatus(PublicModel):
    job_id: int
    status: str
    progress: str | None = None
    current_step: str | None = None
    progress_data: BuildProgress | None = None
    logs: str | None = None
    error_message: str | None = None
    # The job's build summary (utilisation, clocks with Fmax, timing_met, bitstream_bytes).
    result: dict[str, Any] | None = None
