"""The cache key of a job: what it really reads, the tool versions and the normalised config.

"What it reads" comes from the project model (chalicelib/hdl/project.py), as the runner plans
the tools: the files of the compile set, the files they `include` (nested too), the files they
open by a literal name ($readmemh, $readmemb, $fopen: relative to the project root, the
tools' cwd), with the roots and include folders the model chose. A file opened by a name
computed at run time is not seen: such a testbench should set no_cache.
A file outside that set (a README, the pipeline file, another testbench) does not change the
key; any byte of a file inside it, a tool version or a config value does.

The key is a SHA-256 over a canonical JSON document (sorted keys, no whitespace) holding
{v, job_type, config, tools, roots, include_dirs, files: [[path, sha256 of the bytes]...]}.
A job type without a project model here (import, and types added later) has no key: it always
runs.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Callable, Iterable
from typing import Any

KEY_VERSION = 1
RUNTIME_READS = ("$readmemh", "$readmemb", "$fopen")


def tools_of(job_type: str, config: dict[str, Any]) -> list[str] | None:
    """The tools whose versions enter the key (as runner/execute.py runs them); None: no key."""
    if job_type == "simulation":
        return ["iverilog", "vvp"] if config.get("simulator", "icarus") == "icarus" else ["verilator"]
    if job_type == "synthesis":
        return ["yosys"]
    if job_type == "lint":
        return ["verilator"] if config.get("tool", "verilator") == "verilator" else ["iverilog"]
    return None


def files_read(job_type: str, config: dict[str, Any], paths: Iterable[str],
               read: Callable[[str], bytes | None],
               models: dict[Any, Any] | None = None) -> dict[str, Any] | None:
    """{files, roots, include_dirs} the job's tools read, from the project model; None when the
    model cannot say (the job would fail planning, or its type has no model): no key then.
    `models`, when given, keeps the parsed project models of these `paths` and `read` by parse
    options (defines, include dirs, language): the jobs of one tree share them."""
    from chalicelib.hdl.project import (
        ProjectError,
        lint_set,
        load_project,
        simulation_set,
        synthesis_set,
    )
    from chalicelib.schemas.job_configs import (
        V2005,
        LintConfig,
        SimulationConfig,
        SynthesisConfig,
        parse_job_config,
    )

    try:
        model = parse_job_config(job_type, config)
    except Exception:  # noqa: BLE001 - an invalid config fails in the runner, uncached
        return None
    if not isinstance(model, SimulationConfig | SynthesisConfig | LintConfig):
        return None
    defines = {k: str(v) for k, v in model.defines.items()}
    options = (tuple(sorted(defines.items())), tuple(model.include_dirs), model.language == V2005)
    project = models.get(options) if models is not None else None
    if project is None:
        project = load_project(paths, read, defines=defines, include_dirs=model.include_dirs,
                               verilog_2005=model.language == V2005)
        if models is not None:
            models[options] = project
    try:
        if isinstance(model, SimulationConfig):
            tb_file = model.testbench_file
            cs = simulation_set(project, testbench_file=tb_file,
                                testbench_module=None if tb_file else model.testbench,
                                top=model.top, files=model.files)
        elif isinstance(model, SynthesisConfig):
            cs = synthesis_set(project, top=model.top, files=model.files)
        else:
            cs = lint_set(project, top=model.top, files=model.files)
    except (ProjectError, KeyError):
        return None
    included = {inc for f in cs.files if f in project.sources
                for inc in project.sources[f].included}
    # Files the simulation opens by a literal name, relative to its cwd: the project's root.
    opened = {posixpath.normpath(r.name) for f in cs.files if f in project.sources
              for r in project.sources[f].file_refs if r.task in RUNTIME_READS}
    opened = {p for p in opened if not p.startswith(("/", "../")) and p != ".."}
    files = sorted({*cs.files, *included, *opened})
    return {"files": files, "roots": list(cs.roots), "include_dirs": list(cs.include_dirs)}


def cache_key(job_type: str, config: dict[str, Any], tool_versions: dict[str, str],
              paths: Iterable[str], read: Callable[[str], bytes | None]) -> str | None:
    """The job's cache key (64 hex digits), or None when it has none (see files_read)."""
    if tools_of(job_type, config) is None:
        return None
    reads = files_read(job_type, config, paths, read)
    return None if reads is None else key_of(job_type, config, tool_versions, reads, read)


def key_of(job_type: str, config: dict[str, Any], tool_versions: dict[str, str],
           reads: dict[str, Any], read: Callable[[str], bytes | None]) -> str:
    """The key over `reads` (files_read's answer), each file by path and content."""
    digests = []
    for path in reads["files"]:
        data = read(path)
        # named but absent (a missing memory file): the run decides, the key says so
        digests.append([path, None if data is None else hashlib.sha256(data).hexdigest()])
    document = {"v": KEY_VERSION, "job_type": job_type, "config": config,
                "tools": dict(sorted(tool_versions.items())), "roots": reads["roots"],
                "include_dirs": reads["include_dirs"], "files": digests}
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def scoped(project_id: int, key: str) -> str:
    """The stored item's key: a project's runs serve that project only. The key covers what the
    project model sees a job read, not what a run may read or print besides (a file opened by
    a computed name, `$system`), so a run shared across projects could serve one project's
    private output, or a result poisoned by another tree, to whoever reproduces the keyed
    files."""
    return f"{project_id}:{key}"


def lookup(project_id: int, key: str) -> tuple[int, int] | None:
    """(project id, job id) of the project's run that stored `key`, or None (one GetItem)."""
    from chalicelib.models.pipelines import JobCache

    try:
        entry = JobCache.get(scoped(project_id, key), consistent_read=True)
    except JobCache.DoesNotExist:
        return None
    if entry.project_id != project_id:
        return None
    return entry.project_id, entry.job_id


MAX_RESULT_BYTES = 64 * 1024  # a result kept on the cache item; larger ones are read from the run


def remember(key: str, project_id: int, job_id: int,
             result: dict[str, Any] | None = None) -> None:
    """Record that the project's job `job_id` completed with `key` (the newest such run is kept),
    with `result` (result_of: what a hit is built from) when given and small enough."""
    from chalicelib.models.base import utcnow_iso
    from chalicelib.models.pipelines import JobCache

    if result is not None and len(json.dumps(result, default=str)) > MAX_RESULT_BYTES:
        result = None
    JobCache(scoped(project_id, key), project_id=project_id, job_id=job_id,
             created_at=utcnow_iso(), result=result).save()


def result_of(job: Any) -> dict[str, Any]:
    """The fields of a completed job (models.jobs.Job) a cache hit copies, as stored on its
    cache item: attempts, exit_code, steps, tool_versions, artifacts, summary (without the
    runner's timings and the cache mark), log_bytes, log_truncated."""
    summary = {k: v for k, v in dict(job.summary or {}).items() if k not in ("runner", "cache")}
    return {"attempts": int(job.attempts or 1),
            "exit_code": None if job.exit_code is None else int(job.exit_code),
            "steps": list(job.steps or []), "tool_versions": dict(job.tool_versions or {}),
            "artifacts": list(job.artifacts or []), "summary": summary,
            "log_bytes": int(job.log_bytes or 0), "log_truncated": bool(job.log_truncated)}


def key_of_run(job: Any) -> str | None:
    """The cache key a runner stamped on a run it did not take from the cache
    (`summary.cache = {hit: false, key}`, runner/cache.py), or None."""
    mark = (job.summary or {}).get("cache")
    if isinstance(mark, dict) and not mark.get("hit") and isinstance(mark.get("key"), str):
        return str(mark["key"])
    return None
