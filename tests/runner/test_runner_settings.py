"""The runner's settings (runner/settings.py): typed, validated at once, loud on a bad value."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from runner.limits import MIB, Limits
from runner.settings import RunnerConfigError, job_limits, runner_env
from tests.conftest import ROOT


def test_defaults_apply_when_nothing_or_a_blank_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN no runner variables, and one set to "" (as a compose file leaves an unset one)
    for name in list(os.environ):
        if name.startswith("A6HUB_RUNNER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("A6HUB_RUNNER_WAIT_SECONDS", "")
    # WHEN read THEN every value is its default
    env = runner_env()
    assert env.wait_seconds == 20 and env.stop_grace_seconds == 20.0
    assert job_limits() == Limits()
    assert env.unsandboxed is False and env.sandbox_uid is None
    assert env.uid_range == (200000, 265535) and env.cgroup_mode == "auto"


def test_values_are_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("A6HUB_RUNNER_MEMORY_BYTES", str(64 * MIB))
    monkeypatch.setenv("A6HUB_RUNNER_UNSANDBOXED", "yes")
    monkeypatch.setenv("A6HUB_RUNNER_SANDBOX_UIDS", "300000-300009")
    monkeypatch.setenv("A6HUB_RUNNER_CGROUP", "off")
    monkeypatch.setenv("A6HUB_RUNNER_CANCEL_POLL_SECONDS", "0.25")
    env = runner_env()
    assert job_limits().memory_bytes == 64 * MIB
    assert env.unsandboxed is True and env.uid_range == (300000, 300009)
    assert env.cgroup_mode == "off" and env.cancel_poll_seconds == 0.25


@pytest.mark.parametrize(("name", "value"), [
    ("A6HUB_RUNNER_WAIT_SECONDS", "abc"),        # not a number
    ("A6HUB_RUNNER_WAIT_SECONDS", "21"),         # past SQS's 20 s long poll
    ("A6HUB_RUNNER_CANCEL_POLL_SECONDS", "0"),   # would spin
    ("A6HUB_RUNNER_STOP_GRACE_SECONDS", "-1"),
    ("A6HUB_RUNNER_PROCESSES", "-1"),
    ("A6HUB_RUNNER_UNSANDBOXED", "maybe"),       # was read as "no" before
    ("A6HUB_RUNNER_SANDBOX_UID", "root"),        # was an int() crash at the first job
    ("A6HUB_RUNNER_SANDBOX_UIDS", "200000-"),
    ("A6HUB_RUNNER_SANDBOX_UIDS", "0-100"),      # root's uid: a step's uid reaper kills root's all
    ("A6HUB_RUNNER_SANDBOX_UIDS", "0"),
    ("A6HUB_RUNNER_SANDBOX_UIDS", "300-200"),    # empty: was a ValueError at the sandbox probe
    ("A6HUB_RUNNER_SANDBOX_UIDS", "200000-4294967295"),  # (uid_t)-1 is no uid
])
def test_a_bad_value_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch, name: str,
                                                     value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(RunnerConfigError, match=name):
        runner_env()


def test_a_uid_range_smaller_than_the_jobs_at_once_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN 3 jobs at once and 2 uids to give them
    monkeypatch.setenv("A6HUB_RUNNER_CONCURRENCY", "3")
    monkeypatch.setenv("A6HUB_RUNNER_SANDBOX_UIDS", "300000-300001")
    # THEN the runner refuses to start, naming both settings (else the third job fails)
    with pytest.raises(RunnerConfigError, match="A6HUB_RUNNER_SANDBOX_UIDS holds 2 uid"):
        runner_env()
    # AND as many uids as jobs is enough
    monkeypatch.setenv("A6HUB_RUNNER_SANDBOX_UIDS", "300000-300002")
    assert runner_env().uid_range == (300000, 300002)


def test_a_runner_with_a_bad_setting_exits_at_start() -> None:
    # GIVEN a runner process with a misspelt number (and no queue it could reach)
    env = {**os.environ, "A6HUB_RUNNER_DLQ_CHECK_SECONDS": "30s",
           "A6HUB_JOBS_QUEUE_URL": "http://127.0.0.1:9/queue/none"}
    # WHEN started THEN it exits 2 at once, saying which variable is wrong
    done = subprocess.run([sys.executable, "-m", "runner"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "A6HUB_RUNNER_DLQ_CHECK_SECONDS" in done.stdout + done.stderr
