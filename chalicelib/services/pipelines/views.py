"""Pipelines as the API reads them: lists, the status of commits, the badge, compare, validate."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from chalicelib.errors import Unprocessable
from chalicelib.models.base import fetch_many
from chalicelib.models.jobs import TERMINAL as JOB_TERMINAL
from chalicelib.models.jobs import Job
from chalicelib.models.pipelines import Pipeline
from chalicelib.schemas.git import CommitPublic
from chalicelib.schemas.pipelines import (
    JobChange,
    PipelineComparison,
    PipelineJobPublic,
    PipelinePublic,
    PipelineValidation,
)
from chalicelib.services.identity import Caller
from chalicelib.services.paging import Page, decode_cursor, encode_cursor
from chalicelib.services.pipelines.runs import (
    MAIN,
    PENDING,
    RUNNING,
    commit_key,
    derive_status,
    job_outcome,
)
from chalicelib.services.pipelines.spec import PipelineFileError, parse_pipeline
from chalicelib.services.projects import authorize

C = TypeVar("C", bound=CommitPublic)
BATCH_GET_KEYS = 100  # DynamoDB's BatchGetItem limit
STATUS_THREADS = 8
REFS = {"main": MAIN, MAIN: MAIN}


# --- building the public view -------------------------------------------------------------------


def _jobs_of(pipelines: list[Pipeline]) -> dict[int, Job]:
    """The started jobs of these pipelines (to tell pending from running, and for their
    summaries and cache marks), by job id; one BatchGetItem per 100 jobs."""
    keys = [(p.project_id, int(e["job_id"])) for p in pipelines for e in p.jobs or []
            if e.get("job_id") is not None]
    found: dict[int, Job] = {}
    for start in range(0, len(keys), BATCH_GET_KEYS):
        chunk = keys[start:start + BATCH_GET_KEYS]
        for job in fetch_many(*(Job(pid, jid) for pid, jid in chunk)):
            if job is not None:
                found[job.id] = job
    return found


def _entry_public(entry: dict[str, Any], job: Job | None) -> PipelineJobPublic:
    status = str(entry["status"])
    if job is not None and status == PENDING:
        # The pipeline records an outcome when the job ends; before that the job says.
        status = RUNNING if job.status == RUNNING else (
            job_outcome(job.status) if job.status in JOB_TERMINAL else PENDING)
    summary = dict(job.summary or {}) if job is not None else {}
    cache = summary.get("cache") or {}
    return PipelineJobPublic(
        name=str(entry["name"]), job_type=str(entry["job_type"]),
        needs=list(entry.get("needs") or []), status=status,  # type: ignore[arg-type]
        job_id=entry.get("job_id"), error=entry.get("error"),
        cached=bool(cache.get("hit")), cached_from=cache.get("job_id"),
        cached_project_id=cache.get("project_id"),
        summary={k: v for k, v in summary.items() if k != "cache"})


def pipeline_public(pipeline: Pipeline, jobs: dict[int, Job]) -> PipelinePublic:
    entries = [_entry_public(e, jobs.get(int(e["job_id"])) if e.get("job_id") else None)
               for e in pipeline.jobs or []]
    status = derive_status([e.model_dump() for e in entries], pipeline.errors)
    return PipelinePublic(
        id=pipeline.id, project_id=pipeline.project_id, commit=pipeline.commit,
        ref=pipeline.ref, status=status,  # type: ignore[arg-type]
        jobs=entries, errors=list(pipeline.errors or []), created_at=pipeline.created_at,
        updated_at=pipeline.updated_at)


def _publics(pipelines: list[Pipeline]) -> list[PipelinePublic]:
    jobs = _jobs_of(pipelines)
    return [pipeline_public(p, jobs) for p in pipelines]


# --- reads --------------------------------------------------------------------------------------


def latest_of_commit(project_id: int, sha: str) -> Pipeline | None:
    """The newest pipeline of a commit (one Query of the by_commit index)."""
    for pipeline in Pipeline.by_commit.query(commit_key(project_id, sha), scan_index_forward=False,
                                             limit=1):
        return pipeline
    return None


def with_pipelines(project_id: int, commits: list[C]) -> list[C]:
    """The commits with their newest pipeline attached (`pipeline`, None without one): one
    Query per commit, side by side, and one BatchGet of the jobs still running."""
    if not commits:
        return commits
    with ThreadPoolExecutor(max_workers=min(STATUS_THREADS, len(commits))) as pool:
        found = list(pool.map(lambda c: latest_of_commit(project_id, c.id), commits))
    publics = iter(_publics([p for p in found if p is not None]))
    return [c.model_copy(update={"pipeline": next(publics) if p is not None else None})
            for c, p in zip(commits, found, strict=True)]


def list_pipelines(caller: Caller | None, project_id: int, ref: str | None, limit: int,
                   cursor: str | None) -> Page[PipelinePublic]:
    """A project's pipelines, newest first; `ref` (main or refs/heads/main) narrows them."""
    authorize(caller, project_id, "read")
    wanted = _ref(ref)
    start = decode_cursor(cursor, {"project_id": project_id})
    result = Pipeline.query(project_id, scan_index_forward=False, limit=limit, page_size=limit,
                            last_evaluated_key=start,
                            filter_condition=(Pipeline.ref == wanted) if wanted else None)
    items = list(result)
    return Page(items=_publics(items), next_cursor=encode_cursor(result.last_evaluated_key))


def _ref(ref: str | None) -> str | None:
    if not ref:
        return None
    if ref not in REFS:
        raise Unprocessable("ref: pipelines run on main only (ref=main)")
    return REFS[ref]


def newest(project_id: int, ref: str | None) -> Pipeline | None:
    wanted = _ref(ref) or MAIN
    for pipeline in Pipeline.query(project_id, scan_index_forward=False, limit=10,
                                   filter_condition=Pipeline.ref == wanted):
        return pipeline
    return None


def badge_status(caller: Caller | None, project_id: int, ref: str | None) -> str | None:
    """The status of the ref's newest pipeline (None: there is none)."""
    authorize(caller, project_id, "read")
    pipeline = newest(project_id, ref)
    if pipeline is None:
        return None
    return _publics([pipeline])[0].status


def validate(caller: Caller | None, project_id: int, content: str) -> PipelineValidation:
    """Check a pipeline file's text as a push of main would."""
    authorize(caller, project_id, "read")
    try:
        spec = parse_pipeline(content.encode("utf-8"))
    except PipelineFileError as e:
        return PipelineValidation(valid=False, errors=e.errors, jobs=[])
    return PipelineValidation(valid=True, errors=[], jobs=[j.name for j in spec.jobs])


# --- compare ------------------------------------------------------------------------------------

FIGURES = ("cells", "flip_flops", "luts", "block_rams", "fmax_mhz")


def _figures(summary: dict[str, Any]) -> dict[str, float | None]:
    source = dict(summary.get("synthesis") or {})
    for section in ("timing", "build"):
        source.update({k: v for k, v in (summary.get(section) or {}).items() if k in FIGURES})
    return {k: (float(source[k]) if isinstance(source.get(k), int | float) else None)
            for k in FIGURES if k in source}


def _tests(summary: dict[str, Any]) -> dict[str, str]:
    """cocotb test outcomes by test name, from the job summary's `cocotb.tests` list."""
    tests = (summary.get("cocotb") or {}).get("tests") or []
    return {str(t.get("name")): str(t.get("outcome") or t.get("result") or t.get("status"))
            for t in tests if isinstance(t, dict) and t.get("name")}


def compare(caller: Caller | None, project_id: int, base: str, head: str) -> PipelineComparison:
    """Per job name: outcome on each side, synthesis figures with deltas, cocotb tests whose
    outcome changed. `base`/`head` are revisions (sha, abbreviated sha, branch, tag, HEAD)."""
    from chalicelib.services.git.job_commits import resolve

    authorize(caller, project_id, "read")
    base_sha, head_sha = resolve(project_id, base), resolve(project_id, head)
    pipelines = [latest_of_commit(project_id, base_sha), latest_of_commit(project_id, head_sha)]
    present = [p for p in pipelines if p is not None]
    publics = dict(zip([p.id for p in present], _publics(present), strict=True))
    sides = [publics[p.id] if p is not None else None for p in pipelines]
    by_side = [{j.name: j for j in s.jobs} if s else {} for s in sides]
    names = list(dict.fromkeys([*by_side[0], *by_side[1]]))
    return PipelineComparison(
        base=base_sha, head=head_sha,
        base_pipeline=pipelines[0].id if pipelines[0] else None,
        head_pipeline=pipelines[1].id if pipelines[1] else None,
        jobs=[_job_change(name, by_side[0].get(name), by_side[1].get(name)) for name in names])


def _job_change(name: str, old: PipelineJobPublic | None,
                new: PipelineJobPublic | None) -> JobChange:
    old_figures = _figures(old.summary) if old else {}
    new_figures = _figures(new.summary) if new else {}
    figures: dict[str, dict[str, float | None]] = {}
    for key in dict.fromkeys([*old_figures, *new_figures]):
        a, b = old_figures.get(key), new_figures.get(key)
        figures[key] = {"base": a, "head": b,
                        "delta": (b - a) if a is not None and b is not None else None}
    old_tests = _tests(old.summary) if old else {}
    new_tests = _tests(new.summary) if new else {}
    changed_tests = [{"name": t, "base": old_tests.get(t), "head": new_tests.get(t)}
                     for t in dict.fromkeys([*old_tests, *new_tests])
                     if old_tests.get(t) != new_tests.get(t)]
    either = new or old
    return JobChange(name=name, job_type=either.job_type if either else "",
                     base_status=old.status if old else None,
                     head_status=new.status if new else None,
                     changed=(old.status if old else None) != (new.status if new else None),
                     figures=figures, tests_changed=changed_tests)
