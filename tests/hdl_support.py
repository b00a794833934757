"""Helpers for the HDL case and corpus tests: upload a folder as a project, run tools by hand."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import Api, UserCtx, make_project

CASES = Path(__file__).parent / "fixtures" / "hdl_cases"


def case(name: str) -> dict[str, Any]:
    return dict(json.loads((CASES / name / "case.json").read_text()))


def project_files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (exact bytes) by project path, case.json left out."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "case.json"}


def upload_project(api: Api, user: UserCtx, files: dict[str, bytes],
                   name: str | None = None) -> dict[str, Any]:
    """A new project holding `files` byte for byte (base64: BOMs and CRLFs arrive as they are)."""
    project = make_project(api, user, name=name)
    for path, data in files.items():
        reply = api.post(f"/api/v1/projects/{project['id']}/files", token=user.token,
                         json_body={"filename": path.rsplit("/", 1)[-1], "filepath": path,
                                    "content": base64.b64encode(data).decode(), "encoding": "base64"})
        assert reply.status == 201, (path, reply.body)
    return project


def by_hand(files: dict[str, bytes], where: Path, *commands: list[str], timeout: float = 300) -> str:
    """Write `files` to `where` and run `commands` there, as a person would from the project root.

    Returns stdout+stderr of the last command; every command must exit 0.
    """
    if where.exists():
        shutil.rmtree(where)
    for path, data in files.items():
        target = where / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    out = ""
    for argv in commands:
        proc = subprocess.run(argv, cwd=where, capture_output=True, text=True, timeout=timeout, check=False)
        assert proc.returncode == 0, (argv, proc.stdout[-2000:], proc.stderr[-2000:])
        out = proc.stdout + proc.stderr
    return out


def tool_lines(log: str) -> list[str]:
    """A job log without the runner's lines and the command lines: what the tools printed."""
    return [line for line in log.splitlines() if not line.startswith(("[a6hub]", "$ "))]


def vcd_body(vcd: bytes) -> bytes:
    """A VCD from $enddefinitions on: its $date/$version header differs between runs."""
    return vcd[vcd.index(b"$enddefinitions"):]


def run_uploaded(api: Api, user: UserCtx, files: dict[str, bytes], job_type: str,
                 config: dict[str, Any], timeout: float = 300
                 ) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Upload `files` as a new project, submit one job and wait (`timeout` s) for it to end
    under the runner of tests/runner/test_jobs_e2e.py; returns (project, job record, its log)."""
    from tests.runner.test_jobs_e2e import logs_of, submit, wait_status

    project = upload_project(api, user, files)
    job_id = submit(api, user, project, job_type, config)
    job = wait_status(api, user, project, job_id, timeout=timeout)
    return project, job, logs_of(api, user, project, job_id)
