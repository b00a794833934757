"""The runner's queue side: long-poll, claim, heartbeat, cancel, run, record, delete; DLQ upkeep.

Delivery is at least once and several runners share the queue, so the job record, not the
message, decides what happens: a message whose job has ended is deleted unseen, one whose job
another runner holds under a live lease is put back until that lease could have expired, and
only a conditional claim (pending, or running under an expired lease) starts the tools.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PynamoDBException

from chalicelib import jobqueue, metrics, storage
from chalicelib.config import get_settings
from chalicelib.logs import SERVICE
from chalicelib.models.jobs import CANCELLED, FAILED, RUNNING, TERMINAL, Job
from chalicelib.schemas.jobs import ArtifactPublic, InputFilePublic, JobMessage, StepPublic
from chalicelib.services import job_lifecycle
from chalicelib.services.job_lifecycle import JobResult
from chalicelib.services.webhooks import delivery as webhook_delivery
from runner import cache, calls, clients, commit_tree, importer, tools, workspace
from runner.deletes import BatchDeleter
from runner.jobdirs import JobDirs
from runner.limits import Limits
from runner.logstream import LogStream
from runner.settings import job_limits, runner_env

if TYPE_CHECKING:
    from runner.execute import ExecutionResult

logger = Logger(service=SERVICE, child=True)

TRANSIENT = (BotoCoreError, ClientError, PynamoDBException)
RUNNER_LOG_ALLOWANCE = 64 * 1024  # room for the runner's own lines next to the tools' cap


Execute = Callable[[str, dict[str, Any], JobDirs, Limits, Callable[[bytes], None], threading.Event],
                   "ExecutionResult"]


@dataclass(frozen=True)
class RunnerSettings:
    """The queue side's settings: the queue's own shape, then A6HUB_RUNNER_* (runner/settings.py)."""

    queue_url: str
    dlq_url: str | None
    visibility_seconds: int
    max_receives: int | None
    wait_seconds: int = 20
    cancel_poll_seconds: float = 0.5
    log_flush_seconds: float = 0.5
    stop_grace_seconds: float = 20.0
    dlq_check_seconds: float = 30.0
    release_backoff_seconds: int = 10
    concurrency: int = 1  # jobs run at once (A6HUB_RUNNER_CONCURRENCY, default: the cores)
    runner_id: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")

    @property
    def lease_seconds(self) -> float:
        return float(self.visibility_seconds)

    @property
    def heartbeat_seconds(self) -> float:
        return max(self.visibility_seconds / 3.0, 0.5)

    @classmethod
    def from_queue(cls, queue_url: str | None = None) -> RunnerSettings:
        """Read the queue's visibility timeout and redrive policy; the rest from the runner's
        settings (RunnerConfigError on a bad value, RuntimeError without a queue)."""
        env = runner_env()
        url = queue_url or get_settings().jobs_queue_url  # shared with the API (its Settings)
        if not url:
            raise RuntimeError("A6HUB_JOBS_QUEUE_URL is not set: the runner has no queue to poll")
        shape = jobqueue.queue_shape(url, env.jobs_dlq_url or None)
        return cls(
            queue_url=url, dlq_url=shape.dlq_url, visibility_seconds=shape.visibility_seconds,
            max_receives=shape.max_receives, wait_seconds=env.wait_seconds,
            cancel_poll_seconds=env.cancel_poll_seconds, log_flush_seconds=env.log_flush_seconds,
            stop_grace_seconds=env.stop_grace_seconds, dlq_check_seconds=env.dlq_check_seconds,
            concurrency=env.jobs_at_once,
        )


def default_execute() -> Execute:
    from runner.execute import execute_job

    return execute_job


@dataclass
class Run:
    """What the watcher thread and the main thread share about the job being run."""

    job: Job
    receipt: str
    cancelled: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    lost: bool = False  # another runner took the job over: our result must not be written
    user_cancel: bool = False
    releasing: bool = False  # the runner is stopping: give the job back instead of finishing
    timings: dict[str, float] = field(default_factory=dict)
    prefetch: Future[list[commit_tree.CommitFile]] | None = None  # the job's commit's files
    rows: Future[dict[str, tuple[int, int, str]]] | None = None  # the files table, prefetched
    call_count: calls.CallCount = field(default_factory=calls.CallCount)  # AWS calls for it
    remember: Future[None] | None = None  # the cache key being stored, beside the log's last PUT
    log_closed: Future[None] | None = None  # the log's last PUT, started once the tools ended
    dirs: JobDirs | None = None  # the job's stage: removed once the job's end is recorded


class Worker:
    def __init__(self, settings: RunnerSettings, limits: Limits | None = None,
                 execute: Execute | None = None, max_jobs: int = 0) -> None:
        self.settings = settings
        self.max_jobs = max_jobs
        self.limits = limits or job_limits()
        self._execute = execute
        # Cached results stand for the real tools' runs only (runner/cache.py).
        self.caching = execute is None
        self.stopping = threading.Event()
        self._stop_deadline: float | None = None
        self._next_dlq_check = 0.0
        self.concurrency = max(1, settings.concurrency)
        self._prefetcher = ThreadPoolExecutor(max_workers=2 * self.concurrency,
                                              thread_name_prefix="prefetch")
        self.jobs_run = 0
        self._lock = threading.Condition()
        self._in_flight = 0  # deliveries being handled (claimed or about to be)
        self.running: dict[int, Run] = {}  # job id -> the job being run, for the stop message
        self._deletes: BatchDeleter | None = None  # while serving: ended jobs' messages, batched
        calls.install()

    @property
    def execute(self) -> Execute:
        if self._execute is None:
            self._execute = default_execute()
        return self._execute

    # -- the loop --------------------------------------------------------------------------

    def stop(self, grace_seconds: float | None = None) -> None:
        """Ask the loop to end; a running job gets `grace_seconds` to finish, then is released."""
        grace = self.settings.stop_grace_seconds if grace_seconds is None else grace_seconds
        deadline = time.monotonic() + grace
        if self._stop_deadline is None or deadline < self._stop_deadline:
            self._stop_deadline = deadline
        self.stopping.set()
        with self._lock:
            runs = list(self.running.values())
            self._lock.notify_all()
        if not runs:
            logger.info("runner stopping: no job running")
        for run in runs:
            if grace > 0:
                logger.info(f"runner stopping: job {run.job.id} gets {grace:.0f}s to finish, "
                            "then goes back to the queue", extra={"job_id": run.job.id})
            else:
                logger.info(f"runner stopping: releasing job {run.job.id} now",
                            extra={"job_id": run.job.id})

    @property
    def current(self) -> Run | None:
        """One job being run (any), or None."""
        with self._lock:
            return next(iter(self.running.values()), None)

    def check_ready(self) -> None:
        """Load the executor now so a runner without its sandbox refuses to start, and make the
        AWS clients a job uses (runner/clients.py) so that the first job does not pay for them."""
        _ = self.execute
        clients.warm()
        from runner.sandbox import SandboxUnavailable, sandbox_problem, unsandboxed_allowed

        problem = sandbox_problem()  # runs /bin/true in a sandbox once: installed AND working
        if problem is None:
            return
        if not unsandboxed_allowed():
            raise SandboxUnavailable(f"{problem}: refusing to run jobs; set "
                                     "A6HUB_RUNNER_UNSANDBOXED=1 only where another boundary "
                                     "isolates jobs (see runner/README.md)")
        logger.warning("RUNNING JOBS WITHOUT A SANDBOX (A6HUB_RUNNER_UNSANDBOXED=1): "
                       "job code can read this machine's files and credentials")

    def serve(self) -> None:
        """Poll and run up to `concurrency` jobs at once, each on its own thread, until stopped;
        returns once every job has finished or been released."""
        logger.info("runner polling", extra={"queue": self.settings.queue_url,
                                             "runner_id": self.settings.runner_id,
                                             "concurrency": self.concurrency})
        self._deletes = BatchDeleter(self.settings.queue_url)
        try:
            self._serve()
        finally:
            self._deletes.close()
            self._deletes = None
        logger.info("runner stopped", extra={"runner_id": self.settings.runner_id})

    def _serve(self) -> None:
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="job") as pool:
            while not self.stopping.is_set():
                room = self._wait_for_room()
                if room == 0:
                    break
                try:
                    for delivery in self._receive(room):
                        if self.stopping.is_set():
                            self._change_visibility(delivery.receipt, 0)
                            continue
                        with self._lock:
                            self._in_flight += 1
                        pool.submit(self._handle_in_slot, delivery)
                except TRANSIENT as e:
                    logger.warning("queue poll failed; retrying", extra={"error": str(e)})
                    self.stopping.wait(1.0)
                except Exception:  # noqa: BLE001 - one bad receive must not stop the runner
                    logger.exception("polling the queue failed")
                    self.stopping.wait(1.0)

    def _wait_for_room(self) -> int:
        """Block until a slot is free (or stopping: 0); how many messages to ask for (1..10)."""
        with self._lock:
            while not self.stopping.is_set():
                room = self.concurrency - self._in_flight
                if self.max_jobs:
                    room = min(room, self.max_jobs - self.jobs_run - self._in_flight)
                if room > 0:
                    return min(room, 10)
                self._lock.wait(1.0)
        return 0

    def _handle_in_slot(self, delivery: jobqueue.Delivery) -> None:
        try:
            self.handle(delivery)
        except Exception:  # noqa: BLE001 - one bad delivery must not stop the runner
            # The message stays in flight; its visibility timeout and the DLQ decide.
            logger.exception("handling a message failed")
        finally:
            with self._lock:
                self._in_flight -= 1
                self._lock.notify_all()

    def _receive(self, max_messages: int, wait_seconds: int | None = None) -> list[jobqueue.Delivery]:
        if self.settings.dlq_url and time.monotonic() >= self._next_dlq_check:
            self._next_dlq_check = time.monotonic() + self.settings.dlq_check_seconds
            self.drain_dead_letters()
        return jobqueue.receive(
            self.settings.queue_url,
            self.settings.wait_seconds if wait_seconds is None else wait_seconds,
            max_messages=max_messages)

    def poll_once(self, wait_seconds: int | None = None) -> int:
        """One receive of one message (and, when due, one DLQ check), handled on this thread;
        returns how many messages were handled."""
        deliveries = self._receive(1, wait_seconds)
        for delivery in deliveries:
            if self.stopping.is_set():
                self._change_visibility(delivery.receipt, 0)
                continue
            self.handle(delivery)
        return len(deliveries)

    # -- one message -----------------------------------------------------------------------

    def _delete(self, receipt: str, queue_url: str | None = None) -> None:
        jobqueue.delete(queue_url or self.settings.queue_url, receipt)

    def _delete_ended(self, receipt: str) -> None:
        """Delete the message of a job whose record is final: batched with the other slots'
        while serving (runner/deletes.py), at once otherwise (poll_once, handle in tests)."""
        deletes = self._deletes
        if deletes is not None:
            deletes.delete(receipt)
        else:
            self._delete(receipt)

    def _change_visibility(self, receipt: str, seconds: int, queue_url: str | None = None) -> None:
        jobqueue.set_visibility(queue_url or self.settings.queue_url, receipt, seconds)

    def _message_body(self, delivery: jobqueue.Delivery) -> JobMessage | None:
        if delivery.message is None:
            logger.error("dropping a malformed job message", extra={"body": delivery.raw[:200]})
        return delivery.message

    def _job_of(self, delivery: jobqueue.Delivery) -> Job | None:
        body = self._message_body(delivery)
        return job_lifecycle.load(body.project_id, body.job_id) if body else None

    def _until_lease_ends(self, job: Job) -> int:
        return int(float(job.lease_expires_at or 0) - time.time()) + 1

    def handle(self, delivery: jobqueue.Delivery) -> str:
        """Decide what one delivery means; returns what was done (for logs and tests)."""
        count = calls.CallCount()
        with calls.counting(count):
            return self._handle(delivery, count)

    def _handle(self, delivery: jobqueue.Delivery, count: calls.CallCount) -> str:
        receipt = delivery.receipt
        if delivery.message is None:  # a webhook attempt shares the queue (services/webhooks)
            sent = webhook_delivery.handle_message(delivery.raw)
            if sent is not None:
                self._delete(receipt)
                return f"webhook {sent}"
        body = self._message_body(delivery)
        # Claim first (the common case costs one write, which returns the whole record); read
        # only when the claim is refused, to tell a duplicate from a job held elsewhere.
        job = Job(body.project_id, body.job_id) if body else None
        # The commit's files are fetched while the claim is in flight (discarded if refused).
        prefetch = (self._prefetcher.submit(calls.bound(commit_tree.fetch_commit, count),
                                            body.project_id, body.commit)
                    if body is not None and body.commit else None)
        # So is the files table's listing (one Query) that names each input's file id/version.
        rows = (self._prefetcher.submit(calls.bound(workspace.files_table_rows, count),
                                        body.project_id)
                if body is not None and body.commit else None)
        if job is None or not job_lifecycle.claim(job, self.settings.runner_id,
                                                  self.settings.lease_seconds):
            for future in (prefetch, rows):
                if future is not None:
                    future.cancel()  # if not started: a duplicate must not delay the next job
            return self._unclaimable(body, receipt)
        if prefetch is not None and (job.cancel_requested or body is None
                                     or body.commit != job.commit):
            prefetch.cancel()  # the record is the truth: a message naming another commit is stale
            prefetch = None
        if job.cancel_requested:
            self._finish_without_running(job, CANCELLED, "cancelled before it started")
            self._delete_ended(receipt)
            return "cancelled"
        metrics.job_started(job.job_type, _seconds_since(job.created_at))
        run = Run(job=job, receipt=receipt, prefetch=prefetch, rows=rows, call_count=count)
        with self._lock:
            self.running[int(job.id)] = run
        try:
            return self.run(run)
        finally:
            with self._lock:
                self.running.pop(int(job.id), None)

    def _unclaimable(self, body: JobMessage | None, receipt: str) -> str:
        job = job_lifecycle.load(body.project_id, body.job_id) if body else None
        if job is None or job.status in TERMINAL:
            self._delete_ended(receipt)  # unknown, deleted with its project, or a duplicate of a done job
            return "dropped"
        if job_lifecycle.lease_is_live(job):
            # Another runner is on it; look again once its lease could have lapsed.
            self._change_visibility(receipt, self._until_lease_ends(job))
            return "deferred"
        return "lost-claim"  # claimable again already (a lease lapsed meanwhile): redelivery decides

    def _finish_without_running(self, job: Job, status: str, reason: str) -> None:
        job_lifecycle.finish(job, self.settings.runner_id, JobResult(
            status=status, error_message=reason, exit_code=None, duration_s=0.0, inputs=[],
            steps=[], tool_versions={}, artifacts=[], summary={}, log_bytes=0,
            log_truncated=False))

    # -- running a claimed job -------------------------------------------------------------

    def run(self, run: Run) -> str:
        job = run.job
        runner_id = self.settings.runner_id
        log = LogStream(storage.job_log_key(job.project_id, job.id, int(job.attempts or 1)),
                        self.limits.log_bytes + RUNNER_LOG_ALLOWANCE,
                        self.settings.log_flush_seconds,
                        on_flush=lambda size: job_lifecycle.record_log_progress(
                            job, runner_id, size)).start()
        watcher = threading.Thread(target=calls.bound(self._watch, run.call_count), args=(run, log),
                                   name="job-watch", daemon=True)
        watcher.start()
        started = time.monotonic()
        log.line(f"job {job.id} ({job.job_type}), attempt {int(job.attempts or 1)}, "
                 f"runner {self.settings.runner_id}")
        try:
            result = (importer.run_import(job, log.line, run.cancelled)
                      if job.job_type in importer.JOB_TYPES else self._execute_tools(run, log))
        except TRANSIENT as e:
            # Infrastructure trouble (S3, DynamoDB): give the job back; the redrive policy
            # bounds the retries and the DLQ check fails it with the reason.
            logger.warning("job run failed on infrastructure", extra={"job_id": job.id,
                                                                       "error": str(e)})
            run.releasing = True
            result = None
        except Exception as e:  # noqa: BLE001 - a runner bug fails this job, not the runner
            logger.exception("job run raised", extra={"job_id": job.id})
            log.line(f"internal runner error: {type(e).__name__}")
            result = _failed_result(f"internal runner error: {type(e).__name__}: {e}"[:500], [], log)
        finally:
            run.done.set()
            watcher.join()
        result_duration = time.monotonic() - started
        try:
            return self._settle(run, log, result, result_duration)
        finally:
            if run.dirs is not None:  # off the path to `completed`: after the finish
                run.dirs.remove_stage()

    def _execute_tools(self, run: Run, log: LogStream) -> JobResult:
        job = run.job
        clock = [time.monotonic()]

        def lap() -> float:
            clock.append(time.monotonic())
            return round(clock[-1] - clock[-2], 4)

        # The stage outlives this method: run() removes it once the job's end is recorded.
        dirs = run.dirs = JobDirs.create()
        # The cache key and the plan read the same files: one parse of the HDL serves both.
        with tools.sharing_models(dirs.src):
            try:
                files = self._commit_files(run, log)
                rows = (run.rows.result() if run.rows is not None
                        else workspace.files_table_rows(job.project_id))
                inputs = workspace.write_files(dirs.src, files, rows)
            except commit_tree.MaterialiseError as e:
                log.line(str(e))
                return _failed_result(str(e), [], log)
            run.timings["materialise_s"] = lap()
            log.line(f"{len(inputs)} project files in src/")
            cached = (cache.before_run(job, dirs.src, inputs, log, self._deferred(run))
                      if self.caching and not job.grading else cache.Lookup(None))
            if cached.result is not None:
                return cached.result
            outcome = self.execute(job.job_type, dict(job.config or {}), dirs, self.limits,
                                   log.write, run.cancelled)
            cached = cache.settle(cached, log)  # a no_cache job's key, read from src beside the tools
            run.timings["execute_s"] = lap()
            if run.lost:  # the new owner uploads under the same keys; ours would overwrite them
                return _failed_result("job taken over by another runner", inputs, log)
            # The tools have ended: the log's last PUT and the cache key's PutItem go now, beside
            # the artifacts' uploads (_settle waits for both before the finish, so a client that
            # sees `completed` has the whole log and can already hit the cache; it PUTs the log
            # again only if a line was added since).
            run.log_closed = self._prefetcher.submit(calls.bound(log.close, run.call_count))
            run.remember = self._prefetcher.submit(calls.bound(cache.after_run, run.call_count),
                                                   cached, job, outcome.status)
            artifacts = workspace.upload_artifacts(job.project_id, job.id, int(job.attempts or 1),
                                                   dirs.out, list(outcome.artifacts), log.line)
            run.timings["upload_s"] = lap()
        result = _result_of(outcome, inputs, artifacts, run.timings["execute_s"], log, run)
        cache.stamp(cached, result)
        return result

    def _deferred(self, run: Run) -> cache.Defer:
        """Submit work for `run` to the runner's pool (its AWS calls count for the job)."""
        return lambda fn, *args: self._prefetcher.submit(calls.bound(fn, run.call_count), *args)

    def _commit_files(self, run: Run, log: LogStream) -> list[commit_tree.CommitFile]:
        """The files of the commit the job records (main's head at submit, or the one named)."""
        job = run.job
        if not job.commit:  # submitted before the project had a commit: it has no files
            log.line("the project had no commit when the job was submitted: no files")
            return []
        log.line(f"files from commit {job.commit}")
        if job.grading:  # the student's tree and the assignment's hidden files (no prefetch)
            from runner.graded_tree import fetch_graded

            log.line(f"hidden files from the assignment's commit "
                     f"{job.grading.get('assignment_commit')}")
            return fetch_graded(dict(job.grading), str(job.commit))
        if run.prefetch is not None:
            return run.prefetch.result()
        return commit_tree.fetch_commit(job.project_id, str(job.commit))

    def _settle(self, run: Run, log: LogStream, result: JobResult | None,
                duration: float) -> str:
        job = run.job
        closing_failed: BaseException | None = None
        if run.log_closed is not None:  # never two PUTs of the log at once: wait for the first
            try:
                run.log_closed.result()
            except TRANSIENT as e:
                closing_failed = e
        if run.lost:
            # Taken over (or deleted with its project): the new owner writes the same log key.
            log.abandon()
            return "lost"
        if run.releasing and (result is None or result.status == CANCELLED) and not run.user_cancel:
            closing_failed = None  # releasing: the log is a courtesy (_close_quietly below)
            log.line("runner stopping: job released back to the queue" if result is not None
                     else "storage unreachable: job released back to the queue")
            _close_quietly(log)  # storage may be what failed; releasing matters more
            try:
                job_lifecycle.release(job, self.settings.runner_id)
                self._change_visibility(run.receipt, 0 if result is not None
                                        else self.settings.release_backoff_seconds)
            except TRANSIENT as e:
                # Storage is down: the lease lapses and the message comes back by itself.
                logger.warning(f"could not release job {job.id}; it runs again once its lease "
                               "lapses and its message becomes visible",
                               extra={"job_id": job.id, "error": str(e)})
                return "abandoned"
            logger.info(f"job {job.id} released back to the queue", extra={"job_id": job.id})
            return "released"
        assert result is not None
        if closing_failed is not None:
            raise closing_failed  # as a failed last PUT: the message stays, redelivery decides
        result.duration_s = duration
        flush_started = time.monotonic()
        log.close()  # after the early close (if any): PUTs again only the lines added since
        if run.remember is not None:
            run.remember.result()  # after_run logs its own failures; it raises nothing
        run.timings["log_flush_s"] = round(time.monotonic() - flush_started, 4)
        result.log_bytes = log.size
        result.log_truncated = result.log_truncated or log.truncated
        # Where the runner's own time went (the bench reads it; users see it on the job), and
        # how many AWS calls the job cost: those so far, plus the finish and the delete below
        # (while serving, its share of a DeleteMessageBatch: counted as one call).
        by_op = run.call_count.snapshot()
        by_op["UpdateItem"] = by_op.get("UpdateItem", 0) + 1
        delete_op = "DeleteMessage" if self._deletes is None else "DeleteMessageBatch"
        by_op[delete_op] = by_op.get(delete_op, 0) + 1
        result.summary = {**result.summary, "runner": {
            **run.timings, "aws_calls": sum(by_op.values()), "aws_calls_by_op": by_op}}
        if job_lifecycle.finish(job, self.settings.runner_id, result):
            metrics.job_finished(job.job_type, result.status, result.duration_s)
        self._delete_ended(run.receipt)
        with self._lock:
            self.jobs_run += 1
            if self.max_jobs and self.jobs_run >= self.max_jobs:
                self.stopping.set()
                self._lock.notify_all()
        return result.status

    def _watch(self, run: Run, log: LogStream) -> None:
        """Every ~0.5 s: look for cancel / takeover / shutdown; every visibility/3: renew."""
        next_beat = time.monotonic() + self.settings.heartbeat_seconds
        marked_truncated = False
        while not run.done.wait(self.settings.cancel_poll_seconds):
            try:
                self._check(run)
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + self.settings.heartbeat_seconds
                    self._heartbeat(run)
                if log.truncated and not marked_truncated:
                    job_lifecycle.mark_log_truncated(run.job, self.settings.runner_id)
                    marked_truncated = True
            except TRANSIENT as e:  # keep watching; the lease outlives a few failed beats
                logger.warning("job watch failed", extra={"job_id": run.job.id, "error": str(e)})

    def _check(self, run: Run) -> None:
        # The stop deadline first: it must hold even while storage cannot be read.
        if self._stop_deadline is not None and time.monotonic() >= self._stop_deadline:
            run.releasing = True
            run.cancelled.set()
        fresh = job_lifecycle.load(run.job.project_id, run.job.id)
        if (fresh is None or fresh.status != RUNNING or fresh.runner_id != self.settings.runner_id
                or fresh.attempts != run.job.attempts):  # a later claim, maybe from our own slot
            run.lost = True
            run.cancelled.set()
        elif fresh.cancel_requested:
            run.user_cancel = True
            run.cancelled.set()

    def _heartbeat(self, run: Run) -> None:
        # The lease first: it is what says the job is ours. A message that bounced meanwhile (to
        # the DLQ, where its receipt is no longer valid) must not stop the renewal, or the DLQ
        # check fails a job that runs fine here once the lease lapses.
        if not job_lifecycle.renew_lease(run.job, self.settings.runner_id,
                                         self.settings.lease_seconds):
            run.lost = True
            run.cancelled.set()
            return
        self._change_visibility(run.receipt, self.settings.visibility_seconds)

    # -- dead letters ----------------------------------------------------------------------

    def drain_dead_letters(self) -> int:
        """Fail the jobs whose messages the queue gave up on; returns how many were failed."""
        assert self.settings.dlq_url
        failed = 0
        for delivery in jobqueue.receive(self.settings.dlq_url, 0, max_messages=10):
            failed += self._dead_letter(delivery)
        return failed

    def _dead_letter(self, delivery: jobqueue.Delivery) -> int:
        receipt, dlq = delivery.receipt, self.settings.dlq_url
        if delivery.message is None and webhook_delivery.dead_lettered(delivery.raw):
            self._delete(receipt, dlq)
            return 0
        job = self._job_of(delivery)
        if job is not None and job_lifecycle.lease_is_live(job):
            # A duplicate that bounced while its job runs fine elsewhere: decide after the lease.
            self._change_visibility(receipt, self._until_lease_ends(job), dlq)
            return 0
        failed = 0
        if job is not None and job.status not in TERMINAL:
            receives = self.settings.max_receives or "several"
            reason = (f"gave up after {receives} deliveries of the job's queue message without "
                      "a result (the runner crashed, was killed or could not reach storage "
                      "each time); the message went to the dead-letter queue")
            if job_lifecycle.fail_unstarted(job, reason):
                failed = 1
                metrics.job_finished(job.job_type, FAILED, None)
                logger.error("job dead-lettered", extra={"job_id": job.id,
                                                         "project_id": job.project_id,
                                                         "metric": "DeadLetteredJobs"})
        self._delete(receipt, dlq)
        return failed


def _close_quietly(log: LogStream) -> None:
    try:
        log.close()
    except TRANSIENT as e:
        logger.warning("final log write failed", extra={"key": log.key, "error": str(e)})


def _seconds_since(iso: str) -> float:
    try:
        then = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return (datetime.now(UTC) - then).total_seconds()


def _exit_code(steps: list[StepPublic]) -> int | None:
    codes = [s.exit_code for s in steps if s.exit_code is not None]
    failing = [c for c in codes if c != 0]
    if failing:
        return int(failing[0])
    return int(codes[-1]) if codes else None


def _result_of(outcome: ExecutionResult, inputs: list[InputFilePublic],
               artifacts: list[ArtifactPublic], duration: float, log: LogStream,
               run: Run) -> JobResult:
    status = outcome.status
    error = outcome.error_message
    if status == CANCELLED and run.user_cancel and not error:
        error = "cancelled on request"
    # An injected executor (tests) may hand back its own step objects: read them as StepPublic.
    steps = [StepPublic.model_validate(s, from_attributes=True) for s in outcome.steps]
    return JobResult(
        status=status, error_message=error, exit_code=_exit_code(steps),
        duration_s=duration, inputs=inputs, steps=steps,
        tool_versions=dict(outcome.tool_versions), artifacts=artifacts,
        summary=json.loads(json.dumps(outcome.summary, default=str)), log_bytes=log.size,
        log_truncated=log.truncated or bool(getattr(outcome, "log_truncated", False)))


def _failed_result(reason: str, inputs: list[InputFilePublic], log: LogStream) -> JobResult:
    return JobResult(
        status=FAILED, error_message=reason, exit_code=None, duration_s=0.0, inputs=inputs,
        steps=[], tool_versions={}, artifacts=[], summary={}, log_bytes=log.size,
        log_truncated=log.truncated)
