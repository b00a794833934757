"""Job configurations (simulation, synthesis, lint): every value that reaches a tool is checked here.

Tools never see a user value as a flag or a script: identifiers, project paths, define names and
values and plusargs follow narrow patterns, and the runner builds every argument and script itself
(runner/tools.py). Anything else is a 422 naming the field.
"""

from __future__ import annotations

import re
import sys
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from chalicelib.errors import Unprocessable, validation_message
from chalicelib.schemas.common import RequestModel

# Compile units the tools are given; headers (.vh/.svh) are found through include directories.
HDL_SUFFIXES = (".v", ".sv")
MAX_FILES = 500
MAX_DEFINES = 64
MAX_PLUSARGS = 32
MAX_SIM_TIME = 10**15

SUPPORTED_SIMULATORS = ("icarus", "verilator")
SYNTH_FAMILIES = ("generic", "ice40", "ecp5", "gowin", "xilinx", "nexus", "gatemate", "efinix", "intel")
LINT_TOOLS = ("verilator", "icarus")
JOB_TYPES = ("simulation", "synthesis", "lint", "formal", "cocotb", "build")

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
# Any name the files API accepts (spaces, non-ASCII letters) except one a tool could read as an
# option ('-', '+') or that a yosys script cannot quote ('"', '\\'); never a control character.
_SEGMENT = re.compile(r'[^\x00-\x1f\x7f"\\/.+-][^\x00-\x1f\x7f"\\/]{0,254}')
_DEFINE_VALUE = re.compile(r"[A-Za-z0-9_.'+-]{0,128}")
# A string literal value ("fw/prog.hex"): tools get argv, never a shell, so only the literal's
# own syntax matters: no quote, backslash or control character inside.
_DEFINE_STRING = re.compile(r'"[^"\\\x00-\x1f\x7f]{0,256}"')
MAX_INCLUDE_DIRS = 32
SV = "systemverilog"
V2005 = "verilog-2005"
_PLUSARG = re.compile(r"\+?([A-Za-z_][A-Za-z0-9_]{0,63})(=[A-Za-z0-9_.,:/+=-]{0,192})?")
_UNIT = r"(1|10|100)\s*(s|ms|us|ns|ps|fs)"
_TIMESCALE = re.compile(rf"{_UNIT}\s*/\s*{_UNIT}")


def _identifier(value: str) -> str:
    if not _IDENTIFIER.fullmatch(value):
        raise ValueError("must be a Verilog identifier (letters, digits, '_'; not starting with a digit)")
    return value


def _project_path(value: str) -> str:
    """A path inside the project, as stored by the files API; never absolute, never '..'."""
    if value.startswith("/") or "\\" in value:
        raise ValueError("must be a path relative to the project root using '/'")
    segments = value.split("/")
    if len(value) > 1024 or not all(segments):
        raise ValueError("must be a project file path such as 'rtl/cpu.v'")
    for segment in segments:
        if segment in (".", ".."):
            raise ValueError("must not contain '.' or '..' segments")
        if not _SEGMENT.fullmatch(segment):
            raise ValueError(
                f"segment {segment!r} must not start with '-', '+' or '.', nor hold quotes, "
                "backslashes or control characters"
            )
    return value


def _hdl_path(value: str) -> str:
    _project_path(value)
    if not value.endswith(HDL_SUFFIXES):
        raise ValueError(f"must be a Verilog/SystemVerilog file ({', '.join(HDL_SUFFIXES)})")
    return value


def _folder(value: str) -> str:
    """An include folder: a project path, or "." for the project root."""
    return value if value == "." else _project_path(value.rstrip("/"))


Identifier = Annotated[str, AfterValidator(_identifier)]
HdlPath = Annotated[str, AfterValidator(_hdl_path)]
Folder = Annotated[str, AfterValidator(_folder)]
FileList = Annotated[list[HdlPath], Field(min_length=1, max_length=MAX_FILES)]


class _JobConfig(RequestModel):
    files: FileList | None = None
    # `define NAME VALUE for every file: a number/identifier-like token or a string literal
    # ("\"fw/prog.hex\""); tools get them as argv (-DNAME=VALUE), never through a shell.
    defines: dict[str, str | int] = Field(default_factory=dict, max_length=MAX_DEFINES)
    # Folders searched for `include files, before those the runner finds by itself (every folder
    # that holds a .vh/.svh header, and wherever the parse found an include).
    include_dirs: list[Folder] = Field(default_factory=list, max_length=MAX_INCLUDE_DIRS)
    # The language standard: "systemverilog" compiles every file as IEEE 1800-2012 (the default);
    # "verilog-2005" compiles .v files as IEEE 1364-2005 (a port may be named `do`) and .sv as
    # SystemVerilog, with every tool.
    language: Literal["systemverilog", "verilog-2005"] = "systemverilog"

    @field_validator("files")
    @classmethod
    def _unique_files(cls, files: list[str] | None) -> list[str] | None:
        if files is not None and len(set(files)) != len(files):
            raise ValueError("lists a file twice")
        return files

    @field_validator("defines")
    @classmethod
    def _defines(cls, defines: dict[str, str | int]) -> dict[str, str | int]:
        for name, value in defines.items():
            _identifier(name)
            text = str(value)
            if not (_DEFINE_VALUE.fullmatch(text) or _DEFINE_STRING.fullmatch(text)):
                raise ValueError(
                    f"value of {name!r} must be a token (letters, digits, \"_.'+-\") or a string "
                    "literal in double quotes without quotes, backslashes or control characters")
        return defines


def _plusarg_list(plusargs: list[str]) -> list[str]:
    cleaned = []
    for arg in plusargs:
        if not _PLUSARG.fullmatch(arg):
            raise ValueError(
                f"{arg!r} must look like 'name' or 'name=value' (value: letters, digits, '_.,:/+=-')"
            )
        cleaned.append(arg.removeprefix("+"))
    return cleaned


def _timescale_value(value: str | None) -> str | None:
    if value is None:
        return None
    if not _TIMESCALE.fullmatch(value.strip()):
        raise ValueError("must look like '1ns/1ps' (1, 10 or 100 of s, ms, us, ns, ps, fs)")
    return re.sub(r"\s+", "", value)


class SimulationConfig(_JobConfig):
    """Icarus Verilog (iverilog -g2012 + vvp) or Verilator --binary."""

    simulator: Literal["icarus", "verilator"] = "icarus"
    # A project file holding the testbench ("tb/top_tb.v") or the name of its module ("top_tb").
    testbench: str = Field(min_length=1, max_length=1024)
    # The module elaborated as the root; defaults to the testbench module.
    top: Identifier | None = None
    plusargs: list[str] = Field(default_factory=list, max_length=MAX_PLUSARGS)
    # Default `timescale for files that declare none, e.g. "1ns/1ps"; without it 1ns/1ps, the
    # same under Icarus (a `timescale file before each such file) and Verilator (--timescale).
    timescale: str | None = None
    # Simulated time after which the run is stopped, in units of `timescale` (default 1 ns).
    max_sim_time: int | None = Field(default=None, ge=1, le=MAX_SIM_TIME)
    waveform: bool = False
    # The web client's name for `waveform`; folded into it (never stored under this name).
    dump_waves: bool | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _dump_waves_is_waveform(self) -> SimulationConfig:
        if self.dump_waves is None:
            return self
        if "waveform" in self.model_fields_set and self.waveform != self.dump_waves:
            raise ValueError("waveform and dump_waves name the same setting and disagree; give one")
        self.waveform = self.dump_waves
        return self

    @field_validator("testbench")
    @classmethod
    def _testbench(cls, value: str) -> str:
        if value.endswith(HDL_SUFFIXES):
            return _hdl_path(value)
        if _IDENTIFIER.fullmatch(value):
            return value
        raise ValueError(
            "must be a project file ending in .v/.sv or the name of the testbench module"
        )

    @field_validator("plusargs")
    @classmethod
    def _plusargs(cls, plusargs: list[str]) -> list[str]:
        return _plusarg_list(plusargs)

    @field_validator("timescale")
    @classmethod
    def _timescale(cls, value: str | None) -> str | None:
        return _timescale_value(value)

    @property
    def testbench_file(self) -> str | None:
        return self.testbench if self.testbench.endswith(HDL_SUFFIXES) else None


class SynthesisConfig(_JobConfig):
    """Yosys: `synth -top <top>` or `synth_<family>`; outputs stat JSON and JSON/Verilog netlists."""

    top: Identifier | None = None
    family: Literal["generic", "ice40", "ecp5", "gowin", "xilinx", "nexus", "gatemate", "efinix",
                    "intel"] = "generic"
    flatten: bool = True
    # Draw the synthesised top as `schematic.svg` (yosys `show` through Graphviz `dot`), up to
    # runner/schematic.py's caps on cells and bytes; past them the job says why there is none.
    schematic: bool = False


class LintConfig(_JobConfig):
    """Verilator --lint-only -Wall (default) or Icarus Verilog's elaboration warnings."""

    tool: Literal["verilator", "icarus"] = "verilator"
    top: Identifier | None = None


# --- formal ------------------------------------------------------------------------------------
# The runner writes every script itself (runner/kinds/formal.py) from these fields: there is no way to
# hand it a `.sby` file or a Yosys script, both of which run arbitrary commands (`!cmd`, a
# `[script]` section).

MAX_FORMAL_DEPTH = 1000
# engine -> the modes it serves. "smtbmc": yosys-smtbmc with z3 (bmc; prove by k-induction, a
# base case and an induction step of `depth` cycles; cover). "abc_pdr": ABC's property-directed
# reachability (IC3) on an AIGER model, prove only (a proof of any depth, or a counterexample).
FORMAL_ENGINES: dict[str, tuple[str, ...]] = {
    "smtbmc": ("bmc", "prove", "cover"),
    "abc_pdr": ("prove",),
}


class FormalConfig(_JobConfig):
    """Bounded model checking, a proof or cover reachability of the design's formal statements.

    Sources are read with yosys `read_verilog -formal` (`FORMAL` defined; immediate and
    concurrent `assert`/`assume`/`cover`, `$past`, `initial assume`), elaborated under `top`.
    """

    mode: Literal["bmc", "prove", "cover"] = "bmc"
    # Clock cycles (solver steps) examined: the bound of bmc and cover, the k of k-induction.
    depth: int = Field(default=20, ge=1, le=MAX_FORMAL_DEPTH)
    # The module checked; defaults to the inferred design root, as for synthesis.
    top: Identifier | None = None
    engine: Literal["smtbmc", "abc_pdr"] = "smtbmc"

    @model_validator(mode="after")
    def _engine_serves_mode(self) -> FormalConfig:
        modes = FORMAL_ENGINES[self.engine]
        if self.mode not in modes:
            raise ValueError(f"engine {self.engine!r} runs mode {' or '.join(modes)} only, "
                             f"not {self.mode!r}")
        return self
# A cocotb test module: a Python module name, dotted for a package ("tests.test_alu").
_PY_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}(\.[A-Za-z_][A-Za-z0-9_]{0,63}){0,7}")
MAX_TEST_MODULES = 32
# cocotb 2.1's Makefile.verilator: `VLT_MIN := 5.036`; Debian 12 (the runner image) has 5.006.
COCOTB_VERILATOR_MIN = "5.036"


# Importing a test module of one of these names would import the provided module instead.
_RESERVED_MODULES = frozenset(sys.stdlib_module_names) | {
    "cocotb", "cocotb_tools", "pygpi", "find_libpython", "pytest", "_pytest", "py", "pluggy",
    "iniconfig", "packaging", "pygments"}


def _test_module(value: str) -> str:
    if not _PY_MODULE.fullmatch(value) or value.endswith(".py"):
        raise ValueError(f"{value!r} must be a Python module name: the project file's path without "
                         "'.py', e.g. 'test_adder' or 'tests.test_adder'")
    if value.split(".")[0] in _RESERVED_MODULES:
        raise ValueError(f"{value!r} is the name of a module the testbench's Python provides "
                         "(standard library, cocotb, pytest); rename the file")
    return value


class CocotbConfig(_JobConfig):
    """Python testbenches (cocotb 2.x) against Icarus Verilog: `toplevel` is the HDL module
    cocotb drives (its `dut`), `test_modules` the project's .py files holding `@cocotb.test()`s."""

    simulator: Literal["icarus"] = "icarus"
    toplevel: Identifier
    test_modules: list[Annotated[str, AfterValidator(_test_module)]] = Field(
        min_length=1, max_length=MAX_TEST_MODULES)
    waveform: bool = False
    plusargs: Annotated[list[str], AfterValidator(_plusarg_list)] = Field(
        default_factory=list, max_length=MAX_PLUSARGS)
    timescale: Annotated[str | None, AfterValidator(_timescale_value)] = None

    @field_validator("test_modules")
    @classmethod
    def _unique_modules(cls, modules: list[str]) -> list[str]:
        if len(set(modules)) != len(modules):
            raise ValueError("lists a module twice")
        return modules
class BuildConfig(_JobConfig):
    """FPGA implementation: yosys synth_<family>, nextpnr place and route, the bitstream packer.

    Device and package are checked against what the installed tools support
    (chalicelib/fpga_targets.py); `constraints` is the project's .pcf (iCE40) or .lpf (ECP5).
    """

    family: Literal["ice40", "ecp5"]
    device: str = Field(min_length=1, max_length=16)
    package: str = Field(min_length=1, max_length=16)
    top: Identifier
    constraints: str = Field(min_length=1, max_length=1024)
    # nextpnr's target clock frequency (--freq), MHz; default the common 12 MHz oscillator.
    frequency_mhz: float = Field(default=12, gt=0, le=1000)
    # Pack a bitstream even when a clock misses frequency_mhz (nextpnr --timing-allow-fail);
    # the job then completes with timing_met false. Without it such a job fails.
    timing_allow_fail: bool = False
    seed: int | None = Field(default=None, ge=1, le=2**31 - 1)

    @field_validator("constraints")
    @classmethod
    def _constraints(cls, value: str, info: ValidationInfo) -> str:
        """A project path with the family's suffix (a fault named at config.constraints)."""
        from chalicelib.fpga_targets import CONSTRAINT_SUFFIX

        _project_path(value)
        family = info.data.get("family")  # absent when the family itself was refused
        if family in CONSTRAINT_SUFFIX and not value.endswith(CONSTRAINT_SUFFIX[family]):
            raise ValueError(f"must be a {CONSTRAINT_SUFFIX[family]} file for {family}")
        return value

    @model_validator(mode="after")
    def _target(self) -> BuildConfig:
        from chalicelib.fpga_targets import check_device

        check_device(self.family, self.device, self.package)
        return self


CONFIG_MODELS: dict[str, type[_JobConfig]] = {
    "simulation": SimulationConfig,
    "synthesis": SynthesisConfig,
    "lint": LintConfig,
    "formal": FormalConfig,
    "cocotb": CocotbConfig,
    "build": BuildConfig,
}


def parse_job_config(job_type: str, config: dict[str, Any] | None) -> BaseModel:
    """Validate `config` for `job_type`; raise Unprocessable (422) with a detail naming each fault."""
    model = CONFIG_MODELS.get(job_type)
    if model is None:
        raise Unprocessable(f"job_type must be one of: {', '.join(JOB_TYPES)}")
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise Unprocessable("config must be a JSON object")
    _check_simulator(job_type, config)
    try:
        return model.model_validate(config)
    except ValidationError as e:
        raise Unprocessable(_describe(e)) from e


def _check_simulator(job_type: str, config: dict[str, Any]) -> None:
    simulator = config.get("simulator", "icarus")
    if job_type == "cocotb" and simulator != "icarus":
        raise Unprocessable(
            f"config.simulator {simulator!r} is not supported for cocotb jobs, which run on "
            "Icarus Verilog ('icarus') only: cocotb 2.x needs Verilator "
            f"{COCOTB_VERILATOR_MIN} or later, and the runner has Debian 12's Verilator 5.006")
    if job_type == "simulation" and simulator not in SUPPORTED_SIMULATORS:
        raise Unprocessable(
            f"config.simulator {simulator!r} is not supported; supported simulators: "
            + ", ".join(SUPPORTED_SIMULATORS)
        )
    if job_type == "simulation" and simulator == "verilator" and config.get("max_sim_time") is not None:
        raise Unprocessable(
            "config.max_sim_time is supported with simulator 'icarus' only; "
            "use $finish in the testbench with verilator"
        )


def _describe(err: ValidationError) -> str:
    parts = []
    for item in err.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in ("config", *item.get("loc", ())))
        parts.append(f"{loc}: {validation_message(item)}")
    return "; ".join(parts) or "config is invalid"
