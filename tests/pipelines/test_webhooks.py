"""Outbound webhooks: the SSRF guard at creation and at delivery, signed deliveries of pipeline
ends to a real local HTTP receiver, retries, timeouts and redirects.

The receiver listens on 127.0.0.1, which the guard refuses; as the import tests do, the tests
that deliver to it set A6HUB_IMPORT_ALLOW_PRIVATE=1 (tests/git/test_git_import.py), and the
tests of refusals leave it unset. Deliveries go through the jobs queue: an in-process runner
(`Worker.poll_once`) makes the attempts, as `python -m runner` does.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest

from bench.jobs import COUNTER
from devstack.emulator import free_port
from tests.conftest import Api, UserCtx, make_file, make_project
from tests.git_server import serving
from tests.jobs_support import Queues, api_queue, make_queues, wait_for
from tests.settings_override import settings_env

LINT_PIPELINE = "jobs:\n  lint:\n    type: lint\n    config: {top: counter}\n"
MAX_ATTEMPTS = 3
PRIVATE_OK = {"A6HUB_IMPORT_ALLOW_PRIVATE": 1, "A6HUB_WEBHOOK_MAX_ATTEMPTS": MAX_ATTEMPTS,
              "A6HUB_WEBHOOK_RETRY_SECONDS": 1, "A6HUB_WEBHOOK_TIMEOUT_SECONDS": 2}


# --- a receiver -----------------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 answering POSTs per `mode`: ok (200), fail (500), hang (no
    answer until the test ends), redirect (302 to /landed on itself), flood (200 and a body
    that never ends)."""

    mode: str
    url: str = ""
    got: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


@contextmanager
def receiver(mode: str) -> Iterator[Receiver]:
    state = Receiver(mode)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.got.append(Received(self.path, dict(self.headers.items()), body))
            if state.mode == "hang":
                state.release.wait(30)
                return
            if state.mode == "flood":  # an answer that never ends
                self.send_response(200)
                self.end_headers()
                try:
                    while not state.release.is_set():
                        self.wfile.write(b"x" * 65536)
                except OSError:
                    pass  # the client hung up, as it should
                return
            if state.mode == "redirect" and self.path != "/landed":
                self.send_response(302)
                self.send_header("Location", f"{state.url.rsplit('/', 1)[0]}/landed")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            answer = b"thanks" if state.mode == "ok" else b"receiver broke"
            self.send_response(200 if state.mode in ("ok", "redirect") else 500)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    with serving(server):
        try:
            yield state
        finally:
            state.release.set()  # before the shutdown: a hanging handler would hold it


def verify(secret: str, received: Received) -> bool:
    """What a receiver does (GitHub's scheme): HMAC-SHA256 of the raw body, compared in
    constant time with the X-A6hub-Signature-256 header."""
    expected = "sha256=" + hmac.new(secret.encode(), received.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, received.headers.get("X-A6hub-Signature-256", ""))


# --- helpers --------------------------------------------------------------------------------------


@pytest.fixture
def queue(emulator: Any) -> Iterator[Queues]:
    """A private jobs queue: pipeline jobs and webhook attempts land there; the test's own
    in-process runner takes them."""
    q = make_queues(max_receives=5, visibility=30)
    with api_queue(q.url):
        yield q


def _p(pid: int) -> str:
    return f"/api/v1/projects/{pid}"


def run_until(queue: Queues, done: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Let an in-process runner take messages from the queue until `done()` holds."""
    from runner.worker import RunnerSettings, Worker

    settings = dataclasses.replace(RunnerSettings.from_queue(queue.url), wait_seconds=1,
                                   dlq_check_seconds=600)
    worker = Worker(settings)

    def step() -> Any:
        result = done()
        if not result:
            worker.poll_once(wait_seconds=1)
        return result

    return wait_for(step, timeout=timeout, what="webhook deliveries")


def create(api: Api, user: UserCtx, pid: int, url: str, secret: str | None = None) -> Any:
    body = {"url": url} if secret is None else {"url": url, "secret": secret}
    return api.post(f"{_p(pid)}/webhooks", token=user.token, json_body=body)


def deliveries(api: Api, user: UserCtx, pid: int, hook_id: int) -> list[dict[str, Any]]:
    reply = api.get(f"{_p(pid)}/webhooks/{hook_id}/deliveries", token=user.token)
    assert reply.status == 200, reply.body
    return list(reply.json)


def ended(api: Api, user: UserCtx, pid: int, hook_id: int) -> list[dict[str, Any]] | None:
    """The deliveries once none is pending any more (None before)."""
    rows = deliveries(api, user, pid, hook_id)
    return rows if rows and all(r["status"] != "pending" for r in rows) else None


def finish_pipeline_job(api: Api, owner: UserCtx, pid: int) -> dict[str, Any]:
    """Complete the pipeline's one job as a runner would; the pipeline, as the API shows it."""
    from chalicelib.services import job_lifecycle

    [pipeline] = api.get(f"{_p(pid)}/pipelines", token=owner.token).json
    job = job_lifecycle.load(pid, pipeline["jobs"][0]["job_id"])
    assert job is not None and job_lifecycle.claim(job, "test-runner", 60)
    assert job_lifecycle.finish(job, "test-runner", job_lifecycle.JobResult(
        status="completed", error_message=None, exit_code=0, duration_s=0.1, inputs=[],
        steps=[], tool_versions={}, artifacts=[], summary={}, log_bytes=0, log_truncated=False))
    [pipeline] = api.get(f"{_p(pid)}/pipelines", token=owner.token).json
    return dict(pipeline)


# --- creation and the guard -------------------------------------------------------------------------


def _loopback_name() -> str | None:
    """This machine's host name when it resolves to a loopback address (Debian: 127.0.1.1)."""
    name = socket.gethostname()
    try:
        return name if socket.gethostbyname(name).startswith("127.") else None
    except OSError:
        return None


REFUSED = [
    ("https://169.254.169.254/latest/meta-data/", "link-local"),
    ("https://[fd00:ec2::254]/latest/meta-data/", "metadata"),
    ("https://10.1.2.3/hook", "private"),
    ("https://192.168.0.10:8443/hook", "private"),
    ("https://localhost/hook", "loopback"),
    ("https://[::1]/hook", "loopback"),
    ("https://[::ffff:127.0.0.1]/hook", "loopback"),
    ("https://0.0.0.0/hook", "unspecified"),
    ("http://93.184.215.14/hook", "https:// only"),
    ("ftp://93.184.215.14/hook", "https:// only"),
    ("https://ada:pw@93.184.215.14/hook", "credentials"),
    ("https://93.184.215.14:25/hook", "port 25"),
    ("https://93.184.215.14/hook#frag", "fragment"),
    ("https://no-such-host.invalid/hook", "could not be resolved"),
]
if _loopback_name():
    REFUSED.append((f"https://{_loopback_name()}:8443/hook", "loopback"))


@pytest.mark.parametrize(("url", "why"), REFUSED, ids=[u for u, _ in REFUSED])
def test_an_internal_or_malformed_url_is_refused_at_creation_and_nothing_is_stored(
        api: Api, owner: UserCtx, url: str, why: str) -> None:
    # GIVEN a project of the owner's (and the guard as in production: private addresses refused)
    pid = int(make_project(api, owner)["id"])
    # WHEN a webhook to the URL is created
    reply = create(api, owner, pid, url)
    # THEN it is refused with the reason, and no webhook exists
    assert reply.status == 422, reply.body
    assert why in reply.json["detail"], reply.json
    assert api.get(f"{_p(pid)}/webhooks", token=owner.token).json == []


def test_a_short_or_odd_secret_and_too_many_webhooks_are_refused(
        api: Api, owner: UserCtx) -> None:
    pid = int(make_project(api, owner)["id"])
    url = "https://93.184.215.14/hook"
    assert create(api, owner, pid, url, secret="short").status == 422
    assert create(api, owner, pid, url, secret="x" * 20 + " y").status == 422
    for _ in range(5):
        assert create(api, owner, pid, url).status == 201
    sixth = create(api, owner, pid, url)
    assert sixth.status == 409 and "at most 5" in sixth.json["detail"]
    assert len(api.get(f"{_p(pid)}/webhooks", token=owner.token).json) == 5


@pytest.mark.integration
@pytest.mark.slow
def test_concurrent_creates_over_http_never_pass_the_cap(
        api: Api, owner: UserCtx, tmp_path: Path) -> None:
    import requests

    from tests.api.test_concurrency import bearer, race
    from tests.conftest import serving_api

    url = "https://93.184.215.14/hook"
    with serving_api(tmp_path / "server.log", workers=6) as server:
        for _ in range(4):  # a race is not lost every time: several rounds
            # GIVEN a project with 4 webhooks (room for 1 more)
            pid = int(make_project(api, owner)["id"])
            for _ in range(4):
                assert create(api, owner, pid, url).status == 201
            # WHEN 6 creates race each other, one per server process (as 6 Lambda instances)
            post = functools.partial(requests.post, f"{server}{_p(pid)}/webhooks", timeout=60,
                                     json={"url": url}, headers=bearer(owner))
            replies = race(*[post] * 6)
            # THEN exactly 1 was created and the other 5 refused with the cap named; 5 exist
            codes = sorted(r.status_code for r in replies)
            assert codes == [201] + [409] * 5, [r.text for r in replies]
            assert all("at most 5" in r.json()["detail"] for r in replies if r.status_code == 409)
            hooks = api.get(f"{_p(pid)}/webhooks", token=owner.token).json
            assert len(hooks) == 5
    # AND a delete frees one slot, for one create only
    assert api.delete(f"{_p(pid)}/webhooks/{hooks[0]['id']}", token=owner.token).status == 204
    assert create(api, owner, pid, url).status == 201
    assert create(api, owner, pid, url).status == 409


def test_webhooks_made_before_the_count_existed_are_counted(api: Api, owner: UserCtx) -> None:
    from chalicelib.models.projects import Project

    # GIVEN a project with 4 webhooks and no `webhook_count` (as one from before it existed)
    pid = int(make_project(api, owner)["id"])
    url = "https://93.184.215.14/hook"
    for _ in range(4):
        assert create(api, owner, pid, url).status == 201
    Project(pid).update(actions=[Project.webhook_count.remove()], add_version_condition=False)
    assert Project.get(pid, consistent_read=True).webhook_count is None
    # WHEN two more are created
    # THEN the first fills the cap and the second is refused: the 4 were counted
    assert create(api, owner, pid, url).status == 201
    assert create(api, owner, pid, url).status == 409
    assert Project.get(pid, consistent_read=True).webhook_count == 5


def test_a_delete_that_read_the_project_before_it_was_counted_still_counts_down(
        api: Api, owner: UserCtx, monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.models.projects import Project
    from chalicelib.models.webhooks import Webhook
    from chalicelib.services.webhooks import manage

    # GIVEN a project with 5 webhooks and no `webhook_count` (as one from before it existed)
    pid = int(make_project(api, owner)["id"])
    url = "https://93.184.215.14/hook"
    ids = [create(api, owner, pid, url).json["id"] for _ in range(5)]
    Project(pid).update(actions=[Project.webhook_count.remove()], add_version_condition=False)
    # WHEN a delete reads the project (no count yet) and, before it writes, a create elsewhere
    # counts the 5 (refused: the cap is reached)
    real, raced = manage.authorize, []

    def authorize_then_race(*args: Any, **kwargs: Any) -> Any:
        answer = real(*args, **kwargs)
        if not raced:  # once: the create below authorizes too
            raced.append(0)
            raced[0] = create(api, owner, pid, url).status
        return answer

    monkeypatch.setattr(manage, "authorize", authorize_then_race)
    assert api.delete(f"{_p(pid)}/webhooks/{ids[0]}", token=owner.token).status == 204
    monkeypatch.setattr(manage, "authorize", real)
    assert raced == [409]
    # THEN the count follows the webhooks left (4), and one more can be created
    left = sum(1 for _ in Webhook.query(pid, consistent_read=True))
    assert Project.get(pid, consistent_read=True).webhook_count == left == 4
    assert create(api, owner, pid, url).status == 201


# --- deliveries ----------------------------------------------------------------------------------------


def test_a_ping_is_signed_with_the_secret_shown_once(
        api: Api, owner: UserCtx, queue: Queues) -> None:
    with settings_env(**PRIVATE_OK), receiver("ok") as rx:
        # GIVEN a webhook to a local receiver, its secret drawn by the server
        pid = int(make_project(api, owner)["id"])
        made = create(api, owner, pid, rx.url)
        assert made.status == 201, made.body
        secret, hook_id = made.json["secret"], made.json["id"]
        assert len(secret) >= 40
        # AND the secret is never shown again
        listed = api.get(f"{_p(pid)}/webhooks", token=owner.token)
        assert listed.json == [{k: v for k, v in made.json.items() if k != "secret"}]
        assert secret not in listed.body.decode()
        # WHEN the owner pings it and a runner takes the attempt
        ping = api.post(f"{_p(pid)}/webhooks/{hook_id}/ping", token=owner.token)
        assert ping.status == 202 and ping.json["status"] == "pending", ping.body
        [row] = run_until(queue, lambda: ended(api, owner, pid, hook_id))
    # THEN the receiver got one POST whose signature checks with the secret
    [got] = rx.got
    assert verify(secret, got)
    assert not verify(secret + "x", got)
    assert got.headers["X-A6hub-Event"] == "ping"
    assert got.headers["X-A6hub-Delivery"] == str(ping.json["id"])
    assert got.headers["Content-Type"] == "application/json"
    body = json.loads(got.body)
    assert body["event"] == "ping" and body["project"]["id"] == pid
    assert body["hook"]["id"] == hook_id
    # AND the deliveries list shows it delivered with the receiver's answer
    assert (row["id"], row["status"], row["attempts"], row["response_code"]) == (
        ping.json["id"], "delivered", 1, 200)
    assert row["response_excerpt"] == "thanks" and secret not in json.dumps(row)


def test_a_pipeline_end_is_delivered_with_the_outcome_of_each_job(
        api: Api, owner: UserCtx, queue: Queues) -> None:
    with settings_env(**PRIVATE_OK, A6HUB_PUBLIC_URL="https://a6hub.example"), \
            receiver("ok") as rx:
        # GIVEN a project with a webhook (the owner's own secret) and a one-job pipeline file
        pid = int(make_project(api, owner)["id"])
        make_file(api, owner, pid, "rtl/counter.v", COUNTER)
        secret = "my-own-secret-0123456789"
        hook_id = create(api, owner, pid, rx.url, secret=secret).json["id"]
        make_file(api, owner, pid, ".a6hub.yml", LINT_PIPELINE)
        assert deliveries(api, owner, pid, hook_id) == []  # pending: nothing to tell yet
        # WHEN its job completes (the runner's completion path)
        pipeline = finish_pipeline_job(api, owner, pid)
        assert pipeline["status"] == "passed"
        [row] = run_until(queue, lambda: ended(api, owner, pid, hook_id))
    # THEN exactly one delivery, signed with the owner's secret, tells the outcome
    assert row["status"] == "delivered" and row["event"] == "pipeline"
    [got] = rx.got
    assert verify(secret, got) and got.headers["X-A6hub-Event"] == "pipeline"
    body = json.loads(got.body)
    job_id = pipeline["jobs"][0]["job_id"]
    assert body["project"]["id"] == pid
    assert body["project"]["url"] == f"https://a6hub.example/api/v1/projects/{pid}"
    sent = body["pipeline"]
    assert (sent["id"], sent["commit"], sent["ref"], sent["status"]) == (
        pipeline["id"], pipeline["commit"], "refs/heads/main", "passed")
    assert sent["jobs"] == [{"name": "lint", "job_type": "lint", "status": "passed",
                             "job_id": job_id, "error": None,
                             "url": f"https://a6hub.example/api/v1/projects/{pid}/jobs/{job_id}"}]
    assert sent["commit_url"].endswith(f"/git/commits/{pipeline['commit']}")


def test_a_refused_pipeline_file_is_a_failed_pipeline_and_is_delivered(
        api: Api, owner: UserCtx, queue: Queues) -> None:
    with settings_env(**PRIVATE_OK), receiver("ok") as rx:
        pid = int(make_project(api, owner)["id"])
        made = create(api, owner, pid, rx.url).json
        make_file(api, owner, pid, ".a6hub.yml", "jobs:\n  a: {type: nope}\n")
        run_until(queue, lambda: ended(api, owner, pid, made["id"]))
    [got] = rx.got
    body = json.loads(got.body)
    assert body["pipeline"]["status"] == "failed" and body["pipeline"]["jobs"] == []
    assert body["pipeline"]["errors"][0].startswith("line 2: jobs.a.type")
    assert verify(made["secret"], got)


def test_a_receiver_that_fails_is_retried_then_marked_failed_and_the_job_is_unaffected(
        api: Api, owner: UserCtx, queue: Queues) -> None:
    with settings_env(**PRIVATE_OK), receiver("fail") as rx:
        pid = int(make_project(api, owner)["id"])
        make_file(api, owner, pid, "rtl/counter.v", COUNTER)
        hook_id = create(api, owner, pid, rx.url).json["id"]
        make_file(api, owner, pid, ".a6hub.yml", LINT_PIPELINE)
        # WHEN the job completes: the job and the pipeline are recorded before any attempt
        pipeline = finish_pipeline_job(api, owner, pid)
        assert pipeline["status"] == "passed" and rx.got == []
        [row] = run_until(queue, lambda: ended(api, owner, pid, hook_id))
    # THEN the receiver was asked MAX_ATTEMPTS times, the same signed body each time
    assert len(rx.got) == MAX_ATTEMPTS
    assert len({g.body for g in rx.got}) == 1
    assert {g.headers["X-A6hub-Delivery"] for g in rx.got} == {str(row["id"])}
    assert (row["status"], row["attempts"], row["response_code"]) == ("failed", MAX_ATTEMPTS, 500)
    assert f"gave up after {MAX_ATTEMPTS} attempts" in row["error"]
    assert row["response_excerpt"] == "receiver broke"
    # AND the job and its pipeline are as the runner left them
    job = api.get(f"{_p(pid)}/jobs/{pipeline['jobs'][0]['job_id']}", token=owner.token).json
    assert job["status"] == "completed"
    assert api.get(f"{_p(pid)}/pipelines", token=owner.token).json[0]["status"] == "passed"


def _pinged(api: Api, owner: UserCtx, queue: Queues, mode: str,
            timeout: float = 60) -> tuple[dict[str, Any], Receiver]:
    """A webhook to a `mode` receiver on a new project, pinged, and its delivery row once the
    runner has ended it (the ping answers 202 before anything reaches the receiver)."""
    with settings_env(**PRIVATE_OK), receiver(mode) as rx:
        pid = int(make_project(api, owner)["id"])
        hook_id = create(api, owner, pid, rx.url).json["id"]
        ping = api.post(f"{_p(pid)}/webhooks/{hook_id}/ping", token=owner.token)
        assert ping.status == 202 and rx.got == []
        [row] = run_until(queue, lambda: ended(api, owner, pid, hook_id), timeout=timeout)
    return row, rx


def test_a_receiver_that_hangs_times_out_is_retried_then_marked_failed(
        api: Api, owner: UserCtx, queue: Queues) -> None:
    # WHEN a ping is queued (the API answers without waiting for the receiver)
    row, rx = _pinged(api, owner, queue, "hang", timeout=90)
    # THEN each attempt was cut by the timeout and the delivery failed after the last one
    assert len(rx.got) == MAX_ATTEMPTS
    assert (row["status"], row["attempts"], row["response_code"]) == ("failed", MAX_ATTEMPTS, None)
    assert "no answer" in row["error"] and "timed out" in row["error"].lower()


def test_an_endless_answer_is_read_only_up_to_the_cap(
        api: Api, owner: UserCtx, queue: Queues) -> None:
    row, rx = _pinged(api, owner, queue, "flood")
    # THEN the 200 delivered it; the attempt read a capped part of the body and hung up
    assert (row["status"], row["attempts"], row["response_code"]) == ("delivered", 1, 200)
    assert row["response_excerpt"] == "x" * 1024


def test_a_redirect_is_not_followed(api: Api, owner: UserCtx, queue: Queues) -> None:
    row, rx = _pinged(api, owner, queue, "redirect")
    # THEN only /hook was asked; the 302 failed the delivery at once (no retry)
    assert [g.path for g in rx.got] == ["/hook"]
    assert (row["status"], row["attempts"], row["response_code"]) == ("failed", 1, 302)
    assert "redirects are not followed" in row["error"]


def test_an_address_that_turned_internal_is_refused_at_delivery(
        api: Api, owner: UserCtx, queue: Queues) -> None:
    with receiver("ok") as rx:
        pid = int(make_project(api, owner)["id"])
        # GIVEN a webhook accepted while private addresses were allowed
        with settings_env(**PRIVATE_OK):
            hook_id = create(api, owner, pid, rx.url).json["id"]
        # WHEN a delivery is attempted under the production guard (http and 127.0.0.1 refused;
        # the same check a name that re-resolves to an internal address meets at connect)
        with settings_env(A6HUB_WEBHOOK_MAX_ATTEMPTS=MAX_ATTEMPTS):
            api.post(f"{_p(pid)}/webhooks/{hook_id}/ping", token=owner.token)
            [row] = run_until(queue, lambda: ended(api, owner, pid, hook_id))
    # THEN nothing reached the receiver, and the delivery is refused without retries
    assert rx.got == []
    assert (row["status"], row["attempts"]) == ("refused", 1)


def test_the_send_step_resolves_again_and_refuses_a_name_that_is_internal() -> None:
    """Each attempt resolves the host again and connects only to a checked address: a name
    that resolves to 127.0.0.1 at send time (as after DNS rebinding) is refused unsent."""
    from chalicelib.models.webhooks import REFUSED as REFUSED_STATUS
    from chalicelib.services.webhooks import delivery

    for name in filter(None, ["localhost", _loopback_name()]):
        outcome = delivery.send(f"https://{name}:8443/hook", "s" * 20, "ping", 1, b"{}", 2.0)
        assert outcome.status == REFUSED_STATUS, outcome
        assert "loopback address" in (outcome.error or "") and outcome.response_code is None


def test_a_deleted_webhook_ends_its_queued_delivery(
        api: Api, owner: UserCtx, queue: Queues) -> None:
    with settings_env(**PRIVATE_OK), receiver("ok") as rx:
        pid = int(make_project(api, owner)["id"])
        hook_id = create(api, owner, pid, rx.url).json["id"]
        api.post(f"{_p(pid)}/webhooks/{hook_id}/ping", token=owner.token)
        assert api.delete(f"{_p(pid)}/webhooks/{hook_id}", token=owner.token).status == 204
        assert api.get(f"{_p(pid)}/webhooks/{hook_id}/deliveries",
                       token=owner.token).status == 404
        run_until(queue, lambda: queue.depth() == 0)
    assert rx.got == []


def test_a_delivery_whose_message_was_dead_lettered_ends_failed(
        api: Api, owner: UserCtx, queue: Queues) -> None:
    from runner.worker import RunnerSettings, Worker

    with settings_env(**PRIVATE_OK), receiver("ok") as rx:
        pid = int(make_project(api, owner)["id"])
        hook_id = create(api, owner, pid, rx.url).json["id"]
        ping = api.post(f"{_p(pid)}/webhooks/{hook_id}/ping", token=owner.token).json
        # GIVEN the ping's queue message ended in the dead-letter queue (every runner that
        # received it died): moved there by hand, as the queue's redrive would
        sqs = boto3.client("sqs")
        [message] = sqs.receive_message(QueueUrl=queue.url, WaitTimeSeconds=1)["Messages"]
        sqs.send_message(QueueUrl=queue.dlq_url, MessageBody=message["Body"])
        sqs.delete_message(QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"])
        worker = Worker(dataclasses.replace(RunnerSettings.from_queue(queue.url), wait_seconds=1))
        # WHEN the runner checks the dead-letter queue
        assert worker.drain_dead_letters() == 0  # no job failed: it was a delivery
        [row] = deliveries(api, owner, pid, hook_id)
    # THEN the delivery is failed with the reason, not pending forever, and nothing was sent
    assert row["id"] == ping["id"] and row["status"] == "failed", row
    assert "dead-letter queue" in row["error"] and row["next_attempt_at"] is None
    assert rx.got == [] and queue.depth(queue.dlq_url) == 0 and queue.depth() == 0


def test_deleting_the_project_deletes_its_webhooks(api: Api, owner: UserCtx) -> None:
    from chalicelib.models.webhooks import Webhook

    pid = int(make_project(api, owner)["id"])
    assert create(api, owner, pid, "https://93.184.215.14/hook").status == 201
    assert api.delete(_p(pid), token=owner.token).status == 204
    assert list(Webhook.query(pid, consistent_read=True)) == []


def test_an_attempt_whose_runner_died_is_taken_over_and_a_live_one_is_not(
        api: Api, owner: UserCtx, queue: Queues) -> None:
    from chalicelib.models.base import utcnow_iso
    from chalicelib.models.webhooks import WebhookDelivery
    from chalicelib.services.webhooks import delivery

    with settings_env(**PRIVATE_OK), receiver("ok") as rx:
        pid = int(make_project(api, owner)["id"])
        hook_id = create(api, owner, pid, rx.url).json["id"]
        ping = api.post(f"{_p(pid)}/webhooks/{hook_id}/ping", token=owner.token).json
        row = WebhookDelivery.get(hook_id, ping["id"], consistent_read=True)
        # GIVEN attempt 1 started just now by another runner (its message comes back meanwhile)
        row.update(actions=[WebhookDelivery.attempts.set(1),
                            WebhookDelivery.updated_at.set(utcnow_iso())])
        run_until(queue, lambda: queue.depth() == 0)
        # THEN the duplicate message sends nothing
        assert rx.got == [] and deliveries(api, owner, pid, hook_id)[0]["status"] == "pending"
        # GIVEN instead that attempt started long ago (its runner died) and its message returns
        row.update(actions=[WebhookDelivery.updated_at.set("2026-01-01T00:00:00.000Z")])
        delivery.enqueue(hook_id, ping["id"], 1)
        [done] = run_until(queue, lambda: ended(api, owner, pid, hook_id))
    # THEN the returning message makes the attempt
    assert len(rx.got) == 1
    assert (done["status"], done["attempts"], done["response_code"]) == ("delivered", 1, 200)


def test_the_webhooks_list_pages_with_a_cursor(api: Api, owner: UserCtx) -> None:
    pid = int(make_project(api, owner)["id"])
    made = [create(api, owner, pid, "https://93.184.215.14/hook").json["id"] for _ in range(3)]
    first = api.get(f"{_p(pid)}/webhooks?limit=2", token=owner.token)
    assert [h["id"] for h in first.json] == made[:2]
    cursor = (first.header("Link") or "").split("cursor=", 1)[1].split(">", 1)[0]
    rest = api.get(f"{_p(pid)}/webhooks?limit=2&cursor={cursor}", token=owner.token)
    assert [h["id"] for h in rest.json] == made[2:]
