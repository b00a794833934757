"""`python -m runner`: poll the jobs queue and run jobs until SIGTERM/SIGINT (or --max-jobs).

With A6HUB_RUNNER_CONCURRENCY = N > 1 (by default the cores) it supervises N single-slot
processes of itself (runner/slots.py); with N = 1 it is the one process that runs the jobs.

Exits 2 at once when a setting is bad (runner/settings.py names the variable)."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from dataclasses import replace
from types import FrameType

from aws_lambda_powertools import Logger

from chalicelib.config import ConfigurationError, get_settings
from chalicelib.logs import SERVICE, configure_logging
from runner.sandbox import become_subreaper, sandbox_problem
from runner.settings import RunnerConfigError, runner_env
from runner.slots import STOP_SIGNALS, Supervisor, die_with_parent, serve_tickets
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


def _install_signals(worker: Worker) -> Callable[[], bool]:
    """SIGTERM/SIGINT stop `worker` (see below); returns a function telling whether one came."""
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
    return lambda: bool(seen)


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
                        help="exit after running this many jobs, in total over the slots "
                             "(1: one job per task); 0: never")
    # Set by the supervisor (runner/slots.py) for the slot processes it starts; not for people.
    parser.add_argument("--slot", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--parent", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--tickets-fd", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.slot is not None and args.parent is not None:
        die_with_parent(args.parent)  # first: a slot must not outlive its supervisor
    hide_from_same_uid()
    logger = configure_logging()
    try:
        env = runner_env()  # every setting checked before anything else happens
        get_settings()  # and those the runner shares with the API
    except (RunnerConfigError, ConfigurationError) as e:
        logger.error(str(e))
        return 2
    settings = RunnerSettings.from_queue(args.queue_url)
    if args.slot is not None:
        return serve_slot(settings, args.slot, args.tickets_fd)
    if env.jobs_at_once > 1:
        return supervise(settings, env.jobs_at_once, args.max_jobs)
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


def supervise(settings: RunnerSettings, slots: int, max_jobs: int) -> int:
    """N > 1: check the sandbox once (and clean up stale stages), then run `slots` slot
    processes under a supervisor (runner/slots.py) that also drains the DLQ; its exit status."""
    logger = Logger(service=SERVICE, child=True)
    drain = Worker(replace(settings, concurrency=1))
    drain.check_ready()  # refuses to start (SandboxUnavailable) before any slot exists
    logger.info("runner starting", extra={"runner_id": settings.runner_id, "slots": slots,
                                          "queue": settings.queue_url, "dlq": settings.dlq_url,
                                          "visibility_seconds": settings.visibility_seconds,
                                          "max_receives": settings.max_receives,
                                          "max_jobs": max_jobs})
    return Supervisor(settings, slots, max_jobs=max_jobs,
                      dead_letters=drain if settings.dlq_url else None).run()


def serve_slot(settings: RunnerSettings, number: int, tickets_fd: int | None) -> int:
    """One slot of a supervised runner: a single-slot runner without the DLQ check (the
    supervisor's); with `tickets_fd`, one job per ticket (--max-jobs across the slots)."""
    logger = Logger(service=SERVICE, child=True)
    worker = Worker(replace(settings, concurrency=1, dlq_url=None))
    worker.check_ready()
    reap_sandbox_inits()
    stopped = _install_signals(worker)
    # The supervisor started this process with the stop signals blocked (so an early one
    # waits for the handlers above): deliver any that came meanwhile.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    logger.info(f"runner slot {number} starting", extra={"runner_id": settings.runner_id})
    if tickets_fd is None:
        worker.serve()
    else:
        serve_tickets(worker, tickets_fd, stopped)
    return 0


if __name__ == "__main__":
    sys.exit(main())
