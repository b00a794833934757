"""Module requests and responses (upstream a6hub's `schemas/module.py` shapes, plus ours)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from chalicelib.schemas.common import PublicModel, RequestModel

# Upstream's ModuleType values, plus the SystemVerilog unit kinds it has no name for.
ModuleType = Literal[
    "verilog_module", "verilog_package", "verilog_interface", "verilog_program",
    "verilog_primitive", "python_class", "python_function", "spice_subcircuit",
]
MODULE_TYPES: tuple[str, ...] = ModuleType.__args__  # type: ignore[attr-defined]
#: slang's unit kinds (chalicelib.hdl.parse.Unit.kind) -> module_type
TYPE_OF_KIND = {
    "module": "verilog_module", "package": "verilog_package", "interface": "verilog_interface",
    "program": "verilog_program", "primitive": "verilog_primitive",
}


class ModuleUpdate(RequestModel):
    """What a user may change: the description. `name` and `module_metadata` come from the
    source and are accepted only unchanged (upstream's client may send the whole module back)."""

    name: str | None = Field(default=None, max_length=512)
    description: str | None = Field(default=None, max_length=10_000)
    module_metadata: dict[str, Any] | None = None


class ModulePublic(PublicModel):
    """Upstream's ModuleWithFile: the module with its file's name and path."""

    id: int
    name: str
    module_type: str
    module_metadata: dict[str, Any] | None = None
    start_line: int | None = None
    end_line: int | None = None
    description: str | None = None
    file_id: int
    project_id: int
    filename: str
    filepath: str
    created_at: str
    updated_at: str | None = None


class DiagnosticPublic(PublicModel):
    """One problem the HDL front end found in a file (lines and columns 1-based).

    `file_id` is the file that was parsed; `filepath` is where the problem is (an included
    header's path when it is in there).
    """

    file_id: int
    filepath: str
    line: int
    column: int
    severity: str  # "error" | "warning"
    message: str


class ModuleParseResult(PublicModel):
    """Upstream's ModuleParseResult, plus `diagnostics` with file, line and column.

    `success` is false when a file had errors (its modules are what could still be read);
    `errors` and `warnings` are the same diagnostics as readable strings "path:line:col: msg".
    """

    success: bool
    modules_found: int
    modules: list[ModulePublic] = []
    errors: list[str] = []
    warnings: list[str] = []
    diagnostics: list[DiagnosticPublic] = []
    files_parsed: int = 0
