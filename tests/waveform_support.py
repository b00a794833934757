"""Waveform fixtures: picorv32 sources (and a variant), a VCD oracle parsed with vcdvcd (not the
library the API uses), and a stored waveform job for tests that only need one to exist."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

ADDI_1 = "32'h 00110113; //       addi    x2,x2,1"
ADDI_2 = "32'h 00210113; //       addi    x2,x2,2"


def picorv32_dir() -> Path:
    import pythondata_cpu_picorv32

    return Path(pythondata_cpu_picorv32.data_location)


def picorv32_testbench(step: int = 1) -> str:
    """picorv32's testbench_ez; step=2 makes its counter loop add 2 instead of 1."""
    text = (picorv32_dir() / "testbench_ez.v").read_text()
    assert ADDI_1 in text
    return text if step == 1 else text.replace(ADDI_1, ADDI_2)


class VcdOracle:
    """A VCD read with vcdvcd: each signal's (time, value) list, values padded to their width
    by VCD's left-extension rule (x/z extend, otherwise 0)."""

    def __init__(self, path: Path) -> None:
        from vcdvcd import VCDVCD

        self.vcd = VCDVCD(str(path))
        self.names = {name.split("[")[0]: name for name in self.vcd.signals}
        self.end_time = int(self.vcd.endtime)

    def width(self, path: str) -> int:
        return int(self.vcd[self.names[path]].size)

    def changes(self, path: str) -> list[tuple[int, str]]:
        width = self.width(path)
        out = []
        for t, value in self.vcd[self.names[path]].tv:
            text = str(value).lower()
            if len(text) < width:
                text = (text[0] if text[0] in "xz" else "0") * (width - len(text)) + text
            out.append((int(t), text))
        return out

    def value_at(self, path: str, t: int) -> str | None:
        before = [v for time, v in self.changes(path) if time <= t]
        return before[-1] if before else None

    def window(self, path: str, start: int, end: int) -> list[list[Any]]:
        """What /waveform/values must answer for one signal, unreduced."""
        first = self.value_at(path, start)
        head = [[start, first]] if first is not None else []
        return head + [[t, v] for t, v in self.changes(path) if start < t <= end]

    def first_at_or_after(self, path: str, bits: str, after: int) -> int | None:
        if self.value_at(path, after) == bits:
            return after
        return next((t for t, v in self.changes(path) if t > after and v == bits), None)


def first_difference(a: VcdOracle, b: VcdOracle, path: str) -> int | None:
    until = min(a.end_time, b.end_time)
    times = sorted({t for t, _ in a.changes(path)} | {t for t, _ in b.changes(path)})
    return next((t for t in times if t <= until and a.value_at(path, t) != b.value_at(path, t)),
                None)


COUNTER_TB = """\
`timescale 1ns/1ps
module tb;
  reg clk = 0;
  reg [7:0] count = 8'hxx;
  always #5 clk = ~clk;
  always @(posedge clk) count <= (count === 8'hxx) ? 8'd0 : count + 1;
  initial begin $dumpfile("tb.vcd"); $dumpvars(0, tb); #200 $finish; end
endmodule
"""


def make_small_fst(workdir: Path) -> tuple[Path, Path]:
    """A small VCD and its FST (iverilog, vvp, vcd2fst run here, outside any job)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "tb.v").write_text(COUNTER_TB)
    subprocess.run(["iverilog", "-o", "tb.vvp", "tb.v"], cwd=workdir, check=True)
    subprocess.run(["vvp", "-n", "tb.vvp"], cwd=workdir, check=True, capture_output=True)
    subprocess.run(["vcd2fst", "tb.vcd", "tb.fst"], cwd=workdir, check=True, capture_output=True)
    return workdir / "tb.vcd", workdir / "tb.fst"


def store_waveform_job(project_id: int, created_by: int, vcd: Path, fst: Path) -> int:
    """A completed simulation job with a VCD and FST artifact, written through our own models
    and storage (as the runner's worker does), for tests about who may read it."""
    from chalicelib import storage
    from chalicelib.ids import with_new_id
    from chalicelib.models.base import id_taken, utcnow_iso
    from chalicelib.models.jobs import Job

    artifacts = [{"name": "tb.vcd", "kind": "waveform", "size_bytes": vcd.stat().st_size,
                  "mime_type": "text/x-vcd"},
                 {"name": "tb.fst", "kind": "waveform_fst", "size_bytes": fst.stat().st_size,
                  "mime_type": "application/x-fst"}]

    def create(job_id: int) -> Job:
        now = utcnow_iso()
        job = Job(project_id, job_id, job_type="simulation", status="completed",
                  config={"testbench": "tb", "waveform": True}, created_by=created_by,
                  created_at=now, started_at=now, completed_at=now, attempts=1,
                  artifacts=artifacts, exit_code=0)
        job.save(condition=Job.id.does_not_exist())
        return job

    job = with_new_id(create, id_taken)
    for path, item in ((vcd, artifacts[0]), (fst, artifacts[1])):
        storage.upload_file(storage.job_artifact_key(project_id, job.id, 1, str(item["name"])),
                            path, str(item["mime_type"]))
    return int(job.id)
