"""FPGA builds: a blinky and picorv32 for an iCE40 UP5K through the service (the web client's
POST /builds/{id}/build, then its status route until the end) next to yosys + nextpnr-ice40 +
icepack run by hand with the same arguments.

`python -m bench.build [--quick]` runs it on its own stack with one `python -m runner`;
`run(stack)` returns the table rows. --quick builds the blinky only.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.jobs import Client, runner_process
from bench.measure import KeepAlive
from bench.report import Row, ms
from bench.stack import ROOT, Stack, stack_bench

DATA = ROOT / "tests" / "data" / "build"
TERMINAL = {"completed", "failed", "cancelled"}
POLL_SECONDS = 0.1


def designs(quick: bool) -> list[tuple[str, dict[str, str], str, str]]:
    """(label, files, top, constraint file) for each design."""
    blinky = {"blinky.v": (DATA / "blinky.v").read_text(), "blinky.pcf": (DATA / "blinky.pcf").read_text()}
    found = [("blinky", blinky, "blinky", "blinky.pcf")]
    if not quick:
        import pythondata_cpu_picorv32

        pico = {"picorv32.v": (Path(pythondata_cpu_picorv32.data_location) / "picorv32.v").read_text(),
                "pico_top.v": (DATA / "pico_top.v").read_text(), "up5k.pcf": (DATA / "up5k.pcf").read_text()}
        found.append(("picorv32", pico, "pico_top", "up5k.pcf"))
    return found


def by_hand(files: dict[str, str], top: str, pcf: str) -> Callable[[], float]:
    """yosys synth_ice40, nextpnr-ice40 --up5k, icepack in a scratch directory; one run's seconds."""
    work = Path(tempfile.mkdtemp(prefix="a6hub-bench-build-"))
    for path, content in files.items():
        (work / path).write_text(content)
    sources = " ".join(p for p in files if p.endswith(".v"))

    def once() -> float:
        started = time.perf_counter()
        subprocess.run(["yosys", "-q", "-p", f"read_verilog -sv {sources}; synth_ice40 -top {top}; "
                        "write_json n.json"], cwd=work, check=True, capture_output=True)
        subprocess.run(["nextpnr-ice40", "--up5k", "--package", "sg48", "--json", "n.json", "--pcf", pcf,
                        "--asc", "p.asc", "--freq", "12", "--report", "r.json"], cwd=work, check=True,
                       capture_output=True)
        subprocess.run(["icepack", "p.asc", "b.bin"], cwd=work, check=True, capture_output=True)
        return time.perf_counter() - started

    return once


def through_service(client: Client, project_id: int, top: str, pcf: str) -> tuple[float, float]:
    """(seconds from POST to the end seen on the status route, the tools' seconds in the job)."""
    form = {"design_name": top, "pdk": "ice40-up5k-sg48", "clock_period": "83.333", "constraints": pcf}
    started = time.perf_counter()
    status, job = client.http.request("POST", f"/api/v1/builds/{project_id}/build", {"config": form},
                                      client.token)
    assert status == 201, job
    while True:
        status, seen = client.http.request("GET", f"/api/v1/builds/{project_id}/build/status",
                                           token=client.token)
        assert status == 200, seen
        if seen["job_id"] == job["id"] and seen["status"] in TERMINAL:
            break
        time.sleep(POLL_SECONDS)
    elapsed = time.perf_counter() - started
    assert seen["status"] == "completed", seen.get("error_message")
    record = client.job(project_id, int(job["id"]))
    tools = sum(float(s["duration_s"]) for s in record["steps"])
    return elapsed, tools


def run(stack: Stack, quick: bool = False) -> list[Row]:
    """By hand and through the service in turns, so both see the same load on a shared machine."""
    rows = []
    with runner_process(stack):
        client = Client(stack)
        try:
            for label, files, top, pcf in designs(quick):
                project_id = client.project(files)
                once = by_hand(files, top, pcf)
                raw, service = [], []
                for _ in range(_runs(label, quick)):
                    raw.append(once())
                    # A fresh connection: the last one may have idled out during minutes of P&R.
                    client.http.close()
                    client.http = KeepAlive(stack.api_url)
                    service.append(through_service(client, project_id, top, pcf))
                api = statistics.median(s[0] for s in service)
                tools = statistics.median(s[1] for s in service)
                rows.append(Row(f"{label} for iCE40 UP5K: POST build -> completed seen on the status "
                                f"route, median ms ({len(service)} runs)", ms(api),
                                f"yosys + nextpnr-ice40 + icepack by hand: "
                                f"{ms(statistics.median(raw))}; tools inside the job: {ms(tools)}"))
        finally:
            client.http.close()
    return rows


def _runs(label: str, quick: bool) -> int:
    return 1 if quick or label == "picorv32" else 3


def main(argv: list[str] | None = None) -> int:
    return stack_bench(argv, "python -m bench.build", __doc__, run,
                       "a6hub build bench", "a6hub-bench-build-", quick_help="the blinky only, one run")


if __name__ == "__main__":
    sys.exit(main())
