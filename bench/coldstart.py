"""The API's cold start: what a fresh process (a new Lambda instance, a new `devstack serve`
worker) pays on its first requests, against the same requests once it is warm.

`python -m bench.coldstart [--quick] [--runs N]` starts its own emulator with infra/ deployed,
registers a user with a project and a file, then starts N fresh interpreters per variant,
alternating the two so that both see the same machine load. Each imports `app` and sends
through Chalice's in-process test client (as the tests do) a login, a project list, a file GET
and a job POST (each touches different model classes and AWS services), then the same four
again: the first round is cold, the second warm. The variants:

- this tree: AWS clients from one shared botocore session (`chalicelib.aws`);
- baseline: `chalicelib.aws.SHARE_SESSION = False`, set by the child before `app` is imported:
  a boto3 session per chalicelib.aws service and a botocore session per PynamoDB connection,
  as before the change (each parses its service model again).

Figures are medians over the runs: CPU (time.process_time) and wall per request and for
`import app`, and the whole child process (interpreter start, the test client's import and
exit included; CPU from getrusage of the children). The login's bcrypt check (~0.25 s CPU at
12 rounds) is in both rounds. The whole process includes the interpreter's exit, which frees
every parsed service model: ~0.85 s CPU in the baseline against ~0.3 s shared (measured), a
cost a Lambda instance never pays; compare the in-process rows for what a request waits for.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import Row, format_table

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("shared", "baseline")
REQUESTS = ("login", "project list", "file GET", "job POST")
_FIXTURE = "A6HUB_BENCH_COLDSTART"  # the child's fixture (JSON), set by the parent


def _child(variant: str) -> dict[str, Any]:
    """One fresh process: import the app, send REQUESTS twice; CPU and wall seconds of each."""
    from chalice.test import Client  # the harness (~0.4 s CPU: chalice.cli): not the app's

    fixture = json.loads(os.environ[_FIXTURE])
    wall0, cpu0 = time.perf_counter(), time.process_time()
    if variant == "baseline":
        from chalicelib import aws

        aws.SHARE_SESSION = False
    from app import app

    out: dict[str, Any] = {"import": (time.process_time() - cpu0, time.perf_counter() - wall0)}
    pid, fid = fixture["project_id"], fixture["file_id"]
    json_headers = {"Content-Type": "application/json"}
    with tempfile.TemporaryDirectory() as empty, Client(app, project_dir=empty) as client:
        http = client.http
        token = {"value": ""}  # the login's access token, for the requests after it

        def login() -> Any:
            body = json.dumps({"email": fixture["email"], "password": fixture["password"]})
            reply = http.post("/api/v1/auth/login", headers=json_headers, body=body)
            if reply.status_code == 200:
                token["value"] = json.loads(reply.body)["access_token"]
            return reply

        def auth() -> dict[str, str]:
            return {**json_headers, "Authorization": f"Bearer {token['value']}"}

        for round_ in ("cold", "warm"):
            calls = {
                "login": (login, 200),
                "project list": (lambda: http.get("/api/v1/projects", headers=auth()), 200),
                "file GET": (lambda: http.get(f"/api/v1/projects/{pid}/files/{fid}",
                                              headers=auth()), 200),
                "job POST": (lambda: http.post(f"/api/v1/projects/{pid}/jobs", headers=auth(),
                                               body=json.dumps({"job_type": "lint", "config": {}})),
                             201),
            }
            for name in REQUESTS:
                call, expected = calls[name]
                c, w = time.process_time(), time.perf_counter()
                reply = call()
                out[f"{round_} {name}"] = (time.process_time() - c, time.perf_counter() - w)
                if reply.status_code != expected:
                    raise SystemExit(f"{name}: {reply.status_code} {reply.body[:300]!r}")
    return out


def _setup() -> dict[str, Any]:
    """A user (password login), a project and a file on the bench's emulator, via the app."""
    import uuid

    from chalice.test import Client

    from app import app

    name = f"cold{uuid.uuid4().hex[:8]}"
    email, password = f"{name}@example.test", "correct horse battery"
    headers = {"Content-Type": "application/json"}
    with tempfile.TemporaryDirectory() as empty, Client(app, project_dir=empty) as client:
        def post(path: str, body: dict[str, Any], token: str = "") -> Any:
            sent = {**headers, **({"Authorization": f"Bearer {token}"} if token else {})}
            reply = client.http.post(path, headers=sent, body=json.dumps(body))
            assert reply.status_code in (200, 201), (path, reply.status_code, reply.body)
            return json.loads(reply.body)

        post("/api/v1/auth/register", {"email": email, "username": name, "password": password,
                                       "full_name": "Cold Start"})
        token = post("/api/v1/auth/login", {"email": email, "password": password})["access_token"]
        project = post("/api/v1/projects", {"name": f"proj {name}", "visibility": "private"}, token)
        made = post(f"/api/v1/projects/{project['id']}/files", {
            "filename": "top.v", "filepath": "rtl/top.v", "content": "module top; endmodule\n"},
            token)
    return {"email": email, "password": password, "project_id": project["id"], "file_id": made["id"]}


def _run_child(variant: str, env: dict[str, str]) -> dict[str, Any]:
    """A fresh `python -m bench.coldstart --child VARIANT`: its figures, plus the whole process's
    wall (from here) and CPU (rusage of this process's waited-for children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bench.coldstart", "--child", variant], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"child {variant} failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    figures["whole process"] = (cpu, wall)
    return figures


def measure(runs: int) -> dict[str, dict[str, tuple[float, float]]]:
    """variant -> measure -> (median CPU s, median wall s) over `runs` fresh processes each, the
    variants alternating (which goes first alternates too). Starts and stops its own stack."""
    from bench.stack import STAGE, prepare_environment
    from devstack import bootstrap
    from devstack.emulator import start_store

    prepare_environment()
    os.environ["A6HUB_LOG_LEVEL"] = "WARNING"
    with tempfile.TemporaryDirectory(prefix="a6hub-bench-coldstart-") as logs:
        emulator = start_store(log_path=str(Path(logs) / "store.log"))
        try:
            os.environ["AWS_ENDPOINT_URL"] = emulator.url
            outputs = bootstrap.deploy(STAGE)
            os.environ["A6HUB_TABLE_PREFIX"] = outputs["TablePrefix"]
            os.environ["A6HUB_BUCKET"] = outputs["BucketName"]
            os.environ["A6HUB_JOBS_QUEUE_URL"] = bootstrap.queue_url(f"a6hub-{STAGE}-jobs")
            env = {**os.environ, _FIXTURE: json.dumps(_setup())}
            samples: dict[str, dict[str, list[tuple[float, float]]]] = {v: {} for v in VARIANTS}
            for n in range(runs):
                for variant in VARIANTS if n % 2 == 0 else VARIANTS[::-1]:
                    for key, value in _run_child(variant, env).items():
                        samples[variant].setdefault(key, []).append(tuple(value))
        finally:
            emulator.stop()
    return {variant: {key: (statistics.median(c for c, _ in values),
                            statistics.median(w for _, w in values))
                      for key, values in by_key.items()}
            for variant, by_key in samples.items()}


def rows(medians: dict[str, dict[str, tuple[float, float]]], runs: int) -> list[Row]:
    """The table: per measure, this tree's CPU / wall ms next to the baseline's."""
    shared, base = medians["shared"], medians["baseline"]

    def cell(figures: tuple[float, float]) -> str:
        return f"{figures[0] * 1000:.0f} / {figures[1] * 1000:.0f}"

    def row(key: str, label: str) -> Row:
        ratio = shared[key][0] / base[key][0] if base[key][0] > 0 else float("nan")
        return Row(label, cell(shared[key]), f"unshared sessions: {cell(base[key])} ({ratio:.2f}x CPU)")

    first = [f"cold {name}" for name in REQUESTS]
    for variant in (shared, base):
        variant["cold: 4 first requests"] = (sum(variant[k][0] for k in first),
                                             sum(variant[k][1] for k in first))
        variant["warm: the same 4"] = (sum(variant[f"warm {n}"][0] for n in REQUESTS),
                                       sum(variant[f"warm {n}"][1] for n in REQUESTS))
    out = [row("whole process", f"fresh process, all of it: CPU / wall ms (median of {runs})"),
           row("import", "  import app (interpreter start excluded)"),
           row("cold: 4 first requests", "  4 first requests (cold)")]
    out += [row(f"cold {name}", f"    {name}, cold") for name in REQUESTS]
    out.append(row("warm: the same 4", "  the same 4 again (warm)"))
    out += [row(f"warm {name}", f"    {name}, warm") for name in REQUESTS]
    out.append(Row("load average at the end (1 min)", f"{os.getloadavg()[0]:.2f}"))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.coldstart", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one run per variant (the test suite)")
    parser.add_argument("--runs", type=int, default=9, help="fresh processes per variant (default 9)")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child)))
        return 0
    runs = 1 if args.quick else args.runs
    started = time.monotonic()
    table = rows(measure(runs), runs)
    print(format_table(table, f"API cold start: CPU / wall ms, shared botocore session vs one per "
                              f"client ({len(os.sched_getaffinity(0))} cores; "
                              f"{time.monotonic() - started:.0f} s)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
