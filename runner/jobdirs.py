"""One job's directories on the runner's host: the stage the sandbox mounts, and its clean-up.

A stage is a private directory under a runner-owned base (A6HUB_RUNNER_SANDBOX_DIR, default
$TMPDIR/a6hub-sandbox, mode 0711) holding src (the project's files, written there once by
runner/workspace.py and read-only to tools), gen (runner-generated scripts, read-only), work
(the tools' writable cwd) and out (artifacts, the runner's only); the unprivileged sandbox uid
can reach it. Stages left by a killed runner are removed when the next one starts
(`remove_stale_stages`).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from aws_lambda_powertools import Logger

from chalicelib.logs import SERVICE
from runner import fstree
from runner.settings import runner_env

logger = Logger(service=SERVICE, child=True)


class SandboxUnavailable(RuntimeError):
    """bubblewrap cannot run here and unsandboxed execution was not explicitly allowed."""


@dataclass(frozen=True)
class JobDirs:
    """Where one job's files live on the host, all in one private stage under a runner-owned base
    (A6HUB_RUNNER_SANDBOX_DIR, default $TMPDIR/a6hub-sandbox, mode 0711) so the unprivileged
    sandbox uid can reach them: src (the commit's files, written once by the runner, read-only
    to tools), gen (runner-generated scripts, read-only), work (the tools' writable cwd; the
    sandbox gives it to the job's uid) and out (artifacts, mode 0700: the runner's only).

    Whoever creates the stage removes it (`staged`, or `remove_stage`); a runner killed mid-job
    leaves it to the next one (`remove_stale_stages`).
    """

    stage: Path
    src: Path
    gen: Path
    work: Path
    out: Path

    @classmethod
    def create(cls, out: Path | None = None) -> JobDirs:
        """A fresh, empty stage; `out` elsewhere (made by the run) only for a caller that keeps
        the artifacts past the stage (the runner-tier tests)."""
        stage = Path(tempfile.mkdtemp(prefix="job-", dir=_stage_base()))
        dirs = cls(stage=stage, src=stage / "src", gen=stage / "gen", work=stage / "work",
                   out=out if out is not None else stage / "out")
        for path in (dirs.src, dirs.gen, dirs.work):
            path.mkdir()
            path.chmod(0o755)  # noqa: S103 - the sandbox uid reads src and gen (mounted read-only)
        if out is None:
            dirs.out.mkdir(mode=0o700)
        stage.chmod(0o711)  # the sandbox uid traverses the stage without listing it
        return dirs

    @classmethod
    @contextlib.contextmanager
    def staged(cls) -> Iterator[JobDirs]:
        """A fresh stage for one job, removed afterwards whatever happened."""
        dirs = cls.create()
        try:
            yield dirs
        finally:
            dirs.remove_stage()

    @classmethod
    def at(cls, stage: Path) -> JobDirs:
        """The directories of an existing stage."""
        return cls(stage, stage / "src", stage / "gen", stage / "work", stage / "out")

    def remove_stage(self) -> bool:
        """Delete the stage, however deep the tree a tool left in it; never raises (a clean-up
        failure must not fail the job nor stop the runner). False, logged, when something stays."""
        try:
            fstree.remove_tree(self.stage)
        except OSError as e:
            logger.warning("job stage not fully removed", extra={"stage": str(self.stage),
                                                                  "error": str(e)})
            return False
        return True


def _stage_base() -> str:
    base = runner_env().sandbox_dir or os.path.join(tempfile.gettempdir(), "a6hub-sandbox")
    with contextlib.suppress(FileExistsError):
        os.mkdir(base, 0o711)
    info = os.lstat(base)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise SandboxUnavailable(f"{base} is not a directory owned by the runner; refusing to use it")
    os.chmod(base, 0o711)  # noqa: S103 - traverse only: job stages inside have random names
    return base


def remove_stale_stages(max_age_s: float) -> int:
    """Delete job stages left by a runner that was killed mid-job (older than any live job)."""
    base = _stage_base()
    removed = 0
    for entry in os.scandir(base):
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if (entry.name.startswith("job-") and stat.S_ISDIR(info.st_mode)
                and time.time() - info.st_mtime > max_age_s):
            stage = Path(entry.path)
            if JobDirs.at(stage).remove_stage():
                removed += 1
    return removed


