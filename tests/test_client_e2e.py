"""The web-client driver (e2e/client.py) without a browser: it imports, its helpers hold, its Verilog works.

`make client-e2e` needs a built client and Chromium and is not part of `make test`; this keeps the
driver from rotting: it must import without Playwright installed, build the client's WebSocket URL
the client's way, and its counter/testbench must print the line the driver waits for, on both
simulators the driver selects.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

from e2e import client

ROOT = Path(__file__).resolve().parent.parent


def test_imports_without_playwright_at_module_level() -> None:
    tree = ast.parse((ROOT / "e2e" / "client.py").read_text())
    top_level = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    names = [alias.name for node in top_level for alias in node.names]
    modules = [node.module for node in top_level if isinstance(node, ast.ImportFrom)]
    assert not any("playwright" in (name or "") for name in names + modules)


def test_steps_follow_the_issue() -> None:
    names = [name for name, _ in client.STEPS]
    assert names[:3] == ["register", "create project", "open project"]
    for wanted in ("modules panel", "simulation with Verilator", "simulation with Icarus",
                   "settings save", "forum topic and reply", "build with an ASIC PDK is refused",
                   "FPGA build from a preset"):
        assert wanted in names
    assert len(set(names)) == len(names)


def test_ws_url_is_built_like_the_client() -> None:
    assert client.ws_url("http://127.0.0.1:8000", 42, "t.k.n") == \
        "ws://127.0.0.1:8000/api/v1/ws/jobs/42/updates?token=t.k.n"
    assert client.ws_url("https://api.example.com/", 7, "x").startswith("wss://api.example.com/api/v1/ws/jobs/7/")


def test_only_loopback_is_local() -> None:
    assert client.is_local("127.0.0.1") and client.is_local("localhost") and client.is_local("::1")
    assert not client.is_local("cdn.jsdelivr.net") and not client.is_local("fonts.googleapis.com")


def test_summary_line_counts_passes_and_failures() -> None:
    rows = [("PASS", "a", ""), ("FAIL", "b", ""), ("PASS", "c", "")]
    assert client.summary_line(rows) == "2 passed, 1 failed"


def test_args_default_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIENT_URL", "http://127.0.0.1:3999")
    monkeypatch.setenv("CLIENT_E2E_SCREENSHOTS", "/tmp/shots")
    args = client.parse_args(["--api-url", "http://127.0.0.1:8999"])
    assert (args.client_url, args.api_url, args.screenshots) == \
        ("http://127.0.0.1:3999", "http://127.0.0.1:8999", "/tmp/shots")


def test_missing_state_is_a_step_failure_not_a_crash() -> None:
    run = client.Run(client_url="http://c", api_url="http://a", shots=Path("/nonexistent"))
    with pytest.raises(client.StepFailed, match="project_id"):
        run.need("project_id")


@pytest.mark.parametrize("simulator", ["icarus", pytest.param("verilator", marks=pytest.mark.slow)])
def test_driver_design_prints_what_the_driver_waits_for(simulator: str, tmp_path: Path) -> None:
    for name, text in client.FILES.items():
        (tmp_path / name).write_text(text)
    sources = [str(tmp_path / name) for name in client.FILES]
    if simulator == "icarus":
        subprocess.run(["iverilog", "-g2012", "-o", str(tmp_path / "sim.vvp"), *sources], check=True)
        run = subprocess.run(["vvp", "-n", str(tmp_path / "sim.vvp")], capture_output=True, text=True,
                             check=True)
    else:
        subprocess.run(["verilator", "--binary", "-Wno-fatal", "--top-module", "testbench", "-Mdir",
                        str(tmp_path / "obj"), *sources], check=True, capture_output=True)
        run = subprocess.run([str(tmp_path / "obj" / "Vtestbench")], capture_output=True, text=True,
                             check=True)
    assert client.SIM_EXPECTED in run.stdout


@pytest.mark.slow
def test_driver_blinky_places_and_routes_on_the_preset(tmp_path: Path) -> None:
    """The build step's blinky and .pcf fit the iCEBreaker's UP5K-SG48 (the preset it applies)."""
    assert client.BUILD_PRESET == "ice40-up5k-sg48"
    (tmp_path / "blinky.v").write_text(client.BLINKY_V)
    (tmp_path / "blinky.pcf").write_text(client.BLINKY_PCF)
    subprocess.run(["yosys", "-q", "-p", f"synth_ice40 -top blinky -json {tmp_path / 'blinky.json'}",
                    str(tmp_path / "blinky.v")], check=True, capture_output=True)
    subprocess.run(["nextpnr-ice40", "--up5k", "--package", "sg48", "--freq", "12",
                    "--json", str(tmp_path / "blinky.json"), "--pcf", str(tmp_path / "blinky.pcf"),
                    "--asc", str(tmp_path / "blinky.asc")], check=True, capture_output=True)
    assert (tmp_path / "blinky.asc").stat().st_size > 0
