"""`python -m devstack run`: the whole service on this machine; `python -m devstack up`: resources only."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from devstack import bootstrap, environment, events
from devstack.emulator import Emulator, start_moto, wait_until_up


def say(message: str) -> None:
    print(f"[a6hub] {message}", flush=True)


def start_emulator(port: int) -> Emulator:
    given = os.environ.get("AWS_ENDPOINT_URL")
    if given:
        say(f"using the AWS emulator at {given} (AWS_ENDPOINT_URL)")
        wait_until_up(given)
        return Emulator(url=given, process=None)
    environment.STATE_DIR.mkdir(exist_ok=True)
    log = environment.STATE_DIR / "moto.log"
    emulator = start_moto(port, log_path=str(log))
    say(f"started the embedded AWS emulator (moto) at {emulator.url}; log in {log}")
    return emulator


def provision(emulator: Emulator, stage: str) -> dict[str, str]:
    environment.apply(emulator.url)
    outputs = bootstrap.deploy(stage)
    env = environment.apply(emulator.url, outputs)
    env["A6HUB_JOBS_QUEUE_URL"] = os.environ.setdefault(
        "A6HUB_JOBS_QUEUE_URL", bootstrap.queue_url(f"a6hub-{stage}-jobs"))
    say(f"deployed {bootstrap.TEMPLATE.relative_to(environment.ROOT)} as stack "
        f"{bootstrap.stack_name(stage)}: tables {outputs['TablePrefix']}*, bucket "
        f"{outputs['BucketName']}, queue {env['A6HUB_JOBS_QUEUE_URL']}")
    if bootstrap.ensure_bucket(outputs["BucketName"]):
        say(f"bucket {outputs['BucketName']} ready on the S3 endpoint {os.environ['AWS_ENDPOINT_URL_S3']}")
    if events.apply_notifications(stage):
        say(f"bucket notifications from the template applied: uploads/ -> a6hub-{stage}-upload-events")
    else:
        say("S3 is on a separate endpoint (MinIO): no upload notifications, presigned uploads stay pending")
    return env


def start_events(stage: str) -> subprocess.Popen[bytes] | None:
    if events.separate_s3_endpoint():
        return None
    process = subprocess.Popen([sys.executable, "-m", "devstack", "events", "--stage", stage],
                               cwd=environment.ROOT)
    say(f"started the upload-event dispatcher (python -m devstack events, pid {process.pid})")
    return process


def start_runner() -> subprocess.Popen[bytes] | None:
    if not (environment.ROOT / "runner" / "__main__.py").exists():
        say("runner: not built yet, jobs will stay pending")
        return None
    process = subprocess.Popen([sys.executable, "-m", "runner"], cwd=environment.ROOT)
    say(f"started the job runner (python -m runner, pid {process.pid})")
    return process


def run(args: argparse.Namespace) -> int:
    from devstack.server import serve

    emulator = start_emulator(args.emulator_port)
    runner = dispatcher = None
    try:
        provision(emulator, args.stage)
        runner = start_runner() if not args.no_runner else None
        dispatcher = start_events(args.stage)
        say(f"serving the API on http://{args.host}:{args.port} (docs: /docs, health: /health); "
            "Ctrl-C stops everything")
        serve(args.host, args.port)
    finally:
        for child in (runner, dispatcher):
            if child is not None and child.poll() is None:
                child.terminate()
                child.wait(timeout=30)
        emulator.stop()
        say("stopped")
    return 0


def up(args: argparse.Namespace) -> int:
    emulator = start_emulator(args.emulator_port)
    env = provision(emulator, args.stage)
    Path(args.env_file).write_text("".join(f"export {k}={v}\n" for k, v in sorted(env.items())))
    say(f"environment written to {args.env_file}; emulator left running (pid "
        f"{emulator.process.pid if emulator.process else 'external'})")
    return 0


def serve_only(args: argparse.Namespace) -> int:
    """Serve the API with the environment as it is (the tests and benchmarks use this)."""
    from devstack.server import serve

    serve(args.host, args.port, workers=args.workers)
    return 0


def deliver_events(args: argparse.Namespace) -> int:
    """Feed the upload notifications of the emulator's bucket to the app's handler (make run)."""
    try:
        events.run(args.stage)
    except KeyboardInterrupt:
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack")
    parser.add_argument("command", choices=["run", "up", "serve", "events"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--emulator-port", type=int, default=5005)
    parser.add_argument("--stage", default="local")
    parser.add_argument("--no-runner", action="store_true")
    parser.add_argument("--env-file", default=str(environment.STATE_DIR / "env.sh"))
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)
    commands = {"run": run, "up": up, "serve": serve_only, "events": deliver_events}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
