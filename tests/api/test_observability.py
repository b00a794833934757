"""Observability: JSON logs with request and user id and never a credential; job metrics in EMF."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Api


class _Captured:
    def __init__(self, main: io.StringIO, other: io.StringIO) -> None:
        self._main, self._other = main, other

    @property
    def text(self) -> str:
        return self._main.getvalue() + self._other.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self._main.getvalue().splitlines() if line.strip()]


@pytest.fixture
def captured_logs(chalice_app: Any) -> Iterator[_Captured]:
    """Everything the service logs, at DEBUG: the app's JSON handler (the real one, with its
    formatter) and, through the root logger, every library (botocore, PynamoDB, ...)."""
    app_logger = logging.getLogger("a6hub")
    handler = next(h for h in app_logger.handlers if isinstance(h, logging.StreamHandler))
    main, other = io.StringIO(), io.StringIO()
    old_stream = handler.setStream(main)
    root = logging.getLogger()
    catch_all = logging.StreamHandler(other)
    levels = (app_logger.level, root.level)
    app_logger.setLevel(logging.DEBUG)
    root.setLevel(logging.DEBUG)
    root.addHandler(catch_all)
    try:
        yield _Captured(main, other)
    finally:
        root.removeHandler(catch_all)
        app_logger.setLevel(levels[0])
        root.setLevel(levels[1])
        handler.setStream(old_stream)  # type: ignore[arg-type]


class _BrokenS3:
    def __getattr__(self, name: str) -> Any:
        raise RuntimeError("S3 is down (injected)")


def test_logs_never_carry_passwords_tokens_or_authorization_headers(
        api: Api, captured_logs: _Captured) -> None:
    from chalicelib import aws

    # GIVEN a user who registers, logs in, uses a bearer token and a personal API token
    name = f"obs{uuid.uuid4().hex[:10]}"
    password = f"pw-{uuid.uuid4().hex}"
    wrong_password = f"wrong-{uuid.uuid4().hex}"
    other_password = f"other-{uuid.uuid4().hex}"
    user = api.post("/api/v1/auth/register", json_body={
        "email": f"{name}@example.test", "username": name, "password": password})
    assert user.status == 201
    token = api.post("/api/v1/auth/login", json_body={
        "email": f"{name}@example.test", "password": password}).json["access_token"]
    assert api.get("/api/v1/auth/me", token=token).status == 200
    api_token = api.post("/api/v1/auth/tokens", token=token, json_body={"name": "ci"}).json["token"]
    assert api.get("/api/v1/auth/me", token=api_token).status == 200
    project = api.post("/api/v1/projects", token=api_token,
                       json_body={"name": name, "visibility": "private"}).json
    # WHEN requests fail: a wrong password, an invalid registration, a tampered token, and an
    # unhandled error while a bearer token is in flight
    assert api.post("/api/v1/auth/login", json_body={
        "email": f"{name}@example.test", "password": wrong_password}).status == 401
    assert api.post("/api/v1/auth/register", json_body={
        "email": "not-an-email", "username": f"x{name}", "password": other_password}).status == 422
    assert api.get("/api/v1/auth/me", token=token + "x").status == 401
    saved = aws._clients.get("s3")
    aws.set_client("s3", _BrokenS3())
    try:
        failed = api.post(f"/api/v1/projects/{project['id']}/files", token=token, json_body={
            "filename": "top.v", "filepath": "rtl/top.v", "content": "module top; endmodule\n"})
    finally:
        if saved is None:
            aws._clients.pop("s3", None)
        else:
            aws.set_client("s3", saved)
    assert failed.status == 500
    # THEN the logs hold none of the credentials, in any form
    text = captured_logs.text
    for secret in (password, wrong_password, other_password, token, token + "x", api_token,
                   api_token.removeprefix("a6p_"), f"Bearer {token}"):
        assert secret not in text
    # AND they do hold what an operator needs: the 500 and its request, with the user's id
    lines = captured_logs.lines()
    errors = [line for line in lines if line.get("level") == "ERROR"]
    assert errors and errors[-1]["user_id"] == user.json["id"]
    assert "S3 is down" in json.dumps(errors[-1])
    access = [line for line in lines if line.get("message") == "request" and line.get("status") == 500]
    assert access and access[-1]["user_id"] == user.json["id"] and access[-1]["request_id"]
    # AND the id of one request's user does not leak onto the next, anonymous request
    assert api.post("/api/v1/auth/login", json_body={
        "email": f"{name}@example.test", "password": wrong_password}).status == 401
    last = [line for line in captured_logs.lines() if line.get("message") == "request"][-1]
    assert last["status"] == 401 and "user_id" not in last


def test_credentials_logged_by_mistake_are_masked(captured_logs: _Captured) -> None:
    from aws_lambda_powertools import Logger

    # GIVEN code that logs credentials by mistake, as fields and inside a message
    log = Logger(service="a6hub", child=True)
    jwt_like = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    log.info("calling with Authorization: Bearer %s", "abc.def.ghi",
             extra={"password": "hunter2hunter2", "headers": {"Authorization": "Basic dXNlcjpwYXNz"},
                    "note": f"token {jwt_like} and a6p_secretsecret"})
    # THEN the line is written with every credential masked
    line = captured_logs.lines()[-1]
    text = json.dumps(line)
    for secret in ("hunter2hunter2", "dXNlcjpwYXNz", "abc.def.ghi", jwt_like, "a6p_secretsecret"):
        assert secret not in text
    assert line["password"] == "[REDACTED]" and line["headers"]["Authorization"] == "[REDACTED]"
    assert line["message"].startswith("calling with Authorization:")
    # AND an exception whose text carries a token is logged with the token masked
    try:
        raise RuntimeError(f"upstream refused token {jwt_like}")
    except RuntimeError:
        log.exception("call failed")
    line = captured_logs.lines()[-1]
    assert line["exception_name"] == "RuntimeError" and "upstream refused token" in line["exception"]
    assert jwt_like not in json.dumps(line)


def test_job_metrics_are_emf_lines_per_type_and_per_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib import metrics

    lines: list[str] = []
    metrics.set_sink(lines.append)
    monkeypatch.setenv("A6HUB_STAGE", "test")
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.delenv("POWERTOOLS_DEV", raising=False)
    try:
        # WHEN a job is submitted, claimed after 2 s in the queue, and fails after 1.5 s
        metrics.job_submitted("simulation")
        metrics.job_started("simulation", 2.0)
        metrics.job_finished("simulation", "failed", 1.5)
        with pytest.raises(ValueError):
            metrics.job_finished("simulation", "running", None)
        # AND metrics are switched off
        monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
        metrics.job_submitted("lint")
    finally:
        metrics.set_sink(None)
    # THEN three EMF documents carry the values with both dimension sets
    docs = [json.loads(line) for line in lines]
    assert len(docs) == 3
    for doc in docs:
        definition = doc["_aws"]["CloudWatchMetrics"][0]
        assert definition["Namespace"] == "a6hub"
        assert definition["Dimensions"] == [["service", "stage"], ["service", "stage", "job_type"]]
        assert (doc["service"], doc["stage"], doc["job_type"]) == ("a6hub", "test", "simulation")
    assert docs[0]["JobsSubmitted"] == [1.0]
    assert docs[1]["JobQueueWait"] == [2.0]
    assert docs[2]["JobsFailed"] == [1.0] and docs[2]["JobDuration"] == [1.5]
    units = {m["Name"]: m["Unit"] for d in docs for m in d["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units == {"JobsSubmitted": "Count", "JobQueueWait": "Seconds", "JobsFailed": "Count",
                     "JobDuration": "Seconds"}
