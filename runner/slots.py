"""A runner of N jobs at once as N single-slot processes under one supervisor (N > 1).

One Python process runs Python code on one core at a time (the GIL), so N job threads in one
runner process shared about one core however many the host had. `python -m runner` with
A6HUB_RUNNER_CONCURRENCY = N > 1 therefore becomes a supervisor that starts N slot processes,
`python -m runner --slot K`, each a whole single-slot runner of its own: its own claim, lease
heartbeat, cancel watch, log stream, sandbox probe, subreaper (it reaps its own sandboxes'
inits: runner/__main__.reap_sandbox_inits) and runner id. N = 1 stays one process (the Fargate
task: the runner is PID 1 and the only holder of the credentials path).

What the supervisor does, and only it:
- **Signals.** SIGTERM and SIGINT are forwarded, as they came, to every slot; each applies the
  rule a single runner applies (the first: its job gets the grace, then is released; the same
  signal again: released now). Slots run in their own process group, so a terminal's Ctrl-C
  reaches them once, through the supervisor. The supervisor exits once every slot has exited.
- **Its own death.** Each slot asks the kernel for SIGTERM when the supervisor dies
  (PR_SET_PDEATHSIG), even by SIGKILL: the slots then release or finish their jobs as on a
  SIGTERM and exit; none is left behind.
- **A slot that dies** (a non-zero exit or a signal the supervisor did not forward; also a
  slot that exits 0 on a stop signal someone else sent it, without --max-jobs) is logged
  with its exit status and restarted after `RESTART_DELAY_SECONDS`: its job, if any, comes back
  when its lease lapses, and the other slots' jobs go on undisturbed. A slot that dies
  `CRASH_LIMIT` times within `CRASH_WINDOW_SECONDS` means something is wrong with the host or the
  code, not with a job: the supervisor stops every slot and exits 1, for the orchestrator to
  replace the runner and say so.
- **Once per runner:** the dead-letter queue check (slots have none), and the stale stage and
  cgroup clean-up of its own sandbox probe, before any slot starts.
- **`--max-jobs M`** keeps its meaning: M jobs in total across the slots. The supervisor hands
  out M tickets through a pipe; a slot takes one before it polls and keeps it until it has run
  a job to its end, and exits 0 when none is left.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

from aws_lambda_powertools import Logger

from chalicelib.logs import SERVICE
from runner.worker import TRANSIENT, RunnerSettings, Worker

logger = Logger(service=SERVICE, child=True)

RESTART_DELAY_SECONDS = 1.0
CRASH_LIMIT = 5
CRASH_WINDOW_SECONDS = 60.0
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass
class Slot:
    """One slot process: its number, the process (None between a death and its restart), how
    many of the supervisor's signals it was sent, and when it may be restarted."""

    number: int
    process: subprocess.Popen[bytes] | None = None
    forwarded: int = 0
    restart_at: float | None = None
    exit_code: int | None = None


@dataclass
class Supervisor:
    """Starts `slots` slot processes of `python -m runner` on `settings.queue_url` and watches
    them (see the module's docstring); `run()` returns the runner's exit status."""

    settings: RunnerSettings
    slots: int
    max_jobs: int = 0
    dead_letters: Worker | None = None  # drains the DLQ every dlq_check_seconds (None: never)
    command: list[str] = field(default_factory=lambda: [sys.executable, "-m", "runner"])
    signals: list[int] = field(default_factory=list)
    _slots: list[Slot] = field(default_factory=list)
    _deaths: list[float] = field(default_factory=list)
    _tickets: tuple[int, int] | None = None  # (read end, write end) while tickets are handed out
    _tickets_left: int = 0
    _gave_up: bool = False

    @property
    def stopping(self) -> bool:
        return bool(self.signals) or self._gave_up

    def run(self) -> int:
        """Start the slots, forward signals, restart dead slots, drain the DLQ; returns 0 once
        every slot has exited 0 after a stop (or its last ticket), 1 otherwise."""
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        previous[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, lambda *_: None)
        old_wakeup = signal.set_wakeup_fd(wake_w)
        if self.max_jobs:
            read_end, write_end = os.pipe2(os.O_NONBLOCK)  # shared O_NONBLOCK: no slot blocks
            self._tickets, self._tickets_left = (read_end, write_end), self.max_jobs
            self._hand_out_tickets()
        try:
            self._slots = [Slot(n) for n in range(self.slots)]
            for slot in self._slots:
                self._start(slot)
            next_drain = time.monotonic()
            while any(s.process is not None or (s.restart_at is not None and not self.stopping)
                      for s in self._slots):
                timeout = 1.0
                if self.dead_letters is not None and not self.stopping:
                    if time.monotonic() >= next_drain:
                        next_drain = time.monotonic() + self.settings.dlq_check_seconds
                        self._drain()
                    timeout = min(timeout, max(0.0, next_drain - time.monotonic()))
                with contextlib.suppress(InterruptedError):
                    select.select([wake_r], [], [], timeout)
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 512)
                self._forward()
                self._reap()
                self._restart_due()
                self._hand_out_tickets()
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(wake_r)
            os.close(wake_w)
            if self._tickets is not None:
                for fd in self._tickets:
                    with contextlib.suppress(OSError):
                        os.close(fd)
        codes = [s.exit_code for s in self._slots]
        logger.info("runner stopped: every slot has exited", extra={"exit_codes": codes})
        return 1 if self._gave_up or any(code != 0 for code in codes) else 0

    # -- slots ------------------------------------------------------------------------------

    def _start(self, slot: Slot) -> None:
        argv = [*self.command, "--slot", str(slot.number), "--parent", str(os.getpid()),
                "--queue-url", self.settings.queue_url]
        pass_fds: tuple[int, ...] = ()
        if self._tickets is not None:
            argv += ["--tickets-fd", str(self._tickets[0])]
            pass_fds = (self._tickets[0],)
        # Always from the main thread: the kernel sends PR_SET_PDEATHSIG when the *thread* that
        # started a child ends, not the process. The slot inherits this signal mask: a stop
        # signal forwarded before it has installed its handlers stays pending until it has
        # (instead of killing it half started).
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            slot.process = subprocess.Popen(argv, pass_fds=pass_fds, process_group=0)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        slot.forwarded, slot.restart_at, slot.exit_code = 0, None, None
        logger.info(f"runner slot {slot.number} started (pid {slot.process.pid})")
        self._forward()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self.signals:
            logger.info(f"runner stopping: {signal.Signals(signum).name} sent to "
                        f"{len(self._live())} slots")
        self.signals.append(signum)
        self._forward()

    def _live(self) -> list[Slot]:
        return [s for s in self._slots if s.process is not None]

    def _forward(self) -> None:
        """Send each slot the supervisor's signals it has not been sent yet, in order."""
        for slot in self._live():
            while slot.forwarded < len(self.signals):
                signum = self.signals[slot.forwarded]
                slot.forwarded += 1
                assert slot.process is not None
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.process.pid, signum)

    def _reap(self) -> None:
        """Wait for every child that has ended: slots, and (as PID 1 in a container) orphans."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = next((s for s in self._live() if s.process and s.process.pid == pid), None)
            if slot is not None:
                self._ended(slot, os.waitstatus_to_exitcode(status))

    def _ended(self, slot: Slot, code: int) -> None:
        assert slot.process is not None
        slot.process.returncode = code  # waited for above: Popen must not wait again
        pid, slot.process, slot.exit_code = slot.process.pid, None, code
        how = f"exit {code}" if code >= 0 else f"signal {signal.Signals(-code).name}"
        if code == 0 and (self.stopping or self.max_jobs):  # asked to, or out of tickets
            logger.info(f"runner slot {slot.number} (pid {pid}) exited")
            return
        if self.stopping:
            logger.error(f"runner slot {slot.number} (pid {pid}) ended with {how} while stopping")
            return
        if code == 0:  # a stop signal from someone else (the slot stops as a runner does)
            how = "ended (exit 0) unasked"
        else:
            how = f"died ({how})"
        now = time.monotonic()
        self._deaths = [t for t in self._deaths if now - t < CRASH_WINDOW_SECONDS] + [now]
        if len(self._deaths) >= CRASH_LIMIT:
            logger.error(f"runner slot {slot.number} (pid {pid}) {how}: {CRASH_LIMIT} "
                         f"slot deaths within {CRASH_WINDOW_SECONDS:.0f}s; stopping the runner")
            self._gave_up = True
            self.signals.append(signal.SIGTERM)  # the others finish or release their jobs
            self._forward()
            return
        lapses = "; its job, if any, comes back when its lease lapses" if code else ""
        logger.error(f"runner slot {slot.number} (pid {pid}) {how}{lapses}; restarting it in "
                     f"{RESTART_DELAY_SECONDS:.0f}s")
        slot.restart_at = now + RESTART_DELAY_SECONDS

    def _restart_due(self) -> None:
        for slot in self._slots:
            if slot.restart_at is None:
                continue
            if self.stopping:
                slot.restart_at = None
            elif time.monotonic() >= slot.restart_at:
                self._start(slot)

    # -- once per runner --------------------------------------------------------------------

    def _drain(self) -> None:
        assert self.dead_letters is not None
        try:
            self.dead_letters.drain_dead_letters()
        except TRANSIENT as e:
            logger.warning("dead-letter check failed; retrying later", extra={"error": str(e)})
        except Exception:  # noqa: BLE001 - the DLQ check must not stop the runner
            logger.exception("dead-letter check failed")

    def _hand_out_tickets(self) -> None:
        """Write the tickets that fit in the pipe; close it once all are written (a slot that
        then finds it empty reads end-of-file: no job left to run)."""
        if self._tickets is None or self._tickets[1] < 0:
            return
        read_end, write_end = self._tickets
        while self._tickets_left > 0:
            try:
                self._tickets_left -= os.write(write_end, b"t" * min(self._tickets_left, 4096))
            except BlockingIOError:
                return
        os.close(write_end)
        self._tickets = (read_end, -1)


# -- the slot's side -------------------------------------------------------------------------

def die_with_parent(parent: int) -> None:
    """Ask for SIGTERM when the supervisor `parent` dies (prctl PR_SET_PDEATHSIG); if it already
    has, send it now. Raises OSError where the kernel refuses."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # it died before the request: no signal would ever come
        os.kill(os.getpid(), signal.SIGTERM)


def serve_tickets(worker: Worker, tickets_fd: int, stopped: Callable[[], bool]) -> None:
    """Serve one job per ticket read from `tickets_fd` until none is left (end of file) or
    `stopped()`: a ticket is kept until a job has been run to its end (Worker.max_jobs)."""
    while not stopped():
        readable, _, _ = select.select([tickets_fd], [], [], 0.5)
        if not readable:
            continue
        try:
            ticket = os.read(tickets_fd, 1)
        except BlockingIOError:  # another slot took it
            continue
        except OSError as e:
            if e.errno == errno.EINTR:
                continue
            raise
        if not ticket:
            logger.info("runner slot: no job left to run (--max-jobs)")
            return
        worker.max_jobs = worker.jobs_run + 1
        worker.stopping.clear()  # set by the last ticket's job: cleared before `stopped()` is read
        if stopped():
            return
        worker.serve()
