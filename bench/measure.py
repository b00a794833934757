"""The measurements: wrk throughput, request latency over keep-alive, backend calls, import time."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bench.stack import ROOT


@dataclass(frozen=True)
class Throughput:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx responses and socket errors


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _latency_ms(text: str, pct: str) -> float:
    found = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
    return float(found.group(1)) * _UNIT_MS[found.group(2)] if found else float("nan")


def parse_wrk(text: str) -> Throughput:
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if rate is None:
        raise RuntimeError(f"wrk printed no rate:\n{text}")
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses:\s+(\d+)", text))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
    return Throughput(float(rate.group(1)), _latency_ms(text, "50"), _latency_ms(text, "99"), errors)


def wrk(url: str, seconds: float, connections: int, threads: int) -> Throughput:
    """Closed-loop load over keep-alive connections (wrk's default), after a warm-up that reaches
    every worker (a worker's first /health loads the AWS SDK and probes the emulator)."""
    binary = shutil.which("wrk")
    if binary is None:
        raise RuntimeError("wrk is not installed: run `make system` (devstack/install-system.sh)")
    base = [binary, f"-t{threads}", f"-c{connections}"]
    subprocess.run([*base, "-d3s", "--timeout", "10s", url], capture_output=True, check=True, timeout=60)
    out = subprocess.run([*base, f"-d{max(1, round(seconds))}s", "--latency", url],
                         capture_output=True, text=True, check=True, timeout=120)
    result = parse_wrk(out.stdout)
    if result.requests_per_second <= 0:
        raise RuntimeError(f"no request to {url} completed:\n{out.stdout}")
    return result


class KeepAlive:
    """One HTTP/1.1 connection reused for every request, as a browser or axios does."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self._conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)

    def request(self, method: str, path: str, body: Any = None,
                token: str | None = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        payload = json.dumps(body) if body is not None else None
        self._conn.request(method, path, body=payload, headers=headers)
        response = self._conn.getresponse()
        raw = response.read()
        return response.status, (json.loads(raw) if raw else None)

    def close(self) -> None:
        self._conn.close()


def timed(calls: Sequence[Callable[[], object]], samples: int, warmup: int = 10) -> list[list[float]]:
    """Seconds per call for each of `calls`, taken in turns so that each sees the same machine
    (on a shared machine, load changes faster than one series takes)."""
    for _ in range(warmup):
        for call in calls:
            call()
    seconds: list[list[float]] = [[] for _ in calls]
    for _ in range(samples):
        for call, series in zip(calls, seconds, strict=True):
            started = time.perf_counter()
            call()
            series.append(time.perf_counter() - started)
    return seconds


@contextmanager
def counting_backend_calls() -> Iterator[Counter[str]]:
    """Count every AWS API call (boto3 and PynamoDB both go through botocore's BaseClient)."""
    from botocore.client import BaseClient

    calls: Counter[str] = Counter()
    original = BaseClient._make_api_call

    def counted(self: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
        calls[operation_name] += 1
        return original(self, operation_name, api_params)

    BaseClient._make_api_call = counted
    try:
        yield calls
    finally:
        BaseClient._make_api_call = original


IMPORT_PROBE = ("import time; w, c = time.perf_counter(), time.process_time(); import app; "
                "print(time.perf_counter() - w, time.process_time() - c)")


@dataclass(frozen=True)
class ImportTime:
    wall: float  # `import app` inside the interpreter, elapsed
    cpu: float  # the same, CPU seconds: what a dedicated core would take, whatever else runs here
    process: float  # the whole `python -c 'import app'`, interpreter start included, elapsed


def import_times(runs: int) -> ImportTime:
    """Medians over `runs` fresh interpreters importing the Lambda handler module."""
    wall, cpu, whole = [], [], []
    for _ in range(runs):
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", IMPORT_PROBE], cwd=ROOT, env={**os.environ},
                             capture_output=True, text=True, check=True, timeout=60)
        whole.append(time.perf_counter() - started)
        elapsed, used = out.stdout.strip().splitlines()[-1].split()
        wall.append(float(elapsed))
        cpu.append(float(used))
    return ImportTime(statistics.median(wall), statistics.median(cpu), statistics.median(whole))
