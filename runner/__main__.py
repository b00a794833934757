"""`python -m runner`: poll the jobs queue and run jobs until SIGTERM/SIGINT (or --max-jobs).

Exits 2 at once when a setting is bad (runner/settings.py names the variable)."""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from chalicelib.config import ConfigurationError, get_settings
from chalicelib.logs import configure_logging
from runner.sandbox import become_subreaper
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runner")
    parser.add_argument("--queue-url", default=None, help="default: A6HUB_JOBS_QUEUE_URL")
    parser.add_argument("--max-jobs", type=int, default=0,
                        help="exit after running this many jobs (1: one job per task); 0: never")
    args = parser.parse_args(argv)
    hide_from_same_uid()
    become_subreaper()  # each sandbox's init is then reaped by the runner (runner/sandbox.py)
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
    _install_signals(worker)
    logger.info("runner starting", extra={"runner_id": settings.runner_id,
                                          "queue": settings.queue_url, "dlq": settings.dlq_url,
                                          "visibility_seconds": settings.visibility_seconds,
                                          "max_receives": settings.max_receives})
    worker.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
