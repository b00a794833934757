"""A second server on a busy port fails at once instead of sharing the port (SO_REUSEPORT)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from devstack.emulator import free_port
from tests.conftest import ROOT

pytestmark = pytest.mark.integration  # several real processes (tests/tiers.py)

_NO_AWS = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_ENDPOINT_URL", "A6HUB_"))}


def _start(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "devstack", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_serve_refuses_a_port_another_program_holds() -> None:
    port = free_port()
    with socket.socket() as other:
        other.bind(("127.0.0.1", port))
        other.listen(1)
        done = _start("serve", "--port", str(port), "--workers", "1")
    assert done.returncode != 0
    assert f"port {port} on 127.0.0.1 is in use by another program" in done.stdout + done.stderr


def test_a_second_server_on_the_port_of_a_running_one_exits(live_server: str) -> None:
    port = live_server.rsplit(":", 1)[1]
    done = _start("serve", "--port", port, "--workers", "1")
    assert done.returncode != 0
    assert "in use" in done.stdout + done.stderr
    assert requests.get(f"{live_server}/health", timeout=10).status_code in (200, 503)


def _run_with_a_port_held(tmp_path: Path, held: str) -> subprocess.CompletedProcess[str]:
    """`python -m devstack run` while another program holds its API port (`held` "api") or
    its store's ("store")."""
    port, emulator_port = free_port(), free_port()
    with socket.socket() as other:
        other.bind(("127.0.0.1", port if held == "api" else emulator_port))
        other.listen(1)
        return _start("run", "--port", str(port), "--emulator-port", str(emulator_port),
                      "--state-dir", str(tmp_path), env=_NO_AWS)


def test_run_fails_before_starting_anything_when_the_port_is_held(tmp_path: Path) -> None:
    done = _run_with_a_port_held(tmp_path, "api")
    assert done.returncode == 1
    assert "cannot serve the API" in done.stdout
    assert "started the embedded AWS store" not in done.stdout


def test_a_store_that_exits_at_start_shows_the_end_of_its_log(tmp_path: Path) -> None:
    done = _run_with_a_port_held(tmp_path, "store")
    assert done.returncode == 1
    assert "cannot start the AWS store" in done.stdout
    assert f"the end of its log {tmp_path / 'store.log'}" in done.stdout
    assert "Address already in use" in done.stdout  # the store's own words, from its log
