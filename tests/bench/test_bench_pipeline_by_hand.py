"""The pipeline bench's commands by hand touch only their own work directory.

`iverilog -o PATH` chmods PATH to 0755 through links and device nodes alike, so the bench's
`iverilog -o /dev/null`, run as root, made the host's /dev/null 0755 (twice, by 03:00:13 on
2026-11-30) and every sandboxed job that writes /dev/null failed.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from bench.pipeline import BY_HAND, COUNTER


def test_by_hand_commands_name_no_path_outside_their_work_dir() -> None:
    for argv in BY_HAND:
        for arg in argv:
            for word in arg.split():
                assert not word.startswith("/"), f"{argv} names {word}: outside its work dir"


def test_the_lint_commands_by_hand_leave_a_linked_file_alone(tmp_path: Path) -> None:
    # GIVEN the bench's work dir, and a file of the test's own reachable through a link in it
    victim = tmp_path / "victim"
    victim.write_text("")
    victim.chmod(0o644)
    work = tmp_path / "work"
    work.mkdir()
    (work / "counter.v").write_text(COUNTER)
    (work / "out.vvp").symlink_to(victim)
    lint = [argv for argv in BY_HAND if argv[0] == "iverilog"]
    assert lint, "the bench lints with iverilog"
    for argv in lint:
        assert not any(a.startswith("/") for a in argv)  # never run one that names a host path
        # WHEN a lint command runs there / THEN it succeeds and changes no file's mode
        subprocess.run(argv, cwd=work, check=True, capture_output=True, timeout=60)
        assert victim.stat().st_mode & 0o777 == 0o644
    assert sorted(os.listdir(work)) == ["counter.v", "out.vvp"]


def test_why_iverilog_output_may_never_be_a_shared_path(tmp_path: Path) -> None:
    # The tool's behaviour the first test guards against: its output is chmodded through links.
    victim = tmp_path / "victim"
    victim.write_text("")
    victim.chmod(0o644)
    (tmp_path / "link").symlink_to(victim)
    (tmp_path / "counter.v").write_text(COUNTER)
    subprocess.run(["iverilog", "-g2012", "-o", "link", "counter.v"], cwd=tmp_path, check=True,
                   capture_output=True, timeout=60)
    assert victim.stat().st_mode & 0o777 == 0o755
