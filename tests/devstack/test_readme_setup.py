"""What the README's set-up section promises matches the Makefile and install-system.sh."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.unit  # reads files, runs `make -n` (tests/tiers.py)


def test_make_run_passes_the_ports_it_is_given() -> None:
    done = subprocess.run(["make", "-n", "run", "PORT=8140", "EMULATOR_PORT=5140"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=True)
    command = next(line for line in done.stdout.splitlines() if "-m devstack run" in line)
    assert command.split()[-4:] == ["--port", "8140", "--emulator-port", "5140"]
    assert "make run PORT=8140 EMULATOR_PORT=5140" in (ROOT / "README.md").read_text()
