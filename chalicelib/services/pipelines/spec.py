"""The pipeline file `.a6hub.yml`: parsed with line marks, validated with the jobs' own config models.

The file's form (everything but `jobs` is optional)::

    cancel_previous: false      # true: a newer commit on main cancels this one's unfinished jobs
    jobs:
      sim:
        type: simulation        # any job type of chalicelib.schemas.job_configs.CONFIG_MODELS
        config: {testbench: tb.v}
      synth:
        type: synthesis
        needs: [sim]            # starts once every job named here passed
        no_cache: true          # run even when an identical run is cached
        config: {top: counter}

Every fault is reported as ``line N: where: what`` (1-based lines of the file). A hostile file
is refused before anything is built from it: more than MAX_BYTES, anchors and aliases (the
"billion laughs" expansion), more than MAX_NODES YAML nodes or MAX_DEPTH levels, duplicate keys
(YAML 1.2 forbids them; PyYAML keeps the last silently), tags other than the safe scalar ones.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

PIPELINE_FILE = ".a6hub.yml"
MAX_BYTES = 64 * 1024
MAX_JOBS = 50
MAX_NODES = 5000
MAX_DEPTH = 16
MAX_ERRORS = 20
JOB_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
TOP_KEYS = ("jobs", "cancel_previous")
JOB_KEYS = ("type", "config", "needs", "no_cache")

Path = tuple[str | int, ...]
_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


@dataclass(frozen=True)
class PipelineJob:
    """One job of the file: its normalised config (what a submitted job would store)."""

    name: str
    job_type: str
    config: dict[str, Any]
    needs: tuple[str, ...] = ()
    no_cache: bool = False


@dataclass(frozen=True)
class PipelineSpec:
    """The jobs in an order where every job comes after the jobs it needs."""

    jobs: tuple[PipelineJob, ...]
    cancel_previous: bool = False


class PipelineFileError(ValueError):
    """The file is refused; `errors` are 'line N: ...' messages, at most MAX_ERRORS."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors[:MAX_ERRORS]
        super().__init__("; ".join(self.errors))


@dataclass
class _Doc:
    """Plain Python values of the file plus the line of each value (by its path of keys)."""

    value: Any
    lines: dict[Path, int] = field(default_factory=dict)

    def line(self, path: Path) -> int:
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path, 1)


def _where(path: Path) -> str:
    return ".".join(str(p) for p in path) or "file"


def _load(text: str) -> _Doc:
    """Compose the YAML into nodes (keeping marks), then build plain values from safe nodes only."""
    import yaml

    loader = _loader_class()(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise PipelineFileError(["line 1: the file is empty; it needs a `jobs:` mapping"])
        doc = _Doc(None)
        doc.value = _build(loader, node, (), doc, set(), 0)
        return doc
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise PipelineFileError([f"line {line}: not valid YAML: {e.problem or e.context}"]) from e
    except yaml.YAMLError as e:
        raise PipelineFileError([f"line 1: not valid YAML: {e}"]) from e
    finally:
        loader.dispose()


@functools.cache
def _loader_class() -> type:
    import yaml

    class Loader(yaml.SafeLoader):
        """PyYAML's safe loader that refuses an alias where it is written (`*name`)."""

        depth = 0
        nodes = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            # Refused while composing: the composer recurses once per level (32,000 "[" would
            # exhaust Python's stack) and holds every node (the caps apply before building).
            line = self.peek_event().start_mark.line + 1
            if self.check_event(yaml.AliasEvent):
                raise PipelineFileError([f"line {line}: anchors and aliases (&, *) are not "
                                         "supported in the pipeline file"])
            self.nodes += 1
            if self.nodes > MAX_NODES:
                raise PipelineFileError([f"line {line}: the file has more than {MAX_NODES} "
                                         "values"])
            self.depth += 1
            try:
                if self.depth > MAX_DEPTH + 1:
                    raise PipelineFileError([f"line {line}: nested deeper than {MAX_DEPTH} "
                                             "levels"])
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return Loader


def _build(loader: Any, node: Any, path: Path, doc: _Doc, seen: set[int], depth: int) -> Any:
    import yaml

    line = doc.lines.setdefault(path, node.start_mark.line + 1)  # a value's line: its key's
    _check_node(node, path, line, seen, depth)
    if isinstance(node, yaml.MappingNode):
        return _build_mapping(loader, node, path, doc, seen, depth)
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, (*path, i), doc, seen, depth + 1)
                for i, item in enumerate(node.value)]
    return loader.construct_object(node)  # SafeLoader: unknown tags raise with their mark


def _check_node(node: Any, path: Path, line: int, seen: set[int], depth: int) -> None:
    import yaml

    if id(node) in seen:  # the composer hands an alias back as the anchored node itself
        raise PipelineFileError([f"line {line}: {_where(path)}: anchors and aliases (&, *) are "
                                 "not supported in the pipeline file"])
    seen.add(id(node))
    if len(seen) > MAX_NODES:
        raise PipelineFileError([f"line {line}: the file has more than {MAX_NODES} values"])
    if depth > MAX_DEPTH:
        raise PipelineFileError([f"line {line}: {_where(path)}: nested deeper than {MAX_DEPTH} "
                                 "levels"])
    if isinstance(node, yaml.CollectionNode) and node.tag not in _PLAIN_TAGS:
        raise PipelineFileError([f"line {line}: {_where(path)}: the tag {node.tag!r} is not "
                                 "allowed"])


def _build_mapping(loader: Any, node: Any, path: Path, doc: _Doc, seen: set[int],
                   depth: int) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for key_node, value_node in node.value:
        key_line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            raise PipelineFileError([f"line {key_line}: {_where(path)}: keys must be plain "
                                     "names (no merge keys, lists or mappings as keys)"])
        key = str(loader.construct_object(key_node))
        if key in out:
            first = doc.lines.get((*path, key), key_line)
            raise PipelineFileError([f"line {key_line}: {_where((*path, key))}: appears twice "
                                     f"(first on line {first})"])
        doc.lines[(*path, key)] = key_line
        out[key] = _build(loader, value_node, (*path, key), doc, seen, depth + 1)
    return out


def parse_pipeline(data: bytes | str) -> PipelineSpec:
    """Parse and validate a pipeline file; raises PipelineFileError with line-numbered messages."""
    if isinstance(data, bytes):
        if len(data) > MAX_BYTES:
            raise PipelineFileError([f"line 1: the file is {len(data)} bytes; at most {MAX_BYTES}"])
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            line = data[:e.start].count(b"\n") + 1
            raise PipelineFileError([f"line {line}: the file is not UTF-8"]) from e
    else:
        text = data
    doc = _load(text)
    errors: list[str] = []
    spec = _validate(doc, errors)
    if errors or spec is None:
        raise PipelineFileError(errors or ["line 1: the pipeline file is invalid"])
    return spec


def _validate(doc: _Doc, errors: list[str]) -> PipelineSpec | None:
    def fault(path: Path, message: str) -> None:
        errors.append(f"line {doc.line(path)}: {_where(path)}: {message}")

    top = doc.value
    if not isinstance(top, dict):
        fault((), "the pipeline file must be a mapping with a `jobs:` key")
        return None
    for key in top:
        if key not in TOP_KEYS:
            fault((key,), f"unknown key; the file may hold {', '.join(TOP_KEYS)}")
    cancel_previous = top.get("cancel_previous", False)
    if not isinstance(cancel_previous, bool):
        fault(("cancel_previous",), "must be true or false")
    jobs = top.get("jobs")
    if not isinstance(jobs, dict) or not jobs:
        fault(("jobs",), "must be a mapping of job names to jobs, with at least one job")
        return None
    if len(jobs) > MAX_JOBS:
        fault(("jobs",), f"{len(jobs)} jobs; a pipeline holds at most {MAX_JOBS}")
        return None
    parsed = [job for name, raw in jobs.items()
              if (job := _job(doc, name, raw, fault)) is not None]
    if errors:
        return None
    ordered = _order(doc, parsed, set(jobs), fault)
    if errors or ordered is None:
        return None
    return PipelineSpec(jobs=tuple(ordered), cancel_previous=bool(cancel_previous))


def _job(doc: _Doc, name: str, raw: Any, fault: Any) -> PipelineJob | None:
    path: Path = ("jobs", name)
    if not JOB_NAME.fullmatch(name):
        fault(path, "a job name is 1-64 letters, digits, '_', '.', '-' (not starting with . or -)")
        return None
    if not isinstance(raw, dict):
        fault(path, "must be a mapping with `type:` and `config:`")
        return None
    fields = _job_fields(path, raw, fault)
    if fields is None:
        return None
    job_type, needs, no_cache, config = fields
    normalised = _config(doc, path, job_type, config, fault)
    if normalised is None:
        return None
    return PipelineJob(name=name, job_type=job_type, config=normalised,
                       needs=tuple(dict.fromkeys(needs)), no_cache=no_cache)


def _job_fields(path: Path, raw: dict[str, Any],
                fault: Any) -> tuple[str, list[str], bool, dict[str, Any]] | None:
    """(type, needs, no_cache, config) of a job mapping, or None after reporting its faults."""
    from chalicelib.schemas.job_configs import CONFIG_MODELS

    faults = 0

    def bad(where: Path, message: str) -> None:
        nonlocal faults
        faults += 1
        fault(where, message)

    for key in raw:
        if key not in JOB_KEYS:
            bad((*path, key), f"unknown key; a job may hold {', '.join(JOB_KEYS)}")
    job_type = raw.get("type")
    if job_type not in CONFIG_MODELS:
        bad((*path, "type"), f"{job_type!r} is not a job type; one of "
                             f"{', '.join(sorted(CONFIG_MODELS))}")
    needs = raw.get("needs", [])
    needs = [needs] if isinstance(needs, str) else needs
    if not isinstance(needs, list) or not all(isinstance(n, str) for n in needs):
        bad((*path, "needs"), "must be a job name or a list of job names")
    no_cache = raw.get("no_cache", False)
    if not isinstance(no_cache, bool):
        bad((*path, "no_cache"), "must be true or false")
    config = raw.get("config") or {}
    if not isinstance(config, dict):
        bad((*path, "config"), "must be a mapping")
    if faults:
        return None
    return str(job_type), needs, no_cache, config


def _config(doc: _Doc, path: Path, job_type: str, config: dict[str, Any],
            fault: Any) -> dict[str, Any] | None:
    """The job's config checked by the same models as POST .../jobs, each fault at its line."""
    from pydantic import ValidationError

    from chalicelib.errors import Unprocessable, validation_message
    from chalicelib.schemas.job_configs import CONFIG_MODELS, parse_job_config

    try:
        CONFIG_MODELS[job_type].model_validate(config)
    except ValidationError as e:
        for item in e.errors(include_url=False, include_input=False):
            loc = tuple(item.get("loc", ()))
            message = validation_message(item)
            fault((*path, "config", *loc), message)
        return None
    try:  # the rules outside the model (simulator support) and the normalisation
        model = parse_job_config(job_type, config)
    except Unprocessable as e:
        fault((*path, "config"), str(e.detail))
        return None
    normalised: dict[str, Any] = model.model_dump(mode="json")
    return normalised


def _order(doc: _Doc, jobs: list[PipelineJob], names: set[str],
           fault: Any) -> list[PipelineJob] | None:
    """Jobs after their needs (Kahn's algorithm); unknown needs and cycles are faults."""
    by_name = {j.name: j for j in jobs}
    for job in jobs:
        for need in job.needs:
            if need == job.name:
                fault(("jobs", job.name, "needs"), "a job cannot need itself")
            elif need not in names:
                fault(("jobs", job.name, "needs"), f"needs {need!r}, which is not a job of "
                                                   "this file")
    if any(need not in by_name or need == j.name for j in jobs for need in j.needs):
        return None
    done: list[PipelineJob] = []
    placed: set[str] = set()
    waiting = list(jobs)
    while waiting:
        ready = [j for j in waiting if all(n in placed for n in j.needs)]
        if not ready:
            cycle = _cycle(by_name, {j.name for j in waiting}, waiting[0].name)
            fault(("jobs", cycle[0], "needs"), "the needs form a cycle: " + " -> ".join(cycle))
            return None
        for job in ready:
            done.append(job)
            placed.add(job.name)
        waiting = [j for j in waiting if j.name not in placed]
    return done


def _cycle(by_name: dict[str, PipelineJob], stuck: set[str], start: str) -> list[str]:
    """A cycle among the `stuck` jobs (each needs another stuck job), from the first one met,
    as names ending where it began: ["a", "b", "a"]."""
    trail: list[str] = []
    name = start
    while name not in trail:
        trail.append(name)
        name = next(n for n in by_name[name].needs if n in stuck)
    return trail[trail.index(name):] + [name]
