"""One job's directories on the runner's host: the stage the sandbox mounts, and its clean-up.

A stage is a private directory under a runner-owned base (A6HUB_RUNNER_SANDBOX_DIR, default
$TMPDIR/a6hub-sandbox, mode 0711) holding src (the project's files, read-only to tools), gen
(runner-generated scripts, read-only) and work (the tools' writable cwd); the unprivileged
sandbox uid can reach it wherever the caller's own directory is. Stages left by a killed
runner are removed when the next one starts (`remove_stale_stages`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
import time
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
    """Where one job's files live on the host (`work` is the tools' writable cwd inside the stage;
    `job_dir` is the caller's directory for the job, holding its src/ and out/).

    The tools' directories (src: a copy of the project's files, read-only to tools; gen:
    runner-generated scripts, read-only; work: the tools' writable cwd) sit in a private staging
    dir under a runner-owned base (A6HUB_RUNNER_SANDBOX_DIR, default $TMPDIR/a6hub-sandbox, mode
    0711) so the unprivileged sandbox uid can reach them wherever the caller's job_dir is;
    out (artifacts) is `job_dir/out`, written by the runner only.
    """

    stage: Path
    src: Path
    gen: Path
    work: Path
    out: Path

    @classmethod
    def prepare(cls, job_dir: Path, sandbox_uid: int | None) -> JobDirs:
        job_dir = Path(job_dir).resolve()
        stage = Path(tempfile.mkdtemp(prefix="job-", dir=_stage_base()))
        dirs = cls(stage=stage, src=stage / "src", gen=stage / "gen", work=stage / "work",
                   out=job_dir / "out")
        given = job_dir / "src"
        if given.is_dir():
            shutil.copytree(given, dirs.src, symlinks=True)
        else:
            dirs.src.mkdir()
        dirs.gen.mkdir()
        dirs.work.mkdir()
        dirs.out.mkdir(parents=True, exist_ok=True)
        # The sandbox uid traverses the stage (without listing it) and reads src and gen.
        stage.chmod(0o711)
        dirs.gen.chmod(0o755)
        _make_readable(dirs.src)
        if sandbox_uid is not None:
            os.chown(dirs.work, sandbox_uid, sandbox_uid)
        return dirs

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


def _make_readable(top: Path) -> None:
    top.chmod(0o755)
    for parent, dirnames, filenames in os.walk(top):
        for name in dirnames:
            path = os.path.join(parent, name)
            if not os.path.islink(path):
                os.chmod(path, 0o755)  # noqa: S103 - mounted read-only for the sandbox uid
        for name in filenames:
            path = os.path.join(parent, name)
            if not os.path.islink(path):
                os.chmod(path, 0o644)


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
            if JobDirs(stage, stage / "src", stage / "gen", stage / "work", stage / "out").remove_stage():
                removed += 1
    return removed


