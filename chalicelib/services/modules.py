"""Design units of a project: extracted from its HDL files by slang, kept current, listed.

Consistency with the files table: every change to a file row is followed, in the same request
(or runner task), by `refresh_file` for that file (files API: `services/files.py`; push,
restore, import and fork: `services/git/sync.sync_files`). A refresh reads the file row, parses
the content, and rewrites the file's module rows in transactions that check the file row still
has the version that was parsed; when it does not, a newer change happened and its own refresh
wins. A refresh that fails (or a process that dies between the file write and the refresh)
leaves the file's modules stale until the file changes again or someone calls `reparse`.

Cost bound: only files whose names end in an HDL suffix and that are at most MAX_PARSE_BYTES are
parsed; `include targets are read from the project (at most MAX_INCLUDES per file). Other files
have no modules. Unchanged results cost one Query and no writes.

Module ids stay stable across re-parses as long as the file keeps a unit of that kind and name,
and so does the users' own `description` of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from pynamodb.exceptions import TransactWriteError
from pynamodb.expressions.condition import Condition
from pynamodb.transactions import TransactWrite

from chalicelib import storage
from chalicelib.errors import NotFound, Unprocessable
from chalicelib.ids import ID_ATTEMPTS, distinct_number_id, is_number_id
from chalicelib.logs import SERVICE
from chalicelib.models.base import condition_failed, transaction_connection, utcnow_iso
from chalicelib.models.files import File
from chalicelib.models.modules import Module
from chalicelib.schemas.modules import (
    MODULE_TYPES,
    TYPE_OF_KIND,
    DiagnosticPublic,
    ModuleParseResult,
    ModulePublic,
    ModuleUpdate,
)
from chalicelib.services.identity import Caller
from chalicelib.services.paging import Page, decode_cursor, encode_cursor
from chalicelib.services.projects import authorize

if TYPE_CHECKING:  # slang is imported on first parse: most requests never need it
    from chalicelib.hdl.parse import SourceFile, Unit

logger = Logger(service=SERVICE, child=True)

HDL_SUFFIXES = (".v", ".vh", ".sv", ".svh", ".vlog", ".verilog")
MAX_PARSE_BYTES = 1024 * 1024
MAX_INCLUDES = 32
MAX_LIST_ENTRIES = 2000  # ports / parameters / instances kept per module (item size)
MAX_SEARCH_CHARS = 200
REFRESH_THREADS = 8
TRANSACTION_MODULES = 50  # module writes per transaction, plus the file's condition check


class _Superseded(Exception):
    """The file changed (or went away) while its modules were being written."""


@dataclass
class FileParse:
    """What one refresh produced for one file."""

    modules: list[Module] = field(default_factory=list)
    diagnostics: list[DiagnosticPublic] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    parsed: bool = False


def is_hdl(path: str) -> bool:
    return path.lower().endswith(HDL_SUFFIXES)


def module_public(m: Module) -> ModulePublic:
    return ModulePublic(
        id=int(m.id), name=m.name, module_type=m.module_type, module_metadata=m.module_metadata,
        start_line=_int_or_none(m.start_line), end_line=_int_or_none(m.end_line),
        description=m.description, file_id=int(m.file_id), project_id=int(m.project_id),
        filename=m.filename, filepath=m.filepath, created_at=m.created_at,
        updated_at=m.updated_at)


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


# --- reads ---------------------------------------------------------------------------------------


def list_modules(caller: Caller | None, project_id: int, module_type: str | None,
                 search: str | None, limit: int, cursor: str | None) -> Page[ModulePublic]:
    """One page (one Query) of a project's modules, oldest first, optionally filtered by
    `module_type` (exact) and `search` (case-insensitive substring of the name) on the server.

    A filtered page may hold fewer than `limit` modules and still have a next cursor.
    """
    if module_type is not None and module_type not in MODULE_TYPES:
        raise Unprocessable(f"module_type must be one of: {', '.join(MODULE_TYPES)}")
    if search is not None and len(search) > MAX_SEARCH_CHARS:
        raise Unprocessable(f"search is longer than {MAX_SEARCH_CHARS} characters")
    authorize(caller, project_id, "read")
    start = decode_cursor(cursor, {"project_id": project_id})
    condition: Condition | None = None
    if module_type:
        condition = Module.module_type == module_type
    if search:
        matches = Module.name_lower.contains(search.lower())
        condition = matches if condition is None else condition & matches
    result = Module.query(project_id, filter_condition=condition, page_size=limit,
                          last_evaluated_key=start)
    # One DynamoDB page, even when the filter kept fewer than `limit` items of it.
    page = next(result.page_iter)
    items = [module_public(Module.from_raw_data(raw)) for raw in page.get("Items", [])]
    return Page(items=items, next_cursor=encode_cursor(result.page_iter.last_evaluated_key))


def _load(project_id: int, module_id: int) -> Module:
    if not is_number_id(module_id):
        raise NotFound("Module not found")
    try:
        return Module.get(project_id, module_id)
    except Module.DoesNotExist as e:
        raise NotFound("Module not found") from e


def get_module(caller: Caller | None, project_id: int, module_id: int) -> ModulePublic:
    authorize(caller, project_id, "read")
    return module_public(_load(project_id, module_id))


def update_module(caller: Caller, project_id: int, module_id: int,
                  data: ModuleUpdate) -> ModulePublic:
    """Set a module's description (kept across re-parses while the unit keeps its name).

    `name` and `module_metadata` are what the source says; sending them changed is a 422 that
    says to edit the file instead.
    """
    authorize(caller, project_id, "write")
    record = _load(project_id, module_id)
    if data.name is not None and data.name != record.name:
        raise Unprocessable("a module's name comes from its source file; edit the file to rename it")
    if data.module_metadata is not None and data.module_metadata != record.module_metadata:
        raise Unprocessable("module_metadata comes from the source file; edit the file to change it")
    if "description" not in data.model_fields_set:
        return module_public(record)
    now = utcnow_iso()
    try:
        description = (Module.description.set(data.description) if data.description
                       else Module.description.remove())
        record.update(actions=[description, Module.updated_at.set(now)],
                      condition=Module.id.exists())
    except Exception as e:
        if condition_failed(e):
            raise NotFound("Module not found") from e
        raise
    return module_public(record)


def delete_module(caller: Caller, project_id: int, module_id: int) -> None:
    """Remove a module's row (and its description) until its file is parsed again."""
    authorize(caller, project_id, "write")
    record = _load(project_id, module_id)
    record.delete()



# --- parse on request ----------------------------------------------------------------------------


def parse_file(caller: Caller, project_id: int, file_id: int) -> ModuleParseResult:
    """Re-parse one file now and answer with its modules and diagnostics."""
    authorize(caller, project_id, "write")
    try:
        if not is_number_id(file_id):
            raise File.DoesNotExist()
        File.get(project_id, file_id)
    except File.DoesNotExist as e:
        raise NotFound("File not found") from e
    return _result([refresh_file(project_id, file_id)])


def reparse_project(caller: Caller, project_id: int) -> ModuleParseResult:
    """Re-parse every HDL file of the project and drop modules whose file is gone."""
    authorize(caller, project_id, "write")
    files = list(File.query(project_id, consistent_read=True))
    rows = list(Module.query(project_id, consistent_read=True))
    with_rows = {m.file_id for m in rows}
    wanted = [f.id for f in files if is_hdl(f.filepath) or f.id in with_rows]
    outcomes = _each(lambda file_id: refresh_file(project_id, file_id), wanted)
    known = {f.id for f in files}
    _delete_rows([m for m in rows if m.file_id not in known])
    return _result(outcomes)


def _result(outcomes: Sequence[FileParse]) -> ModuleParseResult:
    modules = [module_public(m) for o in outcomes for m in o.modules]
    diagnostics = [d for o in outcomes for d in o.diagnostics]
    errors = [_readable(d) for d in diagnostics if d.severity == "error"]
    warnings = [_readable(d) for d in diagnostics if d.severity != "error"]
    warnings += [w for o in outcomes for w in o.warnings]
    return ModuleParseResult(success=not errors, modules_found=len(modules), modules=modules,
                             errors=errors, warnings=warnings, diagnostics=diagnostics,
                             files_parsed=sum(o.parsed for o in outcomes))


def _readable(d: DiagnosticPublic) -> str:
    return f"{d.filepath}:{d.line}:{d.column}: {d.severity}: {d.message}"


# --- keeping modules current ---------------------------------------------------------------------


def refresh_quietly(project_id: int, file_ids: Iterable[int],
                    bodies: dict[str, bytes] | None = None) -> None:
    """`refresh_file` for each file, after a change that is already durable: never raises.

    `bodies` maps sha256 hex digests to content the caller already holds (saves the S3 read).
    """
    def one(file_id: int) -> None:
        try:
            refresh_file(project_id, file_id, bodies=bodies)
        except Exception:  # noqa: BLE001 - the file change stands; reparse repairs this
            logger.exception("could not refresh a file's modules",
                             extra={"project_id": project_id, "file_id": file_id})

    _each(one, list(dict.fromkeys(file_ids)))


def _each(work: Callable[[int], Any], file_ids: list[int]) -> list[Any]:
    """`work` for each file; several at once, since most of a refresh waits on DynamoDB."""
    if len(file_ids) <= 1:
        return [work(i) for i in file_ids]
    with ThreadPoolExecutor(max_workers=REFRESH_THREADS, thread_name_prefix="modules") as pool:
        return list(pool.map(work, file_ids))


def refresh_file(project_id: int, file_id: int,
                 bodies: dict[str, bytes] | None = None) -> FileParse:
    """Make the modules of one file follow the file's current row and content.

    A file that is gone, is not HDL or is larger than MAX_PARSE_BYTES ends with no modules.
    Diagnostics never raise; they are returned.
    """
    for _ in range(ID_ATTEMPTS):
        try:
            record = File.get(project_id, file_id, consistent_read=True)
        except File.DoesNotExist:
            _delete_rows(_rows_of(project_id, file_id))
            return FileParse()
        try:
            return _refresh(record, bodies or {})
        except _Superseded:
            continue  # read the newer row and parse that
    raise _Superseded(f"file {file_id} kept changing while its modules were written")


def _refresh(record: File, bodies: dict[str, bytes]) -> FileParse:
    outcome = FileParse()
    units: list[Unit] = []
    if not is_hdl(record.filepath):
        pass
    elif int(record.size_bytes) > MAX_PARSE_BYTES:
        outcome.warnings.append(f"{record.filepath}: larger than {MAX_PARSE_BYTES} bytes; "
                                "not parsed for modules")
    else:
        data = bodies.get(record.sha256)
        if data is None:
            data = _body(record)
        try:
            parsed = _parse(record, data)
        except Exception:  # noqa: BLE001 - a front-end bug must not become a 500
            # The rows stay as they were; the answer says why.
            logger.exception("the HDL front end failed", extra={"file_id": record.id})
            outcome.modules = _rows_of(record.project_id, record.id)
            outcome.diagnostics = [DiagnosticPublic(
                file_id=record.id, filepath=record.filepath, line=1, column=1, severity="error",
                message="the HDL front end could not read this file (an internal error)")]
            return outcome
        outcome.parsed = True
        # Units in an included header are that header's own (its parse lists them).
        units = [u for u in parsed.units if u.path in ("", record.filepath)]
        outcome.diagnostics = [
            DiagnosticPublic(file_id=record.id, filepath=d.path or record.filepath, line=d.line,
                             column=d.column, severity=d.severity, message=d.message)
            for d in parsed.diagnostics]
    outcome.modules = _reconcile(record, units)
    return outcome


def _body(record: File) -> bytes:
    try:
        return storage.get_bytes(record.s3_key)
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            raise _Superseded(record.id) from e  # an update replaced the body meanwhile
        raise


def _parse(record: File, data: bytes) -> SourceFile:
    from chalicelib.hdl.parse import parse_source

    # Includes resolve against the including file's folder, then the project root.
    return parse_source(record.filepath, data, include_dirs=("",),
                        read_include=_include_reader(record.project_id))


def _include_reader(project_id: int) -> Callable[[str], str | None]:
    """`include targets read from the project's files (at most MAX_INCLUDES lookups)."""
    seen: dict[str, str | None] = {}

    def read(path: str) -> str | None:
        if path not in seen:
            seen[path] = _project_text(project_id, path) if len(seen) < MAX_INCLUDES else None
        return seen[path]

    return read


def _project_text(project_id: int, path: str) -> str | None:
    from chalicelib.services.file_rows import find

    found = find(project_id, path)
    if found is None:
        return None
    if int(found.size_bytes) > MAX_PARSE_BYTES:
        return None
    try:
        return storage.get_bytes(found.s3_key).decode("utf-8", "replace")
    except ClientError:
        return None


def _rows_of(project_id: int, file_id: int) -> list[Module]:
    return list(Module.by_file.query(project_id, Module.file_key == str(file_id),
                                     consistent_read=True))


def _metadata(unit: Unit) -> dict[str, Any]:
    instances = list(dict.fromkeys(i.module for i in unit.instances))
    return {
        "ports": [{"name": p.name, "direction": p.direction, "width": p.width, "range": p.range,
                   "type": p.type} for p in unit.ports[:MAX_LIST_ENTRIES]],
        "parameters": [{"name": p.name, "default_value": p.default, "type": p.type,
                        "local": p.local} for p in unit.parameters[:MAX_LIST_ENTRIES]],
        "instances": instances[:MAX_LIST_ENTRIES],  # upstream: the modules it instantiates
        "instantiations": [{"module": i.module, "name": i.name, "line": i.line}
                           for i in unit.instances[:MAX_LIST_ENTRIES]],
        "imports": list(unit.imports[:MAX_LIST_ENTRIES]),
    }


def _derived(record: File, unit: Unit) -> dict[str, Any]:
    """The attributes a module row takes from its source (everything but id, description and
    timestamps)."""
    return {
        "file_key": str(record.id), "file_id": record.id, "filepath": record.filepath,
        "filename": record.filename, "name": unit.name, "name_lower": unit.name.lower(),
        "module_type": TYPE_OF_KIND.get(unit.kind, f"verilog_{unit.kind}"),
        "start_line": unit.start_line, "end_line": unit.end_line,
        "module_metadata": _metadata(unit), "source_sha256": record.sha256,
    }


def _same(row: Module, derived: dict[str, Any]) -> bool:
    return all(_norm(getattr(row, k)) == _norm(v) for k, v in derived.items())


def _norm(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


Write = tuple[str, Module, dict[str, Any]]  # ("create" | "update" | "delete", row, derived)


def _reconcile(record: File, units: list[Unit]) -> list[Module]:
    """Rewrite the file's rows to match `units`, keeping ids and descriptions by (type, name).

    A new row's id comes from `new_number_id` (distinct within the plan) and is written with
    `attribute_not_exists` on its key, in the transaction that also checks the file's version.
    A transaction refused for any other reason than a newer file version (an id that is taken,
    a concurrent refresh of the same file) is planned again from the rows as they now are, with
    fresh ids: `with_new_id`'s rule, for the several ids one transaction creates.
    """
    for _ in range(ID_ATTEMPTS):
        wanted, writes = _plan(record, units, _rows_of(record.project_id, record.id))
        try:
            _write(record, writes)
        except TransactWriteError as e:
            if _file_moved_on(record):
                raise _Superseded(record.id) from e
            continue  # an id collision or a concurrent refresh of this file: plan again
        return wanted
    raise _Superseded(f"could not write the modules of file {record.id}")


def _plan(record: File, units: list[Unit], existing: list[Module]) -> tuple[list[Module], list[Write]]:
    by_key: dict[tuple[str, str], Module] = {}
    spare: list[Module] = []
    for old in sorted(existing, key=lambda r: int(r.id)):
        key = (old.module_type, old.name)
        if key in by_key:
            spare.append(old)  # a duplicate (two concurrent first parses): drop it
        else:
            by_key[key] = old
    now = utcnow_iso()
    wanted: list[Module] = []
    writes: list[Write] = []
    taken = {int(r.id) for r in existing}
    seen: set[tuple[str, str]] = set()
    for unit in units:
        derived = _derived(record, unit)
        key = (derived["module_type"], unit.name)
        if key in seen:
            continue  # a unit defined twice in one file (slang reports it): the first counts
        seen.add(key)
        row = by_key.pop(key, None)
        if row is None:
            row = Module(record.project_id, distinct_number_id(taken), created_at=now, updated_at=now,
                         description=None, **derived)
            writes.append(("create", row, derived))
        elif not _same(row, derived):
            for name, value in derived.items():
                setattr(row, name, value)
            row.updated_at = now
            writes.append(("update", row, derived))
        wanted.append(row)
    writes += [("delete", row, {}) for row in [*by_key.values(), *spare]]
    return wanted, writes


def _write(record: File, writes: list[Write]) -> None:
    for chunk in _chunks(writes, TRANSACTION_MODULES):
        with TransactWrite(connection=transaction_connection()) as tx:
            # Written only while the file still is what was parsed.
            tx.condition_check(File, record.project_id, record.id,
                               condition=File.version == record.version)
            for kind, row, derived in chunk:
                if kind == "create":
                    tx.save(row, condition=Module.id.does_not_exist())
                elif kind == "update":
                    tx.update(row, actions=[
                        *(getattr(Module, name).set(value) for name, value in derived.items()),
                        Module.updated_at.set(row.updated_at)],
                        condition=Module.id.exists())
                else:
                    tx.delete(row)


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _file_moved_on(record: File) -> bool:
    try:
        current = File.get(record.project_id, record.id, consistent_read=True)
    except File.DoesNotExist:
        return True
    return current.version != record.version


def _delete_rows(rows: list[Module]) -> None:
    with Module.batch_write() as batch:
        for row in rows:
            batch.delete(row)


def sha256_map(bodies: Iterable[bytes]) -> dict[str, bytes]:
    """Content the caller holds, keyed as `refresh_quietly` wants it."""
    return {hashlib.sha256(b).hexdigest(): b for b in bodies}
