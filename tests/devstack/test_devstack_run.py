"""`python -m devstack run` as people run it: state kept across a Ctrl-C and a crash.

Each test starts the whole local stack (store, API, runner, dispatcher) on free ports with its
own state directory, in its own process group as a terminal would, and signals the group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from devstack.emulator import free_port, start_store
from tests.conftest import ROOT, unique
from tests.runner.test_jobs_e2e import FOREVER_TB

pytestmark = pytest.mark.slow

QUICK_TB = """\
module quick_tb;
  initial begin
    $dumpfile("quick.vcd"); $dumpvars(0, quick_tb);
    $display("quick done");
    $finish;
  end
endmodule
"""
# Set by the test session for its own emulator; the stack under test makes its own.
_NOT_INHERITED = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SQS",
                  "AWS_ENDPOINT_URL_DYNAMODB", "A6HUB_JWT_SECRET", "A6HUB_TABLE_PREFIX",
                  "A6HUB_BUCKET", "A6HUB_JOBS_QUEUE_URL", "A6HUB_JOBS_DLQ_URL", "A6HUB_STAGE")


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
        except requests.RequestException:
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


@dataclass
class Stack:
    process: subprocess.Popen[bytes]
    url: str
    store_url: str
    output: Path

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def group_gone(self) -> bool:
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return True
        return False


@contextmanager
def local_stack(state_dir: Path, name: str, endpoints: dict[str, str] | None = None
                ) -> Iterator[Stack]:
    """`python -m devstack run` in a new process group; killed (group) if the test fails.
    `endpoints`: AWS_ENDPOINT_URL[_<SERVICE>] to use instead of its own store."""
    port, store_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    env.update({"A6HUB_RUNNER_STOP_GRACE_SECONDS": "3", "A6HUB_API_WORKERS": "1",
                "A6HUB_SAVE_SECONDS": "1", **(endpoints or {})})
    output = state_dir.parent / f"{name}.out"
    with open(output, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "devstack", "run", "--port", str(port), "--emulator-port",
             str(store_port), "--state-dir", str(state_dir)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    stack = Stack(process, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{store_port}", output)
    try:
        wait_for(lambda: process.poll() is not None or requests.get(
            f"{stack.url}/health", timeout=5).status_code == 200, 180, "the stack to serve")
        assert process.poll() is None, stack.text()
        yield stack
    finally:
        if process.poll() is None or not stack.group_gone():
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout=60)


class Client:
    def __init__(self, base: str, token: str = "") -> None:
        self.base, self.token = base, token

    def call(self, method: str, path: str, **kw: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return requests.request(method, self.base + path, headers=headers, timeout=60, **kw)


def write_everything(stack: Stack) -> dict[str, Any]:
    """An account, an API token, a project with a file edited twice, a finished job with logs
    and a waveform artifact, and a job left running. Returns what to read back."""
    name = unique("dr")
    anon = Client(stack.url)
    assert anon.call("POST", "/api/v1/auth/register", json={
        "email": f"{name}@example.test", "username": name, "password": "kept across restarts"}
    ).status_code == 201
    token = anon.call("POST", "/api/v1/auth/login", json={
        "email": f"{name}@example.test", "password": "kept across restarts"}).json()["access_token"]
    me = Client(stack.url, token)
    api_token = me.call("POST", "/api/v1/auth/tokens", json={"name": "kept"}).json()["token"]
    pid = me.call("POST", "/api/v1/projects", json={"name": "kept project"}).json()["id"]
    fid = me.call("POST", f"/api/v1/projects/{pid}/files", json={
        "filename": "quick_tb.v", "filepath": "tb/quick_tb.v", "content": QUICK_TB}).json()["id"]
    assert me.call("PUT", f"/api/v1/projects/{pid}/files/{fid}",
                   json={"content": QUICK_TB + "// edited\n"}).status_code == 200
    assert me.call("POST", f"/api/v1/projects/{pid}/files", json={
        "filename": "forever_tb.v", "filepath": "tb/forever_tb.v",
        "content": FOREVER_TB}).status_code == 201
    done = me.call("POST", f"/api/v1/projects/{pid}/jobs", json={
        "job_type": "simulation", "config": {"testbench": "tb/quick_tb.v", "waveform": True}}).json()["id"]
    job = wait_for(lambda: (j := me.call("GET", f"/api/v1/projects/{pid}/jobs/{done}").json())
                   ["status"] in ("completed", "failed") and j, 180, "the quick job")
    assert job["status"] == "completed", job
    spinning = me.call("POST", f"/api/v1/projects/{pid}/jobs", json={
        "job_type": "simulation", "config": {"testbench": "tb/forever_tb.v"}}).json()["id"]
    wait_for(lambda: " vvp -n " in me.call("GET", f"/api/v1/projects/{pid}/jobs/{spinning}/logs"
                                        "?offset=0").json()["logs"], 180, "the simulation to run")
    return {"token": token, "api_token": api_token, "pid": pid, "fid": fid, "done": done,
            "spinning": spinning, "seen": read_back(stack, token, pid, fid, done)}


def read_back(stack: Stack, token: str, pid: str, fid: str, done: str) -> dict[str, Any]:
    me = Client(stack.url, token)
    job = me.call("GET", f"/api/v1/projects/{pid}/jobs/{done}").json()
    return {
        "me": me.call("GET", "/api/v1/auth/me").json(),
        "project": {k: v for k, v in me.call("GET", f"/api/v1/projects/{pid}").json().items()
                    if k not in ("views_count", "updated_at")},
        "file": me.call("GET", f"/api/v1/projects/{pid}/files/{fid}").json(),
        "commits": [c["id"] for c in me.call("GET", f"/api/v1/projects/{pid}/git/commits").json()],
        "job": (job["status"], sorted(a["name"] for a in job["artifacts"])),
        "logs": me.call("GET", f"/api/v1/projects/{pid}/jobs/{done}/logs?offset=0").json()["logs"],
    }


def test_ctrl_c_with_a_job_running_then_restart_keeps_everything(tmp_path: Path) -> None:
    state = tmp_path / "state"
    # GIVEN a running stack with data written and a simulation running
    with local_stack(state, "first") as stack:
        written = write_everything(stack)
        assert "quick done" in written["seen"]["logs"]
        assert "quick.vcd" in written["seen"]["job"][1]
        # WHEN Ctrl-C reaches the whole process group
        os.killpg(stack.process.pid, signal.SIGINT)
        # THEN everything stops cleanly: status 0, nothing left in the group, no traceback,
        # and the output said what it waited for
        assert stack.process.wait(timeout=180) == 0, stack.text()
        wait_for(stack.group_gone, 30, "every process of the stack to exit")
        said = stack.text()
        assert "Traceback" not in said, said
        assert "waiting for the job runner" in said and "[a6hub] stopped" in said, said
        assert f"job {written['spinning']} released back to the queue" in said, said

    # WHEN it starts again on the same state
    with local_stack(state, "second") as again:
        said = again.text()
        assert "restored from" in said, said
        # THEN the old session token, the API token and every record read back the same
        seen = read_back(again, written["token"], written["pid"], written["fid"], written["done"])
        assert seen == written["seen"]
        refs = requests.get(f"{again.url}/api/v1/projects/{written['pid']}/git/info/refs"
                            "?service=git-upload-pack", timeout=30, auth=("x", written["api_token"]))
        assert refs.status_code == 200, refs.text
        # AND the released job is back in the queue and runs again
        me = Client(again.url, written["token"])
        spinning = me.call("GET", f"/api/v1/projects/{written['pid']}/jobs/{written['spinning']}")
        assert spinning.json()["status"] in ("pending", "running"), spinning.json()
        os.killpg(again.process.pid, signal.SIGINT)
        assert again.process.wait(timeout=180) == 0, again.text()


def test_sigkill_of_the_whole_group_loses_at_most_the_last_seconds(tmp_path: Path) -> None:
    state = tmp_path / "state"
    # GIVEN a stack with data written and saved by the periodic snapshot
    with local_stack(state, "first") as stack:
        written = write_everything(stack)

        def saved() -> bool:
            status = requests.get(f"{stack.store_url}/_a6hub/store", timeout=10).json()
            return bool(status["saved_changes"] >= changes)

        changes = requests.get(f"{stack.store_url}/_a6hub/store", timeout=10).json()["changes"]
        wait_for(saved, 60, "a snapshot after the writes")
        # WHEN the whole process group is killed at once
        os.killpg(stack.process.pid, signal.SIGKILL)
        stack.process.wait(timeout=60)
        wait_for(stack.group_gone, 30, "every process of the stack to die")

    # THEN it starts again from the snapshot and reads everything back
    with local_stack(state, "second") as again:
        assert "restored from" in again.text(), again.text()
        seen = read_back(again, written["token"], written["pid"], written["fid"], written["done"])
        assert seen == written["seen"]
        os.killpg(again.process.pid, signal.SIGINT)
        assert again.process.wait(timeout=180) == 0, again.text()


def test_s3_and_sqs_on_one_emulator_and_dynamodb_on_another(tmp_path: Path) -> None:
    # GIVEN DynamoDB (and CloudFormation) on one store process, S3 and SQS on another
    records = start_store(log_path=str(tmp_path / "records.log"))
    objects = start_store(log_path=str(tmp_path / "objects.log"))
    endpoints = {"AWS_ENDPOINT_URL": records.url, "AWS_ENDPOINT_URL_S3": objects.url,
                 "AWS_ENDPOINT_URL_SQS": objects.url}
    try:
        # WHEN the stack starts against them
        with local_stack(tmp_path / "state", "split", endpoints) as stack:
            said = stack.text()
            # THEN the queues and the bucket were made where they are served, the bucket
            # notifies the queue there and the dispatcher runs
            assert f"queues created on the SQS endpoint {objects.url}" in said, said
            assert f"ready on the S3 endpoint {objects.url}" in said, said
            assert "bucket notifications from the template applied" in said, said
            assert "started the upload-event dispatcher" in said, said
            # AND a job runs (queue on one side, records on the other) and a presigned upload
            # is registered through the S3 -> SQS notification
            written = write_everything(stack)
            me = Client(stack.url, written["token"])
            grant = me.call("POST", f"/api/v1/projects/{written['pid']}/files/upload-url",
                            json={"filename": "up.v", "filepath": "rtl/up.v"}).json()
            posted = requests.post(grant["url"], data=grant["fields"], timeout=30,
                                   files={"file": ("up.v", b"module up; endmodule\n")})
            assert posted.status_code in (200, 201, 204), posted.text
            state = wait_for(lambda: (u := me.call(
                "GET", f"/api/v1/projects/{written['pid']}/files/uploads/{grant['upload_id']}"
            ).json())["status"] not in ("pending", "registering") and u, 120, "the upload")
            assert state["status"] == "registered", state
            os.killpg(stack.process.pid, signal.SIGINT)
            assert stack.process.wait(timeout=180) == 0, stack.text()
        # AND the records are on the first process, the objects on the second
        tables = boto3.client("dynamodb", endpoint_url=records.url).list_tables()["TableNames"]
        assert "a6hub-local-files" in tables
        assert "a6hub-local-files" not in boto3.client(
            "dynamodb", endpoint_url=objects.url).list_tables()["TableNames"]
    finally:
        records.stop()
        objects.stop()
