"""The web client's build page: FPGA targets as presets, per-project settings, start and follow a build.

A build is an ordinary job of type `build` (chalicelib/schemas/job_configs.py BuildConfig); this
module maps the page's LibreLane-shaped form onto that config (`to_job_config`), keeps the form
and the latest build's job id per project (models/builds.py), and describes that job's progress
as the page's steps. ASIC PDKs are refused with a 422 naming the targets this deployment has.
"""

from __future__ import annotations

import math
from typing import Any

from chalicelib.errors import NotFound, Unprocessable
from chalicelib.fpga_targets import ASIC_PDKS, CONSTRAINT_SUFFIX, TARGETS, target
from chalicelib.ids import is_number_id
from chalicelib.models.base import utcnow_iso
from chalicelib.models.builds import BuildSettings
from chalicelib.models.jobs import TERMINAL, Job
from chalicelib.schemas.builds import (
    BuildConfigSaved,
    BuildFlowConfig,
    BuildPreset,
    BuildPresets,
    BuildProgress,
    BuildStatus,
    BuildStep,
    BuildTargets,
)
from chalicelib.schemas.job_configs import HDL_SUFFIXES, parse_job_config
from chalicelib.schemas.jobs import JobCreate, JobPublic
from chalicelib.services import jobs
from chalicelib.services.identity import Caller
from chalicelib.services.projects import authorize

# The build job's steps (runner/kinds/build.py plan_build), and the command each one's log line starts with.
STEPS = (
    BuildStep(name="synthesis", label="Synthesis",
              description="Yosys maps the design to the family's cells (JSON netlist)"),
    BuildStep(name="place_route", label="Place and route",
              description="nextpnr places and routes it on the device and checks timing"),
    BuildStep(name="bitstream", label="Bitstream",
              description="The family's packer writes the configuration bitstream"),
)
_STEP_COMMANDS = {"synthesis": "$ yosys ", "place_route": "$ nextpnr-", "bitstream": "$ icepack "}


def presets() -> BuildPresets:
    """Each FPGA target as a preset of the build page's form."""
    return BuildPresets({t.name: BuildPreset(
        name=t.label, description=f"{t.board}: {t.family} {t.device} in {t.package}, "
                                  f"{t.frequency_mhz:g} MHz clock",
        config=BuildFlowConfig(design_name="top", pdk=t.name,
                               clock_period=f"{1000 / t.frequency_mhz:.3f}"),
    ) for t in TARGETS})


def targets() -> BuildTargets:
    return BuildTargets([t.name for t in TARGETS])


def _frequency_mhz(clock_period: str) -> float:
    try:
        period = float(clock_period)
    except ValueError as e:
        raise Unprocessable("config.clock_period must be a number of nanoseconds") from e
    if not math.isfinite(period) or not 1 <= period <= 1_000_000:
        raise Unprocessable("config.clock_period must be between 1 and 1000000 ns")
    return round(1000 / period, 6)


def to_job_config(form: BuildFlowConfig, paths: list[str] | None) -> dict[str, Any]:
    """The `build` job config for the page's form; 422 for an ASIC PDK or an unknown target.

    `paths` (the project's files) picks the constraint file when the form names none (the
    project's only .pcf) and resolves a bare file name; None skips that (settings may be saved
    before the file exists).
    """
    chosen = target(form.pdk)
    names = ", ".join(t.name for t in TARGETS)
    if chosen is None:
        what = ("is an ASIC PDK for a LibreLane flow, which this deployment does not run"
                if form.pdk in ASIC_PDKS or form.pdk.startswith(("sky130", "gf180"))
                else "is not a target of this deployment")
        raise Unprocessable(f"config.pdk {form.pdk!r} {what}; targets here: {names}")
    config: dict[str, Any] = {
        "family": chosen.family, "device": chosen.device, "package": chosen.package,
        "top": form.design_name, "frequency_mhz": _frequency_mhz(form.clock_period),
        "constraints": _constraints(form.constraints, CONSTRAINT_SUFFIX[chosen.family], paths),
        "timing_allow_fail": form.timing_allow_fail, "seed": form.pl_random_seed,
    }
    files = [f for f in form.verilog_files if f.endswith(HDL_SUFFIXES)]
    if files:
        config["files"] = files
    try:
        return dict(parse_job_config("build", config).model_dump(mode="json"))
    except Unprocessable as e:
        # Name the form's fields, not the job config's the client never sees.
        detail = str(e.detail)
        for ours, theirs in (("config.top", "config.design_name"), ("config.files", "config.verilog_files"),
                             ("config.frequency_mhz", "config.clock_period")):
            detail = detail.replace(ours, theirs)
        raise Unprocessable(detail) from e


def _constraints(given: str | None, suffix: str, paths: list[str] | None) -> str:
    if paths is None:
        if given is None:
            return f"constraints{suffix}"  # a placeholder that validates; checked when built
        return given
    if given is not None and (given in paths or "/" in given):
        if given not in paths:
            raise Unprocessable(f"config.constraints: no project file {given!r}")
        return given
    found = sorted(p for p in paths if p.endswith(suffix)
                   and (given is None or p.rsplit("/", 1)[-1] == given))
    if len(found) == 1:
        return found[0]
    if not found:
        raise Unprocessable(f"config.constraints: the project has no {suffix} file"
                            + (f" named {given!r}" if given else "") + "; add the pin constraints")
    raise Unprocessable(f"config.constraints: several {suffix} files ({', '.join(found[:10])}); "
                        "name one")


def _settings(project_id: int) -> BuildSettings | None:
    try:
        return BuildSettings.get(project_id)
    except BuildSettings.DoesNotExist:
        return None


def get_config(caller: Caller | None, project_id: int) -> BuildFlowConfig:
    """The saved form, or a default naming the project's files (readers of the project)."""
    authorize(caller, project_id, "read")
    row = _settings(project_id)
    if row is not None and row.config:
        return BuildFlowConfig.model_validate(row.config)
    paths = _paths(project_id)
    return BuildFlowConfig(design_name="top", verilog_files=[p for p in paths if p.endswith(HDL_SUFFIXES)])


def save_config(caller: Caller, project_id: int, form: BuildFlowConfig) -> BuildConfigSaved:
    """Validate the form as a build would (except that the constraint file may not exist yet)
    and keep it (editors and owners)."""
    authorize(caller, project_id, "write")
    to_job_config(form, None)
    BuildSettings(project_id).update(actions=[
        BuildSettings.config.set(form.model_dump(mode="json")),
        BuildSettings.updated_by.set(caller.id), BuildSettings.updated_at.set(utcnow_iso())])
    return BuildConfigSaved(message="Build configuration saved", design_name=form.design_name,
                            pdk=form.pdk)


def start_build(caller: Caller, project_id: int, form: BuildFlowConfig) -> JobPublic:
    """Submit a `build` job from the form (editors and owners) and remember it as the latest."""
    authorize(caller, project_id, "write")
    config = to_job_config(form, _paths(project_id))
    job = jobs.submit_job(caller, project_id, JobCreate(job_type="build", config=config))
    BuildSettings(project_id).update(actions=[
        BuildSettings.config.set(form.model_dump(mode="json")), BuildSettings.last_job_id.set(job.id),
        BuildSettings.updated_by.set(caller.id), BuildSettings.updated_at.set(utcnow_iso())])
    return job


def build_status(caller: Caller | None, project_id: int) -> BuildStatus:
    """The latest build's status, steps and log (readers); 404 when the project has none.

    The latest build is the newest job with job_type "build", whether this form started it or it
    was sent to POST .../jobs (or run by a pipeline)."""
    authorize(caller, project_id, "read")
    job = _latest_build(project_id)
    if job is None:
        raise NotFound("No build jobs found for this project")
    job_id = job.id
    logs = jobs.get_logs(caller, project_id, job_id, 0).logs if job.attempts else ""
    completed, current = _progress(job, logs)
    summary = dict(job.summary or {})
    return BuildStatus(
        job_id=job.id, status=job.status, current_step=current,
        progress=f"{len(completed)}/{len(STEPS)} steps",
        progress_data=BuildProgress(
            current_step=current or "", completed_steps=completed, steps_info=list(STEPS),
            progress_percent=100 if job.status == "completed" else 100 * len(completed) // len(STEPS)),
        logs=logs, error_message=job.error_message, result=summary.get("build"))


def _latest_build(project_id: int) -> Job | None:
    """The project's newest build job. Ids are time-ordered, so it is the first build of a
    descending Query; the one this form started last bounds the read when there is one."""
    row = _settings(project_id)
    remembered = row.last_job_id if row is not None else None
    since = Job.id >= remembered if remembered is not None and is_number_id(remembered) else None
    found = Job.query(project_id, range_key_condition=since, scan_index_forward=False,
                      filter_condition=Job.job_type == "build", limit=1)
    return next(iter(found), None)


def _progress(job: Job, logs: str) -> tuple[list[str], str | None]:
    """Steps done and the step under way: from the finished job's steps, else from the log's
    command lines (each step's tool is started with a "$ <command>" line)."""
    if job.status in TERMINAL:
        ran = [s for s in job.steps or [] if s.get("name") in _STEP_COMMANDS]
        done = [s["name"] for s in ran if s.get("exit_code") == 0 and not s.get("limit")]
        failed = next((s["name"] for s in ran if s["name"] not in done), None)
        return done, failed
    started = [name for name, command in _STEP_COMMANDS.items() if f"\n{command}" in f"\n{logs}"]
    return started[:-1], (started[-1] if started else None)


def _paths(project_id: int) -> list[str]:
    from chalicelib.models.files import File

    return [f.filepath for f in File.query(project_id, attributes_to_get=["filepath"])]
