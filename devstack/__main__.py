"""`python -m devstack run`: the whole service on this machine; `python -m devstack up`: resources only."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from devstack import bootstrap, environment, events, store
from devstack.emulator import Emulator, start_store, wait_until_up


def say(message: str) -> None:
    print(f"[a6hub] {message}", flush=True)


def snapshot_path(state_dir: Path) -> Path:
    return state_dir / "store" / store.SNAPSHOT_NAME


def start_emulator(port: int, state_dir: Path | None = None) -> Emulator:
    """The emulator named by AWS_ENDPOINT_URL, else our store (durable if `state_dir` is given)."""
    given = os.environ.get("AWS_ENDPOINT_URL")
    if given:
        say(f"using the AWS emulator at {given} (AWS_ENDPOINT_URL); it keeps its own data")
        wait_until_up(given)
        return Emulator(url=given, process=None)
    logs = state_dir or environment.STATE_DIR
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / "store.log"
    snapshot = snapshot_path(state_dir) if state_dir else None
    if snapshot is not None and snapshot.exists():
        say(f"restoring the state saved in {snapshot} ({snapshot.stat().st_size / 1e6:.1f} MB)")
    started = time.monotonic()
    emulator = start_store(port, log_path=str(log),
                           state_dir=snapshot.parent if snapshot else None,
                           save_every=float(os.environ.get("A6HUB_SAVE_SECONDS", "2")))
    say(f"started the embedded AWS store (moto inside, devstack/store.py) at {emulator.url} in "
        f"{time.monotonic() - started:.1f}s; log in {log}")
    if snapshot is not None:
        restored = emulator.status().get("restored")
        if restored:
            saved = datetime.fromtimestamp(restored["saved_at"], UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            say(f"restored from {snapshot} (saved {saved}): {restored['tables']} tables with "
                f"{restored['items']} items, {restored['buckets']} buckets with "
                f"{restored['objects']} objects, {restored['queues']} queues with "
                f"{restored['messages']} messages")
        else:
            say(f"no saved state in {snapshot}: starting empty")
        say(f"state is saved to {snapshot} every {os.environ.get('A6HUB_SAVE_SECONDS', '2')}s "
            "and on stop; `make run FRESH=1` (python -m devstack reset) starts empty")
    return emulator


def provision(emulator: Emulator, stage: str, state_dir: Path | None = None) -> dict[str, str]:
    """Deploy the template, create what other endpoints serve, apply the bucket notification."""
    secret = environment.jwt_secret(state_dir) if state_dir else None
    environment.apply(emulator.url, secret=secret)
    outputs = bootstrap.deploy(stage)
    env = environment.apply(emulator.url, outputs, secret=secret)
    say(f"deployed {bootstrap.TEMPLATE.relative_to(environment.ROOT)} as stack "
        f"{bootstrap.stack_name(stage)} on {bootstrap.endpoint('cloudformation')}: tables "
        f"{outputs['TablePrefix']}*, bucket {outputs['BucketName']}")
    for line in bootstrap.ensure_resources(stage):
        say(line)
    env["A6HUB_JOBS_QUEUE_URL"] = os.environ.setdefault(
        "A6HUB_JOBS_QUEUE_URL", bootstrap.queue_url(f"a6hub-{stage}-jobs"))
    say(f"jobs queue {env['A6HUB_JOBS_QUEUE_URL']}")
    for service in ("dynamodb", "sqs", "s3"):
        override = f"AWS_ENDPOINT_URL_{service.upper()}"
        if override in os.environ:
            env[override] = os.environ[override]
    from chalicelib.services.forum import DEFAULT_CATEGORIES, seed_categories

    say(forum_line(seed_categories(), len(DEFAULT_CATEGORIES)))
    return env


def forum_line(created: int, defaults: int) -> str:
    """What start-up says about the forum's default categories."""
    if created == defaults:
        return f"forum: the {defaults} default categories created"
    if created == 0:
        return f"forum: the {defaults} default categories exist"
    return f"forum: {created} of the {defaults} default categories created (the others existed)"


def notifications(stage: str) -> bool:
    """Apply the bucket notification; says whether the upload-event dispatcher can work."""
    problem = events.notification_problem(stage)
    if problem is None:
        say(f"bucket notifications from the template applied on {bootstrap.endpoint('s3')}: "
            f"uploads/ -> a6hub-{stage}-upload-events")
        return True
    say(f"no upload notifications: {problem}; presigned uploads stay pending")
    return False


def start_events(stage: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-m", "devstack", "events", "--stage", stage],
                               cwd=environment.ROOT)
    say(f"started the upload-event dispatcher (python -m devstack events, pid {process.pid})")
    return process


def start_runner() -> subprocess.Popen[bytes] | None:
    if not (environment.ROOT / "runner" / "__main__.py").exists():
        say("runner: not built yet, jobs will stay pending")
        return None
    # Short polls: a stop is noticed within 2 s even while the queue is idle.
    env = {"A6HUB_RUNNER_WAIT_SECONDS": "2", **os.environ}
    process = subprocess.Popen([sys.executable, "-m", "runner"], cwd=environment.ROOT, env=env)
    say(f"started the job runner (python -m runner, pid {process.pid}; {_slots()})")
    return process


def _slots() -> str:
    """How the runner runs jobs at once (runner/slots.py), as its settings say."""
    from runner.settings import RunnerConfigError, runner_env

    try:
        slots = runner_env().jobs_at_once
    except RunnerConfigError:
        return "a bad A6HUB_RUNNER_* setting: see its error"
    if slots == 1:
        return "one job at a time"
    return (f"{slots} jobs at once in {slots} slot processes, A6HUB_RUNNER_CONCURRENCY; "
            "Ctrl-C reaches them through it")


def _stop_child(name: str, process: subprocess.Popen[bytes] | None, patience: float,
                waiting_for: str) -> None:
    """SIGTERM (a no-op for a child already stopping on the terminal's SIGINT), then wait,
    saying what for every 5 s; SIGKILL after `patience` seconds."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + patience
    say(f"waiting for the {name} (pid {process.pid}) to stop: {waiting_for}")
    while True:
        try:
            process.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            left = deadline - time.monotonic()
            if left <= 0:
                say(f"the {name} (pid {process.pid}) did not stop in {patience:.0f}s: killing it")
                process.kill()
                process.wait()
                return
            say(f"still waiting for the {name} (pid {process.pid}): {waiting_for}; "
                f"{left:.0f}s before it is killed")


def stop_all(runner: subprocess.Popen[bytes] | None, dispatcher: subprocess.Popen[bytes] | None,
             emulator: Emulator) -> None:
    """Stop in dependency order: dispatcher, runner (which needs the store to release its job),
    then the store, which saves last. A second Ctrl-C asks the runner to release its job now."""
    def hurry(signum: int, frame: FrameType | None) -> None:
        if runner is not None and runner.poll() is None:
            say("second stop request: the runner releases its job now")
            runner.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, hurry)
    signal.signal(signal.SIGTERM, hurry)
    _stop_child("upload-event dispatcher", dispatcher, 15, "its current batch")
    grace = float(os.environ.get("A6HUB_RUNNER_STOP_GRACE_SECONDS", "20"))
    _stop_child("job runner", runner, grace + 30,
                f"a running job gets {grace:.0f}s to finish, then goes back to the queue")
    if emulator.process is not None:
        say("saving the store's state and stopping it")
        emulator.stop()
        if emulator.process.returncode not in (0, None):
            say(f"the store exited with status {emulator.process.returncode}: see its log")
    say("stopped")


def run(args: argparse.Namespace) -> int:
    from devstack.server import PortInUse, claim_port, serve

    try:  # before anything starts: a busy port fails the start at once
        claim = claim_port(args.host, args.port)
    except PortInUse as e:
        say(f"cannot serve the API: {e}")
        return 1
    state_dir = Path(args.state_dir).resolve()
    if args.fresh:
        reset_state(state_dir)
    try:
        emulator = start_emulator(args.emulator_port, state_dir)
    except RuntimeError as e:  # it exited or never answered: its log says why
        say(f"cannot start the AWS store: {e}")
        return 1
    runner = dispatcher = None
    try:
        provision(emulator, args.stage, state_dir)
        notifications(args.stage)
        # The dispatcher also feeds the live-updates pusher (the jobs and wsconnections
        # streams), which posts to sockets through this server: started even without uploads.
        os.environ["A6HUB_WS_ENDPOINT"] = f"http://{args.host}:{args.port}"
        dispatcher = start_events(args.stage)
        runner = start_runner() if not args.no_runner else None
        say(f"serving the API on http://{args.host}:{args.port} (docs: /docs, health: /health); "
            "Ctrl-C stops everything")
        serve(args.host, args.port, claim=claim)
        say("API stopped")
    finally:
        stop_all(runner, dispatcher, emulator)
    return 0


def reset_state(state_dir: Path) -> None:
    """Start empty: remove the store's snapshot (the JWT signing key stays)."""
    snapshot = snapshot_path(state_dir)
    if snapshot.exists():
        snapshot.unlink()
        say(f"removed the saved state {snapshot}: the next start is empty")
    else:
        say(f"no saved state in {snapshot}: nothing to remove")


def reset(args: argparse.Namespace) -> int:
    reset_state(Path(args.state_dir).resolve())
    return 0


def up(args: argparse.Namespace) -> int:
    emulator = start_emulator(args.emulator_port)  # throwaway state: other processes drive it
    env = provision(emulator, args.stage)
    notifications(args.stage)
    Path(args.env_file).write_text("".join(f"export {k}={v}\n" for k, v in sorted(env.items())))
    say(f"environment written to {args.env_file}; emulator left running (pid "
        f"{emulator.process.pid if emulator.process else 'external'})")
    return 0


def serve_only(args: argparse.Namespace) -> int:
    """Serve the API with the environment as it is (the tests and benchmarks use this)."""
    from devstack.server import PortInUse, serve

    try:
        serve(args.host, args.port, workers=args.workers)
    except PortInUse as e:
        say(f"cannot serve the API: {e}")
        return 1
    return 0


def deliver_events(args: argparse.Namespace) -> int:
    """Feed the upload notifications and the job/socket streams to the app's handlers (make run)."""
    os.environ.setdefault("A6HUB_WS_ENDPOINT", f"http://{args.host}:{args.port}")
    try:
        events.run(args.stage)
    except KeyboardInterrupt:
        pass
    return 0


def admin(args: argparse.Namespace) -> int:
    """Grant or withdraw forum administration (the environment names the stage's AWS)."""
    from chalicelib.errors import NotFound
    from chalicelib.services.accounts import set_admin

    if bool(args.grant) == bool(args.revoke):
        say("give exactly one of --grant or --revoke <email or username>")
        return 2
    try:
        user_id = set_admin(args.grant or args.revoke, admin=bool(args.grant))
    except NotFound as e:
        say(str(e.detail))
        return 1
    say(f"user {user_id} is {'now' if args.grant else 'no longer'} a forum administrator")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack")
    parser.add_argument("command", choices=["run", "up", "serve", "events", "reset", "admin"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--emulator-port", type=int, default=5005)
    parser.add_argument("--stage", default="local")
    parser.add_argument("--no-runner", action="store_true")
    parser.add_argument("--env-file", default=str(environment.STATE_DIR / "env.sh"))
    parser.add_argument("--state-dir", default=os.environ.get("A6HUB_STATE_DIR", str(environment.STATE_DIR)),
                        help="where run keeps the store's snapshot, its log and the JWT key")
    parser.add_argument("--fresh", action="store_true", help="run: start empty (removes the snapshot)")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--grant", help="admin: the email or username to make a forum admin")
    parser.add_argument("--revoke", help="admin: the email or username to make a user again")
    args = parser.parse_args(argv)
    commands = {"run": run, "up": up, "serve": serve_only, "events": deliver_events, "reset": reset,
                "admin": admin}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
