"""The set-up as the README describes it: make run's options, its Debian packages, what start-up says."""

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


def test_the_readme_names_every_debian_package_install_system_installs() -> None:
    script = (ROOT / "devstack" / "install-system.sh").read_text()
    listed = re.search(r"^packages=\(([^)]*)\)", script, re.MULTILINE)
    assert listed is not None
    packages = listed.group(1).split()
    readme = (ROOT / "README.md").read_text()
    bullet = readme[readme.index("- installs Debian packages that are missing"):]
    bullet = bullet[:bullet.index(";")]
    named = set(re.findall(r"[\w.+-]+", bullet))
    assert packages and [p for p in packages if p not in named] == []


def test_start_up_says_the_others_existed_only_when_some_did() -> None:
    from devstack.__main__ import forum_line

    assert forum_line(7, 7) == "forum: the 7 default categories created"
    assert forum_line(0, 7) == "forum: the 7 default categories exist"
    assert forum_line(2, 7) == "forum: 2 of the 7 default categories created (the others existed)"
