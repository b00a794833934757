"""The project model: which files a tool compiles, in which order, with which include path and roots.

Built from the parse of every Verilog/SystemVerilog file (``parse.py``), the way a person who
knows the tools writes the command line:

- a file `include`d by another compiled file is not compiled again (its text arrives with the
  includer);
- files declaring packages and interfaces come before the files that use them (every tool);
- the include path holds the folders the includes were found from, plus ``include_dirs``;
- a simulation's roots are the uninstantiated modules of the chosen testbench file, and only the
  files that hierarchy needs are compiled (another testbench's ``$dumpvars`` or ``$finish`` is
  not elaborated);
- synthesis reads the design, not the testbench: what ``top`` needs, or, without ``top``, the
  hierarchy of the inferred design root — a module with ports that nothing instantiates, never a
  port-less testbench.
"""

from __future__ import annotations

import heapq
import posixpath
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from chalicelib.hdl.parse import SourceFile, Unit, parse_source

# Files given to the tools as compile units; anything else is only ever `include`d.
COMPILE_SUFFIXES = (".v", ".sv")
# Folders holding files with these suffixes go on every tool's include path.
HEADER_SUFFIXES = (".vh", ".svh", ".h", ".inc", ".vinc", ".svi")
# Packages first, then interfaces, then the rest (when dependencies leave a choice).
_ORDER_RANK = {"package": 0, "interface": 1}


class ProjectError(ValueError):
    """The job's choice of files or top does not fit the project (said in words for the user)."""


@dataclass(frozen=True)
class CompileSet:
    """What one tool run compiles.

    ``files``: project paths in compile order. ``roots``: top-level units to elaborate (empty:
    let the tool decide). ``include_dirs``: project folders ("." for the root). ``dumps``: a
    compiled file calls $dumpfile/$dumpvars. ``untimed``: compiled files whose first unit has no
    `timescale in force (they get the service default). ``notes``: said to the user.
    """

    files: tuple[str, ...]
    roots: tuple[str, ...]
    include_dirs: tuple[str, ...]
    dumps: bool
    untimed: frozenset[str]
    notes: tuple[str, ...] = ()
    verilog_2005_only: tuple[str, ...] = ()
    memory_files: tuple[str, ...] = ()


@dataclass
class Project:
    """Every compile-unit file of a project, parsed; ``headers`` are the other files' folders."""

    sources: dict[str, SourceFile]
    header_dirs: tuple[str, ...] = ()
    include_dirs: tuple[str, ...] = ()
    definitions: dict[str, list[tuple[str, Unit]]] = field(default_factory=dict)
    included_by: dict[str, set[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for path in sorted(self.sources):
            parsed = self.sources[path]
            for unit in parsed.units:
                self.definitions.setdefault(unit.name, []).append((path, unit))
            for inc in parsed.included:
                self.included_by.setdefault(inc, set()).add(path)

    # -- selection

    def provider(self, name: str) -> str | None:
        """The file to compile for unit ``name``: one that declares it itself, else an includer."""
        found = self.definitions.get(name, [])
        own = [path for path, unit in found if unit.path == path]
        if own:
            return own[0]
        return found[0][0] if found else None

    def needs(self, unit: Unit) -> Iterable[str]:
        yield from (i.module for i in unit.instances)
        yield from unit.imports
        yield from unit.interfaces

    def closure(self, names: Iterable[str], seed_files: Iterable[str] = ()) -> list[str]:
        """Files holding ``names`` and everything their units instantiate, import or use."""
        chosen: list[str] = []
        pending = list(names)
        seen_names: set[str] = set()
        queue_files = list(seed_files)
        while pending or queue_files:
            if queue_files:
                path = queue_files.pop(0)
                if path in chosen:
                    continue
                chosen.append(path)
                for unit in self.sources[path].units:
                    seen_names.add(unit.name)  # provided: never looked up in another file
                    pending.extend(self.needs(unit))
                continue
            name = pending.pop(0)
            if name in seen_names:
                continue
            seen_names.add(name)
            provider = self.provider(name)
            if provider is not None and provider not in chosen:
                queue_files.append(provider)
        return chosen

    def without_included(self, files: Sequence[str]) -> tuple[list[str], list[str]]:
        """``files`` less those another of them `include`s; and the dropped ones."""
        selected = set(files)
        dropped = [f for f in files if self.included_by.get(f, set()) & (selected - {f})]
        return [f for f in files if f not in dropped], dropped

    # -- order

    def ordered(self, files: Sequence[str]) -> list[str]:
        """Packages and interfaces before their users; otherwise path order (stable)."""
        declares: dict[str, str] = {}
        for path in files:
            for unit in self.sources[path].units:
                if unit.kind in ("package", "interface"):
                    declares.setdefault(unit.name, path)
        after: dict[str, set[str]] = {path: set() for path in files}
        for path in files:
            for unit in self.sources[path].units:
                for name in (*unit.imports, *unit.interfaces, *(i.module for i in unit.instances)):
                    dep = declares.get(name)
                    if dep is not None and dep != path:
                        after[path].add(dep)
        kinds = {path: min((_ORDER_RANK.get(u.kind, 2) for u in self.sources[path].units), default=2)
                 for path in files}
        return _topological(files, after, rank=lambda p: (kinds[p], p))

    # -- the compile sets

    def compile_set(self, files: Sequence[str], roots: Sequence[str], notes: list[str]) -> CompileSet:
        kept, dropped = self.without_included(files)
        for path in dropped:
            includer = sorted(self.included_by[path] & set(kept))[0]
            notes.append(f"{path} is `include'd by {includer}, so it is not compiled a second time")
        ordered = self.ordered(kept)
        bases: list[str] = ["."]
        for path in ordered:
            bases += [b or "." for b in self.sources[path].include_bases]
        bases += list(self.include_dirs) + list(self.header_dirs)
        return CompileSet(
            files=tuple(ordered),
            roots=tuple(roots),
            include_dirs=tuple(dict.fromkeys(bases)),
            dumps=any(self.sources[p].dumps for p in ordered),
            untimed=frozenset(p for p in ordered if self._untimed(p)),
            notes=tuple(notes),
            verilog_2005_only=tuple(p for p in ordered if self.sources[p].language == "verilog-2005"),
            memory_files=tuple(dict.fromkeys(
                r.name for p in ordered for r in self.sources[p].file_refs
                if r.task in ("$readmemh", "$readmemb"))),
        )

    def _untimed(self, path: str) -> bool:
        units = self.sources[path].units
        return bool(units) and units[0].timescale is None

    def units_of(self, path: str) -> list[Unit]:
        """The units a file declares in its own text (not those of the headers it includes)."""
        return [u for u in self.sources[path].units if u.path == path]

    def instantiated(self, files: Iterable[str]) -> set[str]:
        return {i.module for p in files for u in self.sources[p].units for i in u.instances}


def simulation_set(project: Project, *, testbench_file: str | None, testbench_module: str | None,
                   top: str | None, files: Sequence[str] | None) -> CompileSet:
    """Files and roots to simulate: the testbench file's uninstantiated modules (or ``top``)."""
    notes: list[str] = []
    if testbench_file is not None and testbench_file not in project.sources:
        raise ProjectError(f"testbench file not found in the project: {testbench_file}")
    if top:
        roots = [top]
    elif testbench_file is not None:
        own = [u for u in project.units_of(testbench_file) if u.kind in ("module", "program")]
        inside = project.instantiated([testbench_file])
        roots = [u.name for u in own if u.name not in inside]
        if not roots:
            raise ProjectError(f"{testbench_file} declares no module that could be the testbench's top")
        if len(roots) > 1:
            notes.append(f"{testbench_file}: every uninstantiated module is a root: {', '.join(roots)}")
    else:
        assert testbench_module is not None
        roots = [testbench_module]
    _check_known(project, roots)
    seeds = [testbench_file] if testbench_file else []
    chosen = list(files) + [f for f in seeds if f not in files] if files is not None \
        else project.closure(roots, seeds)
    return project.compile_set(chosen, roots, notes)


def synthesis_set(project: Project, *, top: str | None, files: Sequence[str] | None) -> CompileSet:
    """Files and top for synthesis: the design that ``top`` (or the inferred root) needs."""
    notes: list[str] = []
    candidates = list(files) if files is not None else sorted(project.sources)
    modules = [u for p in candidates for u in project.sources[p].units if u.kind == "module"]
    if not modules:
        raise ProjectError("nothing to synthesise: the design has no modules (none outside a "
                           "disabled `ifdef, a comment or a testbench-only file)")
    if top is None:
        top = _design_root(project, candidates, notes)
    _check_known(project, [top])
    chosen = project.closure([top]) if files is None else candidates
    return project.compile_set(chosen, [top], notes)


def lint_set(project: Project, *, top: str | None, files: Sequence[str] | None) -> CompileSet:
    """Files to lint: what ``top`` needs, else every file (less those that are `include'd)."""
    if top:
        _check_known(project, [top])
    chosen = list(files) if files is not None else (
        project.closure([top]) if top else sorted(project.sources))
    if not chosen:
        raise ProjectError("the project has no Verilog/SystemVerilog (.v, .sv) files")
    return project.compile_set(chosen, [top] if top else [], [])


def _design_root(project: Project, candidates: Sequence[str], notes: list[str]) -> str:
    """The module with ports that nothing but a testbench instantiates (a testbench: a module
    without ports that nothing instantiates); the largest hierarchy when there are several."""
    modules = [u for p in candidates for u in project.sources[p].units if u.kind == "module"]
    instantiated = {i.module for u in modules for i in u.instances}
    benches = {u.name for u in modules if not u.ports and u.name not in instantiated}
    inside = {i.module for u in modules if u.name not in benches for i in u.instances}
    roots = [u for u in modules if u.name not in inside]
    design = [u for u in roots if u.ports]
    if not design:
        names = ", ".join(sorted(u.name for u in roots)) or "none"
        raise ProjectError("no design top found: every uninstantiated module has no ports (a "
                           f"testbench: {names}); set config.top")
    if len(design) > 1:
        # The largest hierarchy is the design; the others are usually helpers or leftovers.
        design.sort(key=lambda u: (-len(project.closure([u.name])), u.name))
        notes.append(f"top inferred as {design[0].name} (other roots: "
                     f"{', '.join(u.name for u in design[1:])}); set config.top to choose")
    return design[0].name


def _check_known(project: Project, names: Sequence[str]) -> None:
    for name in names:
        if name not in project.definitions:
            raise ProjectError(f"module {name} is not declared in any project file")


def _topological(items: Sequence[str], after: Mapping[str, set[str]],
                 rank: Callable[[str], tuple[int, str]]) -> list[str]:
    """Kahn's algorithm, smallest rank first; a cycle is broken in rank order."""
    waiting = {k: set(v) for k, v in after.items()}
    heap = [(rank(p), p) for p in items if not waiting[p]]
    heapq.heapify(heap)
    out: list[str] = []
    while len(out) < len(items):
        if not heap:  # a cycle: take the best-ranked remaining file
            rest = sorted((rank(p), p) for p in items if p not in out)
            heap = [rest[0]]
            waiting[rest[0][1]] = set()
        _, path = heapq.heappop(heap)
        if path in out:
            continue
        out.append(path)
        for other, deps in waiting.items():
            if path in deps:
                deps.discard(path)
                if not deps and other not in out:
                    heapq.heappush(heap, (rank(other), other))
    return out


def load_project(paths: Iterable[str], read: Callable[[str], bytes | None], *,
                 defines: Mapping[str, str] | None = None, include_dirs: Sequence[str] = (),
                 verilog_2005: bool = False) -> Project:
    """Parse every compile-unit file among the project ``paths`` (read with ``read``).

    ``verilog_2005``: .v files are parsed as IEEE 1364-2005 (the job compiles them so);
    otherwise each file parses as SystemVerilog, or is marked as parsing only as Verilog-2005.
    """
    all_paths = sorted(paths)
    header_dirs = sorted({posixpath.dirname(p) or "." for p in all_paths
                          if p.lower().endswith(HEADER_SUFFIXES)})
    search = list(include_dirs) + [d for d in header_dirs if d not in include_dirs]
    sources: dict[str, SourceFile] = {}
    for path in all_paths:
        if not path.endswith(COMPILE_SUFFIXES):
            continue
        text = read(path)
        if text is None:
            continue
        sources[path] = parse_source(path, text, defines=defines,
                                     include_dirs=[d for d in search if d != "."] + [""],
                                     read_include=read,
                                     language="verilog-2005" if verilog_2005 and path.endswith(".v")
                                     else None)
    return Project(sources=sources, header_dirs=tuple(header_dirs), include_dirs=tuple(include_dirs))
