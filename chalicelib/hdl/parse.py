"""Parse one Verilog/SystemVerilog source file into its design units, with slang (pyslang).

This is the one HDL front end of a6hub: the runner's project model (``project.py``) and the
modules API both build on :func:`parse_source`. It is pure: it reads nothing but its arguments
(an ``include`` is read through the ``read_include`` callback, never from the host's disk), and
it never raises on bad input — a file that does not parse gives what could be read plus
diagnostics.

The parse is slang's preprocessor and parser (IEEE 1800-2017 syntax, or IEEE 1364-2005 keywords
for a Verilog file that only parses so: a port named ``do``); no elaboration. Widths are computed
when a range is a constant expression of literals and the unit's own parameter defaults.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pyslang
from pyslang import parsing as sp
from pyslang import syntax as sx

from chalicelib.hdl.consteval import evaluate

# Syntax nodes are read by their kind's attributes, which the stubs do not type per kind.
Node = Any


SK = sx.SyntaxKind
TK = sp.TokenKind

# Virtual folder that the project's files are given to slang under. Nothing is read from it:
# every file slang opens is handed to it first (SourceManager.assignText); see _resolve_includes.
_ROOT = "/.a6hub-project"
_MAX_INCLUDE_DEPTH = 16
SV = "systemverilog"
V2005 = "verilog-2005"
_LANGUAGE_VERSION = {SV: pyslang.LanguageVersion.v1800_2017, V2005: pyslang.LanguageVersion.v1364_2005}

FILE_TASKS = ("$readmemh", "$readmemb", "$fopen", "$dumpfile")
DUMP_TASKS = ("$dumpfile", "$dumpvars")


@dataclass(frozen=True)
class Port:
    """A port of a unit. ``direction``: input|output|inout|ref|interface; ``range`` as written."""

    name: str
    direction: str
    width: int | None
    range: str | None
    type: str | None


@dataclass(frozen=True)
class Parameter:
    """A parameter (``local`` for localparam) with its default expression as written."""

    name: str
    default: str | None
    type: str | None
    local: bool


@dataclass(frozen=True)
class Instance:
    """An instantiation inside a unit: the instantiated module/interface/primitive, its name."""

    module: str
    name: str
    line: int


@dataclass(frozen=True)
class Unit:
    """A design unit: module, interface, package, program or primitive (UDP).

    ``path`` is the file holding its text: the parsed file, or a header it `include`s.
    ``timescale`` is the `timescale in force where the unit starts ("1ns/1ps"), "timeunit"
    for a unit that declares its own, None when none is set in this file before it.
    ``interfaces`` are the interface names used as port types.
    """

    kind: str
    name: str
    start_line: int
    end_line: int
    ports: tuple[Port, ...]
    parameters: tuple[Parameter, ...]
    instances: tuple[Instance, ...]
    imports: tuple[str, ...]
    path: str = ""
    timescale: str | None = None
    interfaces: tuple[str, ...] = ()


@dataclass(frozen=True)
class Diagnostic:
    """A problem found while parsing: ``severity`` is "error" or "warning"; 1-based line/column."""

    path: str
    line: int
    column: int
    severity: str
    message: str


@dataclass(frozen=True)
class FileRef:
    """A string literal file name passed to a system task ($readmemh, $fopen, $dumpfile...)."""

    task: str
    name: str
    path: str
    line: int


@dataclass(frozen=True)
class SourceFile:
    """What one file declares and needs.

    ``includes``: the `include targets as written; ``included``: the project paths they resolved
    to (nested ones too). ``dumps``: live code calls $dumpfile/$dumpvars (not in a comment or a
    disabled `ifdef). ``language``: the standard the file parses under (SV unless it only parses
    as Verilog-2005). ``timescale``: a `timescale directive is in force somewhere in the file.
    """

    path: str
    units: tuple[Unit, ...]
    includes: tuple[str, ...]
    dumps: bool
    diagnostics: tuple[Diagnostic, ...]
    included: tuple[str, ...] = ()
    file_refs: tuple[FileRef, ...] = ()
    language: str = SV
    timescale: bool = False
    include_bases: tuple[str, ...] = ()


def decode(text: str | bytes) -> str:
    """Source text as str: UTF-8 (invalid bytes replaced), without a BOM, CRLF/CR as LF."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    text = text.removeprefix("\ufeff")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def parse_source(
    path: str,
    text: str | bytes,
    *,
    defines: Mapping[str, str] | None = None,
    include_dirs: Sequence[str] = (),
    read_include: Callable[[str], str | bytes | None] | None = None,
    language: str | None = None,
) -> SourceFile:
    """Parse the file at project path ``path`` (POSIX, relative) with content ``text``.

    ``defines`` are `define'd before the file (value "" defines the name as empty).
    ``include_dirs`` are project folders searched for `include targets after the including
    file's own folder (as slang, Icarus and Verilator do). ``read_include(project_path)``
    returns a file's content or None when there is no such file; without it no include is
    found. An include that would leave the project (absolute, ``..`` past the root) is refused
    with a diagnostic. ``language``: "systemverilog" or "verilog-2005"; None tries SV first and
    falls back to Verilog-2005 keywords when only that parses clean.
    """
    main = decode(text)
    langs = [language] if language in _LANGUAGE_VERSION else [SV, V2005]
    best: SourceFile | None = None
    for lang in langs:
        try:
            parsed = _Parse(path, main, defines or {}, include_dirs, read_include, lang).run()
        except (AttributeError, TypeError, ValueError, RuntimeError) as e:
            # A syntax shape the extraction does not know must not fail a job or a request.
            parsed = SourceFile(path=path, units=(), includes=(), dumps=False, language=lang,
                                diagnostics=(Diagnostic(path, 1, 1, "error", f"not understood: {e}"),))
        errors = sum(d.severity == "error" for d in parsed.diagnostics)
        if best is None or errors < sum(d.severity == "error" for d in best.diagnostics):
            best = parsed
        if errors == 0:
            break
    assert best is not None
    return best


def _virtual(path: str) -> str:
    return posixpath.normpath(posixpath.join(_ROOT, path))


def _project_path(vpath: str) -> str | None:
    if vpath == _ROOT or not vpath.startswith(_ROOT + "/"):
        return None
    return vpath[len(_ROOT) + 1 :]


@dataclass
class _Parse:
    path: str
    main: str
    defines: Mapping[str, str]
    include_dirs: Sequence[str]
    read_include: Callable[[str], str | bytes | None] | None
    language: str
    texts: dict[str, str] = field(default_factory=dict)
    extra: list[Diagnostic] = field(default_factory=list)
    bases: list[str] = field(default_factory=list)

    def run(self) -> SourceFile:
        main_v = _virtual(self.path)
        self.texts = {main_v: self.main}
        tree, sm = self._parse(main_v, 0)
        for depth in range(1, _MAX_INCLUDE_DEPTH + 2):
            if not self._resolve_includes(tree, sm):
                break
            tree, sm = self._parse(main_v, depth)
        parsed = _Extract(self.path, tree, sm, self.texts, self.language).source_file(self.extra)
        return replace(parsed, include_bases=tuple(dict.fromkeys(self.bases)))

    def _parse(self, main_v: str, depth: int) -> tuple[sx.SyntaxTree, pyslang.SourceManager]:
        sm = pyslang.SourceManager()
        for vpath, text in self.texts.items():
            if vpath != main_v:
                sm.assignText(vpath, text)
        pre = sp.PreprocessorOptions()
        pre.maxIncludeDepth = depth
        pre.languageVersion = _LANGUAGE_VERSION[self.language]
        pre.additionalIncludePaths = [_virtual(d) for d in self.include_dirs]
        pre.predefines = [f"{k}={v}" if v != "" else k for k, v in self.defines.items()]
        parser = sp.ParserOptions()
        parser.languageVersion = _LANGUAGE_VERSION[self.language]
        bag = pyslang.Bag([pre, parser])
        tree = sx.SyntaxTree.fromFileInMemory(self.texts[main_v], sm, self.path, main_v, bag)
        return tree, sm

    def _resolve_includes(self, tree: sx.SyntaxTree, sm: pyslang.SourceManager) -> bool:
        """Hand slang the files of the includes it has not opened yet; True when there were any.

        An include slang did not open is one at the depth limit of this round (or one that was
        not found, which was blanked out before this round). Each is looked up as slang will
        look it up next round — the includer's folder, then the include dirs — and either
        assigned, or blanked in its includer's text (with a diagnostic) so that slang never
        goes to the disk for it.
        """
        pending = False
        for inc in tree.getIncludeDirectives():
            if inc.buffer:
                continue
            pending = True
            loc = inc.syntax.sourceRange.start
            includer = str(sm.getFullPath(sm.getFullyExpandedLoc(loc).buffer))
            found = self._find_include(includer, inc.path)
            if found is None:
                self._blank(includer, inc, sm)
        return pending

    def _find_include(self, includer: str, name: str) -> str | None:
        if not name or name.startswith("/"):
            return None
        dirs = [posixpath.dirname(includer)] + [_virtual(d) for d in self.include_dirs]
        for folder in dirs:
            candidate = posixpath.normpath(posixpath.join(folder, name))
            rel = _project_path(candidate)
            if rel is None:
                return None
            content = self.texts.get(candidate)
            if content is None and self.read_include is not None:
                raw = self.read_include(rel)
                content = None if raw is None else decode(raw)
            if content is not None:
                self.texts[candidate] = content
                self.bases.append(_project_path(folder) or "")
                return candidate
        return None

    def _blank(self, includer: str, inc: sx.IncludeMetadata, sm: pyslang.SourceManager) -> None:
        rng = inc.syntax.sourceRange
        start = sm.getFullyExpandedLoc(rng.start).offset
        text = self.texts[includer]
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        self.texts[includer] = text[:start] + " " * (end - start) + text[end:]
        where = _project_path(includer) or self.path
        line = text.count("\n", 0, start) + 1
        outside = inc.path.startswith("/") or ".." in inc.path.split("/")
        reason = "is outside the project" if outside else "was not found"
        self.extra.append(
            Diagnostic(where, line, start - text.rfind("\n", 0, start), "error",
                       f"include file '{inc.path}' {reason}")
        )


class _Extract:
    """Walks a syntax tree for its units; reads only members, never whole expressions."""

    def __init__(self, path: str, tree: sx.SyntaxTree, sm: pyslang.SourceManager,
                 texts: Mapping[str, str], language: str) -> None:
        self.path = path
        self.tree = tree
        self.sm = sm
        self.language = language
        self.all_text = "".join(texts.values())
        self.timescale: str | None = None
        self.any_timescale = False
        self.file_imports: list[str] = []
        self.refs: list[FileRef] = []
        self.dumps = False
        self.buffers: dict[int, str] = {}

    def source_file(self, extra: Sequence[Diagnostic]) -> SourceFile:
        units = []
        root: Node = self.tree.root
        for member in root.members:
            self._directives(member.getFirstToken())
            if member.kind == SK.PackageImportDeclaration:
                self.file_imports.extend(_import_names(member))
            unit = self._unit(member)
            if unit is not None:
                units.append(unit)
        self._directives(root.endOfFile)
        includes = tuple(i.path for i in self.tree.getIncludeDirectives())
        included = tuple(
            p for i in self.tree.getIncludeDirectives() if i.buffer
            for p in [_project_path(str(self.sm.getFullPath(i.buffer.id)))] if p is not None
        )
        return SourceFile(
            path=self.path, units=tuple(units), includes=includes, dumps=self.dumps,
            diagnostics=tuple(self._diagnostics()) + tuple(extra), included=included,
            file_refs=tuple(self.refs), language=self.language, timescale=self.any_timescale,
        )

    # -- locations and diagnostics

    def text(self, node: Node) -> str:
        """A node's text without the comments and directives before it (``str(node)`` carries
        them: on picorv32.v that is most of the parse's time). Macro-expanded text as expanded."""
        rng = node.sourceRange
        start, end = rng.start, rng.end
        if start.buffer == end.buffer and self.sm.isFileLoc(start):
            buffer = self.buffers.get(start.buffer.id)
            if buffer is None:
                buffer = self.buffers[start.buffer.id] = self.sm.getSourceText(start.buffer)
            return buffer[start.offset:end.offset].strip()
        return str(node).strip()

    def _where(self, loc: pyslang.SourceLocation) -> tuple[str, int, int]:
        loc = self.sm.getFullyExpandedLoc(loc)
        vpath = str(self.sm.getFullPath(loc.buffer))
        return (_project_path(vpath) or self.path, self.sm.getLineNumber(loc),
                self.sm.getColumnNumber(loc))

    def _diagnostics(self) -> Iterator[Diagnostic]:
        engine = pyslang.DiagnosticEngine(self.sm)
        for diag in self.tree.diagnostics:
            if diag.code in _DROPPED:
                continue
            path, line, column = self._where(diag.location)
            severity = "error" if diag.isError() else "warning"
            yield Diagnostic(path, line, column, severity, engine.formatMessage(diag))

    def _directives(self, token: sp.Token | None) -> None:
        if token is None:
            return
        for trivia in token.trivia:
            if trivia.kind != sp.TriviaKind.Directive:
                continue
            node: Node = trivia.syntax()
            if node is not None and node.kind == SK.TimeScaleDirective:
                self.timescale = "/".join(
                    str(part).strip() for part in (node.timeUnit, node.timePrecision)
                )
                self.any_timescale = True

    # -- units

    def _unit(self, member: Node) -> Unit | None:
        kind = _UNIT_KINDS.get(member.kind)
        if kind is None:
            return None
        if kind == "primitive":
            name, header = member.name.valueText, None
        else:
            header = member.header
            name = header.name.valueText
        if not name:
            return None
        path, start, _ = self._where(member.sourceRange.start)
        _, end, _ = self._where(member.sourceRange.end)
        body = _UnitBody(self, member, header)
        return Unit(
            kind=kind, name=name, start_line=start, end_line=end, ports=body.ports(),
            parameters=tuple(body.parameters), instances=tuple(body.instances),
            imports=tuple(dict.fromkeys(self.file_imports + body.imports)), path=path,
            timescale="timeunit" if body.timeunit else self.timescale,
            interfaces=tuple(dict.fromkeys(body.interfaces)),
        )

    def calls_in(self, node: Node) -> tuple[list[str], list[tuple[str, str, int]]]:
        """Package references (pkg::x) and system-task file literals under ``node``.

        slang's visitor filters node kinds in C++ (lookup_table), so Python runs only for the
        two kinds wanted, not for each of the ~28,000 nodes of picorv32.v.
        """
        packages: list[str] = []
        refs: list[tuple[str, str, int]] = []
        table: dict[SK, Callable[[Node], None]] = {}
        if "::" in self.all_text:
            table[SK.ScopedName] = lambda n: self._scoped(n, packages)
        if any(t in self.all_text for t in FILE_TASKS + DUMP_TASKS):
            table[SK.InvocationExpression] = lambda n: self._call(n, refs)
        if table:
            node.visit(lookup_table=table)
        return packages, refs

    @staticmethod
    def _scoped(node: Node, packages: list[str]) -> None:
        if node.separator.kind == TK.DoubleColon and node.left.kind == SK.IdentifierName:
            packages.append(node.left.identifier.valueText)

    def _call(self, node: Node, refs: list[tuple[str, str, int]]) -> None:
        left = node.left
        if left.kind != SK.SystemName:
            return
        task = left.systemIdentifier.valueText
        if task in DUMP_TASKS:
            self.dumps = True
        if task not in FILE_TASKS or node.arguments is None:
            return
        args = [_unwrap(a.expr) for a in node.arguments.parameters if a.kind == SK.OrderedArgument]
        if args and args[0].kind == SK.StringLiteralExpression:
            literal = args[0].literal
            path, line, _ = self._where(literal.location)
            refs.append((task, str(literal.value), line))
            self.refs.append(FileRef(task, str(literal.value), path, line))


# Reported by _Parse._blank with the project path; and a pedantic note no tool makes.
_DROPPED = (pyslang.Diags.CouldNotOpenIncludeFile, pyslang.Diags.NewlineEOF)

_UNIT_KINDS = {
    SK.ModuleDeclaration: "module",
    SK.InterfaceDeclaration: "interface",
    SK.PackageDeclaration: "package",
    SK.ProgramDeclaration: "program",
    SK.UdpDeclaration: "primitive",
}

_GENERATE_CHILDREN = {
    SK.GenerateRegion: ("members",),
    SK.GenerateBlock: ("members",),
    SK.LoopGenerate: ("block",),
    SK.IfGenerate: ("block", "elseClause"),
    SK.ElseClause: ("clause",),
    SK.CaseGenerate: ("items",),
    SK.StandardCaseItem: ("clause",),
    SK.DefaultCaseItem: ("clause",),
}

_BUILTIN_WIDTH = {"integer": 32, "int": 32, "shortint": 16, "longint": 64, "byte": 8, "time": 64}


def _unwrap(expr: Node) -> Node:
    """The expression inside an argument (slang parses call arguments as property exprs)."""
    while expr.kind in (SK.SimplePropertyExpr, SK.SimpleSequenceExpr):
        expr = expr.expr
    return expr


def _import_names(decl: Node) -> list[str]:
    return [item.package.valueText for item in decl.items if item.kind == SK.PackageImportItem]


class _UnitBody:
    """Ports, parameters, instances and imports of one unit."""

    def __init__(self, extract: _Extract, member: Node, header: Node | None) -> None:
        self.extract = extract
        self.header = header
        self.parameters: list[Parameter] = []
        self.instances: list[Instance] = []
        self.imports: list[str] = []
        self.interfaces: list[str] = []
        self.port_decls: dict[str, Port] = {}
        self.timeunit = False
        self.values: dict[str, int] = {}
        if header is not None:
            for decl in header.imports:
                self.imports.extend(_import_names(decl))
            if header.parameters is not None:
                for decl in header.parameters.declarations:
                    self._parameter(decl, local=None)
        members = member.members if header is not None else ()
        self._members(members)
        packages, _ = extract.calls_in(member)
        self.imports.extend(packages)

    def _members(self, members: Iterable[Node]) -> None:
        for m in members:
            kind = m.kind
            if kind == SK.HierarchyInstantiation:
                self._instances(m)
            elif kind == SK.ParameterDeclarationStatement:
                self._parameter(m.parameter, local=None)
            elif kind == SK.PackageImportDeclaration:
                self.imports.extend(_import_names(m))
            elif kind == SK.PortDeclaration:
                self._port_declaration(m)
            elif kind == SK.TimeUnitsDeclaration:
                self.timeunit = True
            elif kind in _GENERATE_CHILDREN:
                self._generate(m)

    def _generate(self, node: Node) -> None:
        for attr in _GENERATE_CHILDREN[node.kind]:
            child = getattr(node, attr)
            if child is None:
                continue
            self._members([child] if isinstance(child, sx.SyntaxNode) else child)

    def _instances(self, node: Node) -> None:
        module = node.type.valueText
        for inst in node.instances:
            if inst.kind != SK.HierarchicalInstance:
                continue
            name = inst.decl.name.valueText if inst.decl is not None else ""
            _, line, _ = self.extract._where(inst.sourceRange.start)
            self.instances.append(Instance(module, name, line))

    def _parameter(self, decl: Node, local: bool | None) -> None:
        if decl.kind not in (SK.ParameterDeclaration, SK.TypeParameterDeclaration):
            return
        is_local = decl.keyword.kind == TK.LocalParamKeyword if local is None else local
        if decl.kind == SK.TypeParameterDeclaration:
            for d in decl.declarators:
                if d.kind == SK.TypeAssignment:
                    default = self.extract.text(d.assignment.type) if d.assignment is not None else None
                    self.parameters.append(Parameter(d.name.valueText, default, "type", is_local))
            return
        ptype = self.extract.text(decl.type) or None
        for d in decl.declarators:
            if d.kind != SK.Declarator:
                continue
            init = d.initializer
            default = self.extract.text(init.expr) if init is not None else None
            if init is not None:
                value = evaluate(init.expr, self.values)
                if value is not None:
                    self.values[d.name.valueText] = value
            self.parameters.append(Parameter(d.name.valueText, default, ptype, is_local))

    # -- ports

    def ports(self) -> tuple[Port, ...]:
        if self.header is None or self.header.ports is None:
            return ()
        plist = self.header.ports
        if plist.kind == SK.AnsiPortList:
            return tuple(self._ansi_ports(plist))
        if plist.kind == SK.NonAnsiPortList:
            return tuple(self._non_ansi_ports(plist))
        return ()

    def _ansi_ports(self, plist: Node) -> Iterator[Port]:
        previous = Port("", "inout", 1, None, None)
        for p in plist.ports:
            if p.kind == SK.ImplicitAnsiPort:
                port = self._ansi_port(p.header, p.declarator.name.valueText, previous)
            elif p.kind == SK.ExplicitAnsiPort:
                direction = p.direction.valueText or previous.direction
                port = Port(p.name.valueText, direction, None, None, None)
            else:
                continue
            previous = port
            if port.name:  # `(input a,,)`: an empty port has no name to show
                yield port

    def _ansi_port(self, header: Node, name: str, previous: Port) -> Port:
        if header.kind == SK.InterfacePortHeader:
            iface = header.nameOrKeyword.valueText
            if header.nameOrKeyword.kind != TK.InterfaceKeyword:
                self.interfaces.append(iface)
            modport = f".{header.modport.member.valueText}" if header.modport is not None else ""
            return Port(name, "interface", None, None, iface + modport)
        direction = header.direction.valueText if header.direction else ""
        kind_token = getattr(header, "netType", None) or getattr(header, "varKeyword", None)
        data_type = header.dataType
        implicit_all = (not direction and not (kind_token and kind_token.valueText)
                        and data_type.kind == SK.ImplicitType and not list(data_type.dimensions)
                        and not data_type.signing)
        if implicit_all:
            return Port(name, previous.direction, previous.width, previous.range, previous.type)
        width, rng, dtype = self._data_type(data_type)
        words = [t for t in (kind_token.valueText if kind_token else "", dtype or "") if t]
        return Port(name, direction or previous.direction, width, rng, " ".join(words) or None)

    def _data_type(self, dtype: Node) -> tuple[int | None, str | None, str | None]:
        """(width, packed range as written, type word) of a port's data type."""
        if dtype.kind == SK.NamedType:
            return None, None, self.extract.text(dtype.name)
        dims = list(getattr(dtype, "dimensions", None) or [])
        words = []
        keyword = getattr(dtype, "keyword", None)
        if keyword is not None:
            words.append(keyword.valueText)
        signing = getattr(dtype, "signing", None)
        if signing:
            words.append(signing.valueText)
        if dtype.kind not in (SK.ImplicitType,) and keyword is None:
            words.append(self.extract.text(dtype))
        rng = "".join(self.extract.text(d) for d in dims) or None
        base = _BUILTIN_WIDTH.get(words[0]) if words else None
        width: int | None = base if base is not None else 1
        for d in dims:
            width = _times(width, self._dimension_width(d))
        return width, rng, " ".join(words) or None

    def _dimension_width(self, dim: Node) -> int | None:
        spec = dim.specifier
        if spec is None or spec.kind != SK.RangeDimensionSpecifier:
            return None
        sel = spec.selector
        if sel.kind == SK.SimpleRangeSelect:
            left, right = evaluate(sel.left, self.values), evaluate(sel.right, self.values)
            return None if left is None or right is None else abs(left - right) + 1
        if sel.kind == SK.BitSelect:  # [N] is N elements
            return evaluate(sel.expr, self.values)
        return None

    def _port_declaration(self, decl: Node) -> None:
        previous = Port("", "inout", 1, None, None)
        for d in decl.declarators:
            if d.kind == SK.Declarator:
                port = self._ansi_port(decl.header, d.name.valueText, previous)
                self.port_decls[port.name] = port

    def _non_ansi_ports(self, plist: Node) -> Iterator[Port]:
        for p in plist.ports:
            if p.kind != SK.ImplicitNonAnsiPort or p.expr is None:
                continue
            expr = p.expr
            name = expr.name.valueText if expr.kind == SK.PortReference else self.extract.text(expr)
            yield self.port_decls.get(name, Port(name, "inout", None, None, None))


def _times(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a * b
