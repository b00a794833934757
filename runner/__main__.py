"""`python -m runner`: poll the jobs queue and run jobs until SIGTERM/SIGINT (or --max-jobs).

Exits 2 at once when a setting is bad (runner/settings.py names the variable)."""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from chalicelib.config import ConfigurationError, get_settings
from chalicelib.logs import configure_logging
from runner.sandbox import become_subreaper, sandbox_problem
from runner.settings import RunnerConfigError, runner_env
from runner.worker import RunnerSettings, Worker


def hide_from_same_uid() -> None:
    """Make this process non-dumpable: /proc/<pid>/environ, mem and fd become unreadable to
    processes of the same uid. Where tools cannot get their own uid (Fargate, unsandboxed), this
    keeps the credentials endpoint's path (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI) out of reach."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_dumpable = 4
    if ctypes.CDLL(None, use_errno=True).prctl(pr_set_dumpable, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def _install_signals(worker: Worker) -> None:
    seen: set[int] = set()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # The first signal: finish the current job within the grace period, then release it.
        # The same signal again: release it now. One of the other kind is the same request
        # (Ctrl-C reaches the whole process group, then `devstack run` sends its SIGTERM).
        if signum in seen:
            worker.stop(0)
        elif not seen:
            worker.stop(None)
        seen.add(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def reap_sandbox_inits() -> bool:
    """Make the runner a child subreaper (runner/sandbox.become_subreaper) where its steps run
    in bubblewrap, so that Watch reaps each sandbox's init by pid; True when it became one.

    Called after the sandbox probe (`Worker.check_ready`). Sandboxed, every orphan a step leaves
    is its sandbox's init (the pid namespace's init reaps the tools' own orphans). Unsandboxed
    (A6HUB_RUNNER_UNSANDBOXED=1, or bubblewrap broken) the runner stays no subreaper: a tool's
    orphans (a double fork, `(cmd &)`) would become the runner's children, which nothing waits
    for, one zombie each for the runner's lifetime; they go to PID 1 instead."""
    return sandbox_problem() is None and become_subreaper()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runner")
    parser.add_argument("--queue-url", default=None, help="default: A6HUB_JOBS_QUEUE_URL")
    parser.add_argument("--max-jobs", type=int, default=0,
                        help="exit after running this many jobs (1: one job per task); 0: never")
    args = parser.parse_args(argv)
    hide_from_same_uid()
    logger = configure_logging()
    try:
        runner_env()  # every setting checked before anything else happens
        get_settings()  # and those the runner shares with the API
    except (RunnerConfigError, ConfigurationError) as e:
        logger.error(str(e))
        return 2
    settings = RunnerSettings.from_queue(args.queue_url)
    worker = Worker(settings, max_jobs=args.max_jobs)
    worker.check_ready()
    reap_sandbox_inits()
    _install_signals(worker)
    logger.info("runner starting", extra={"runner_id": settings.runner_id,
                                          "queue": settings.queue_url, "dlq": settings.dlq_url,
                                          "visibility_seconds": settings.visibility_seconds,
                                          "max_receives": settings.max_receives})
    worker.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
