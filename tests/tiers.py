"""The suite's tiers (DESIGN.md: unit, api, runner, integration; plus bench), one per test.

Each test module has a tier here, keyed on the module's file name so that moving a file between
folders keeps it. A test may carry its own tier marker instead (an end-to-end test inside an
api module, say); a test module missing from the table fails collection, so a new module gets
a tier when it is added. Run one tier with `pytest -m unit` (see README, "Tests").

- unit: no emulator, no servers, at most a quick local tool run (pure functions, parsers).
- api: the app in-process (Chalice's test client) against the emulator.
- runner: the job runner (execute_job in bubblewrap with the real tools, or its queue side
  against the emulator's SQS), without the API's HTTP server.
- integration: several real processes together: the API over real HTTP, `python -m runner`,
  the git client, a second emulator, `python -m devstack run`.
- bench: the benchmarks' quick modes stay runnable.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TIERS = ("unit", "api", "runner", "integration", "bench")

MODULE_TIERS = {
    # unit
    "test_client_e2e": "unit",
    "test_cold_start": "unit",
    "test_compose": "unit",
    "test_gateway_routes": "unit",
    "test_hdl_parse": "unit",
    "test_hdl_project": "unit",
    "test_bench_pipeline_by_hand": "unit",
    # api
    "test_accounts": "api",
    "test_aws_sessions": "api",
    "test_authz_matrix": "api",
    "test_bad_input": "api",
    "test_client_contract": "api",
    "test_files": "api",
    "test_forum": "api",
    "test_git_history": "api",
    "test_git_quota": "api",
    "test_gitstore": "api",
    "test_ids": "api",
    "test_job_commit": "api",
    "test_job_wait": "api",
    "test_jobs_api": "api",
    "test_members": "api",
    "test_modules": "api",
    "test_observability": "api",
    "test_openapi": "api",
    "test_projects": "api",
    "test_read_path": "api",
    "test_security_review": "api",
    "test_security_review2": "api",
    "test_signing_key": "api",
    "test_smoke": "api",
    "test_uploads": "api",
    # runner
    "test_hdl_runner": "runner",
    "test_jobs_runner": "runner",
    "test_runner_bounds": "runner",
    "test_runner_sandbox": "runner",
    "test_runner_concurrency": "runner",
    "test_runner_path": "runner",
    # integration
    "test_concurrency": "integration",
    "test_cors": "integration",
    "test_deploy": "integration",
    "test_devstack_run": "integration",
    "test_docs": "integration",
    "test_endpoints": "integration",
    "test_git_http": "integration",
    "test_git_import": "integration",
    "test_hdl_cases": "integration",
    "test_hdl_corpus": "integration",
    "test_jobs_e2e": "integration",
    "test_live_http": "integration",
    "test_live_updates": "integration",
    "test_security_git": "integration",
    "test_store": "integration",
    "test_store_answers": "integration",
    "test_store_changes": "integration",
    "test_waveforms": "integration",
    # bench
    "test_bench": "bench",
    "test_bench_burst": "bench",
    "test_bench_completion": "bench",
    "test_bench_timeline": "bench",
    "test_bench_jobs": "bench",
    "test_bench_throughput": "bench",
    "test_bench_store": "bench",
    "test_bench_store_ops": "bench",
    "test_bench_coldstart": "bench",
    "test_bench_waveform": "bench",
    "test_bench_sandbox": "bench",
    # modules added by branches in flight when the tiers came (so their merge collects)
    "test_build": "runner",
    "test_builds_api": "api",
    "test_bench_build": "bench",
    "test_bench_cocotb": "bench",
    "test_cocotb_jobs": "api",
    "test_runner_cocotb": "runner",
    "test_bench_formal": "bench",
    "test_formal": "integration",
    "test_pipeline_cache": "unit",
    "test_pipelines": "api",
    "test_fork_pipelines": "api",
    "test_fork_cache": "api",
    "test_webhooks": "api",
    "test_pipelines_e2e": "integration",
    "test_webhooks_e2e": "integration",
    "test_route_auth": "api",
    "test_settings": "unit",
    "test_runner_settings": "unit",
    "test_runner_uids": "unit",
    "test_runner_slots": "unit",
    "test_runner_slots_e2e": "integration",
    "test_import_graph": "unit",
}


def apply(items: list[pytest.Item]) -> None:
    """Give every collected test exactly one tier marker.

    Raises pytest.UsageError naming the modules without a tier, and the tests with two.
    """
    untiered: set[str] = set()
    doubled: list[str] = []
    for item in items:
        own = {mark.name for mark in item.iter_markers() if mark.name in TIERS}
        if len(own) > 1:
            doubled.append(f"{item.nodeid}: {sorted(own)}")
        if own:
            continue
        module = item.path.stem
        tier = MODULE_TIERS.get(module)
        if tier is None:
            untiered.add(str(item.path))
            continue
        item.add_marker(getattr(pytest.mark, tier))
    if untiered or doubled:
        raise pytest.UsageError(
            "every test needs exactly one tier (tests/tiers.py):"
            + "".join(f"\n  no tier: {path}" for path in sorted(untiered))
            + "".join(f"\n  two tiers: {line}" for line in doubled))



def deselect_slow(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave the tests marked `slow` out of a plain `pytest` (the fast suite), in place.

    They stay in with `--run-slow` (what `make test`, hence CI, passes), with a `-m` expression
    that names `slow` (`-m slow`, `-m "api and slow"`; `-m "not slow"` selects as written), and
    when a test module or test is named on the command line (`pytest tests/x.py`,
    `pytest tests/x.py::test_y`): only a folder (or nothing) means the fast suite.
    """
    if config.getoption("--run-slow") or "slow" in (config.getoption("-m") or ""):
        return
    named: list[tuple[Path, str]] = []  # (file, the rest of its node id after "::", or "")
    for arg in config.args:
        file, _, rest = arg.partition("::")
        path = Path(config.invocation_params.dir, file).resolve()
        if path.is_file():
            named.append((path, rest.split("[", 1)[0]))

    def asked_for(item: pytest.Item) -> bool:
        inside = item.nodeid.partition("::")[2]
        return any(item.path == path and inside.startswith(rest) for path, rest in named)

    dropped = [item for item in items if item.get_closest_marker("slow") and not asked_for(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        gone = set(map(id, dropped))
        items[:] = [item for item in items if id(item) not in gone]
