"""FPGA builds (job type `build`), runner tier: real yosys, nextpnr-ice40 and icepack on a blinky
and on picorv32; the config's device table checked against the installed nextpnr."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
import pythondata_cpu_picorv32

from chalicelib.errors import Unprocessable
from chalicelib.fpga_targets import ICE40_PACKAGES, TARGETS
from chalicelib.schemas.job_configs import parse_job_config
from runner.execute import ExecutionResult, execute_job
from runner.limits import MIB, Limits
from tests.jobs_support import staged

DATA = Path(__file__).parents[1] / "data" / "build"
PICORV32 = Path(pythondata_cpu_picorv32.data_location) / "picorv32.v"
LIMITS = Limits(cpu_seconds=600, wall_seconds=900, memory_bytes=2048 * MIB, log_bytes=2 * MIB)
BLINKY = {"family": "ice40", "device": "up5k", "package": "sg48", "top": "blinky",
          "constraints": "blinky.pcf"}
PICO = {"family": "ice40", "top": "pico_top", "files": ["picorv32.v", "pico_top.v"]}
# What iceunpack writes as `.device` for each die a device flag names (icestorm's icepack.cc).
DIE = {"up5k": "5k", "hx8k": "8k", "hx1k": "1k"}


def build(tmp_path: Path, files: dict[str, Path], config: dict[str, Any]) -> tuple[ExecutionResult, str]:
    for rel, source in files.items():
        target = tmp_path / "src" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    chunks: list[bytes] = []
    with staged(tmp_path) as dirs:
        outcome = execute_job("build", config, dirs, LIMITS, chunks.append, threading.Event())
    return outcome, b"".join(chunks).decode(errors="replace")


def decoded_device(bitstream: Path, tmp_path: Path) -> str:
    """The die icestorm's own decoder reads from a bitstream (`.device` of iceunpack's output)."""
    asc = tmp_path / "unpacked.asc"
    subprocess.run(["iceunpack", str(bitstream), str(asc)], check=True, capture_output=True)
    return next(line.split()[1] for line in asc.read_text().splitlines() if line.startswith(".device"))


def artifact(outcome: ExecutionResult, name: str) -> Path:
    return next(a.path for a in outcome.artifacts if a.name == name)


def test_blinky_builds_a_bitstream_for_the_device_with_utilisation_and_fmax(tmp_path: Path) -> None:
    # GIVEN a blinky and its pin constraints for an iCE40 UP5K in the SG48 package
    outcome, log = build(tmp_path, {"blinky.v": DATA / "blinky.v", "blinky.pcf": DATA / "blinky.pcf"},
                         BLINKY)
    # THEN the job completes with the three steps and a bitstream for that die
    assert outcome.status == "completed", log
    assert [s.name for s in outcome.steps] == ["synthesis", "place_route", "bitstream"]
    bitstream = artifact(outcome, "bitstream.bin")
    assert decoded_device(bitstream, tmp_path) == "5k"
    summary = outcome.summary["build"]
    assert summary["bitstream_bytes"] == bitstream.stat().st_size
    # a 24-bit counter: 24 flip-flops packed into logic cells, 2 IOs, 1 global buffer
    assert 24 <= summary["utilisation"]["ICESTORM_LC"]["used"] <= 60
    assert summary["utilisation"]["ICESTORM_LC"]["available"] == 5280
    assert summary["utilisation"]["SB_IO"]["used"] == 2
    (clock,) = summary["clocks"]
    assert clock["clock"] == "clk" and clock["fmax_mhz"] > 12 and clock["met"] is True
    assert summary["timing_met"] is True
    report = json.loads(artifact(outcome, "nextpnr-report.json").read_text())
    assert set(report) >= {"utilization", "fmax"}
    assert artifact(outcome, "placed.asc").read_text().startswith(".comment")
    assert outcome.tool_versions["nextpnr-ice40"].startswith("nextpnr-ice40")


def test_a_clock_that_misses_its_frequency_fails_naming_the_clock(tmp_path: Path) -> None:
    files = {"blinky.v": DATA / "blinky.v", "blinky.pcf": DATA / "blinky.pcf"}
    outcome, log = build(tmp_path, files, {**BLINKY, "frequency_mhz": 900})
    assert outcome.status == "failed", log
    assert outcome.error_message is not None
    assert outcome.error_message.startswith("timing not met: clock 'clk' reaches")
    assert "constraint 900.00 MHz" in outcome.error_message
    assert outcome.summary["build"]["timing_met"] is False
    assert outcome.summary["build"]["clocks"][0]["met"] is False
    assert not any(a.name == "bitstream.bin" for a in outcome.artifacts)


def test_timing_allow_fail_packs_the_bitstream_and_says_timing_failed(tmp_path: Path) -> None:
    files = {"blinky.v": DATA / "blinky.v", "blinky.pcf": DATA / "blinky.pcf"}
    outcome, log = build(tmp_path, files, {**BLINKY, "frequency_mhz": 900, "timing_allow_fail": True})
    assert outcome.status == "completed", log
    assert outcome.summary["build"]["timing_met"] is False
    assert any("timing not met" in w and "clk" in w for w in outcome.summary["warnings"])
    assert decoded_device(artifact(outcome, "bitstream.bin"), tmp_path) == "5k"


def test_a_missing_constraint_file_fails_before_any_tool_runs(tmp_path: Path) -> None:
    outcome, _ = build(tmp_path, {"blinky.v": DATA / "blinky.v"}, BLINKY)
    assert outcome.status == "failed"
    assert outcome.error_message == "constraint file not found in the project: blinky.pcf"
    assert outcome.steps == []


@pytest.mark.parametrize(("config", "fragment"), [
    ({**BLINKY, "device": "up9k"}, "device 'up9k' is not an ice40 device nextpnr knows"),
    ({**BLINKY, "package": "ct256"}, "package 'ct256' does not exist for up5k; packages: sg48, uwg30"),
    ({**BLINKY, "family": "ecp5", "constraints": "b.lpf"}, "family 'ecp5' is not built by this deployment"),
    ({**BLINKY, "constraints": "blinky.lpf"}, "config.constraints: must be a .pcf file for ice40"),
    ({**BLINKY, "constraints": "../etc/passwd.pcf"}, "config.constraints: must not contain '.' or '..'"),
    ({**BLINKY, "top": "blinky; shell"}, "must be a Verilog identifier"),
    ({**BLINKY, "frequency_mhz": 0}, "greater than 0"),
])
def test_build_configs_outside_what_the_tools_support_are_refused(config: dict[str, Any],
                                                                  fragment: str) -> None:
    with pytest.raises(Unprocessable) as caught:
        parse_job_config("build", config)
    assert fragment in caught.value.detail


@pytest.mark.slow
def test_every_device_and_package_in_the_table_is_accepted_by_nextpnr(tmp_path: Path) -> None:
    # GIVEN blinky's JSON netlist
    netlist = tmp_path / "blinky.json"
    subprocess.run(["yosys", "-q", "-p", f"read_verilog {DATA / 'blinky.v'}; synth_ice40 -top blinky; "
                    f"write_json {netlist}"], check=True)
    for device, packages in ICE40_PACKAGES.items():
        for package in (*packages, "nosuchpkg"):
            proc = subprocess.run(["nextpnr-ice40", f"--{device}", "--package", package, "--json",
                                   str(netlist), "--pcf-allow-unconstrained", "--pack-only", "-q"],
                                  capture_output=True, check=False)
            assert (proc.returncode == 0) == (package != "nosuchpkg"), (device, package, proc.stderr)
    for t in TARGETS:
        parse_job_config("build", {"family": t.family, "device": t.device, "package": t.package,
                                   "top": "blinky", "constraints": "x.pcf"})


@pytest.mark.slow
@pytest.mark.timeout(1200)  # two place-and-route runs of a CPU: minutes on a loaded machine
@pytest.mark.parametrize(("device", "package", "pcf"), [("up5k", "sg48", "up5k.pcf"),
                                                       ("hx8k", "ct256", "hx8k.pcf")])
def test_picorv32_builds_for_ice40_with_the_same_bitstream_size_as_blinky(
        tmp_path: Path, device: str, package: str, pcf: str) -> None:
    # GIVEN picorv32 with a block-RAM program and LEDs, and blinky, for the same device
    config = {**PICO, "device": device, "package": package, "constraints": pcf}
    outcome, log = build(tmp_path / "pico", {"picorv32.v": PICORV32, "pico_top.v": DATA / "pico_top.v",
                                             pcf: DATA / pcf}, config)
    assert outcome.status == "completed", log[-3000:]
    summary = outcome.summary["build"]
    # THEN the CPU fills a good part of the logic and uses block RAM, with an Fmax per clock
    lcs = summary["utilisation"]["ICESTORM_LC"]
    assert 1000 < lcs["used"] < lcs["available"]
    assert summary["utilisation"]["ICESTORM_RAM"]["used"] >= 2
    assert summary["clocks"][0]["clock"] == "clk" and summary["clocks"][0]["fmax_mhz"] > 12
    pico_bits = artifact(outcome, "bitstream.bin")
    assert decoded_device(pico_bits, tmp_path) == DIE[device]
    # AND an iCE40 bitstream's size is the die's, whatever the design: blinky's is the same
    blinky_pcf = tmp_path / "blinky.pcf"
    blinky_pcf.write_text("set_io clk J3\nset_io led B5\n" if device == "hx8k" else
                          (DATA / "blinky.pcf").read_text())
    small, log = build(tmp_path / "blinky", {"blinky.v": DATA / "blinky.v", "blinky.pcf": blinky_pcf},
                       {**BLINKY, "device": device, "package": package})
    assert small.status == "completed", log
    assert artifact(small, "bitstream.bin").stat().st_size == pico_bits.stat().st_size


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_design_that_does_not_fit_fails_naming_the_resource(tmp_path: Path) -> None:
    # GIVEN picorv32 for an HX1K (1280 logic cells; it needs about 1900)
    (tmp_path / "hx1k.pcf").write_text("set_io clk 21\n" + "".join(
        f"set_io leds[{i}] {pin}\n" for i, pin in enumerate((99, 98, 97, 96, 95, 94, 93, 91))))
    config = {**PICO, "device": "hx1k", "package": "tq144", "constraints": "hx1k.pcf"}
    outcome, log = build(tmp_path, {"picorv32.v": PICORV32, "pico_top.v": DATA / "pico_top.v",
                                    "hx1k.pcf": tmp_path / "hx1k.pcf"}, config)
    assert outcome.status == "failed", log
    assert outcome.error_message is not None
    assert outcome.error_message.startswith("the design does not fit hx1k-tq144: ICESTORM_LC ")
    assert "used of 1280" in outcome.error_message
    assert [s.name for s in outcome.steps] == ["synthesis", "place_route"]
