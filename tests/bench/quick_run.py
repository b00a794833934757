"""Run a bench's quick mode the way a person does, for the bench tier's tests."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT


def quick_table(module: str, title: str = "", *more: str, timeout: float = 280) -> str:
    """`python -m <module> --quick [more...]` from the repository root with this environment;
    asserts it exits 0 (with the tails of its output otherwise) and returns what it printed from
    `title` on (everything when ""; ValueError when `title` is missing)."""
    out = subprocess.run([sys.executable, "-m", module, "--quick", *more], cwd=ROOT,
                         env={**os.environ}, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout[out.stdout.index(title):]
