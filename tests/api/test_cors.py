"""CORS on every answer: route answers and errors, the gateway's own answers (unknown path with
and without a token, body too large), preflights; locally over real HTTP and in the deployed
API Gateway's gateway responses. Without these headers a browser reports a network error
instead of the status (issue 8)."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.conftest import Api, make_project, make_user

ORIGIN = "http://localhost:3000"


def _cors_ok(headers: Any) -> bool:
    return headers.get("Access-Control-Allow-Origin") == "*"


def test_cors_on_errors_from_routes(api: Api) -> None:
    owner = make_user(api)
    pid = make_project(api, owner)["id"]
    for reply in (api.get("/api/v1/projects/1"), api.get(f"/api/v1/projects/{pid}"),
                  api.get("/api/v1/auth/me"), api.get("/api/v1/auth/me", token="x"),
                  api.put(f"/api/v1/projects/{pid}", token=owner.token, json_body={"name": ""}),
                  api.post("/api/v1/projects", token=owner.token, raw="{"),
                  api.get(f"/api/v1/projects/{pid}", token=owner.token)):
        assert reply.header("Access-Control-Allow-Origin") == "*", (reply.status, reply.headers)


@pytest.mark.slow
def test_cors_on_every_answer_over_http(live_server: str) -> None:
    headers = {"Origin": ORIGIN}
    with requests.Session() as http:
        user = http.post(f"{live_server}/api/v1/auth/register", headers=headers, json={
            "email": "cors@example.test", "username": "corsuser", "password": "correct horse b"})
        token = http.post(f"{live_server}/api/v1/auth/login", headers=headers, json={
            "email": "cors@example.test", "password": "correct horse b"}).json()["access_token"]
        bearer = {**headers, "Authorization": f"Bearer {token}"}
        answers = {
            "2xx": http.get(f"{live_server}/api/v1/auth/me", headers=bearer),
            "201": user,
            "401": http.get(f"{live_server}/api/v1/auth/me", headers=headers),
            "404 project": http.get(f"{live_server}/api/v1/projects/1", headers=bearer),
            "404 unknown path": http.get(f"{live_server}/api/v1/nowhere", headers=headers),
            "unknown path with a token": http.get(f"{live_server}/api/v1/nowhere", headers=bearer),
            "unknown method": http.request("PATCH", f"{live_server}/health", headers=bearer),
            "422": http.post(f"{live_server}/api/v1/projects", headers=bearer, json={}),
            "413": http.post(f"{live_server}/api/v1/projects", headers=bearer,
                             data=b"x" * (10 * 1024 * 1024 + 1)),
            "docs": http.get(f"{live_server}/docs/", headers=headers),
        }
        preflight = http.options(f"{live_server}/api/v1/projects/1", headers={
            **headers, "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "authorization,content-type"})
    assert answers["2xx"].status_code == 200 and user.status_code == 201
    for name, reply in answers.items():
        assert _cors_ok(reply.headers), (name, reply.status_code, dict(reply.headers))
        if reply.status_code >= 400:
            assert reply.json()["detail"], name
    assert answers["404 unknown path"].status_code == 404
    assert answers["unknown path with a token"].status_code in (403, 404)
    assert preflight.status_code == 200 and _cors_ok(preflight.headers)
    assert "PUT" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    # the client may read the paging and concurrency headers
    assert "ETag" in answers["2xx"].headers["Access-Control-Expose-Headers"]


def test_the_deployed_gateway_answers_carry_cors() -> None:
    import json
    from pathlib import Path

    merge = json.loads((Path(__file__).resolve().parents[2] / "infra" / "api-merge.json").read_text())
    responses = merge["Resources"]["RestAPI"]["Properties"]["GatewayResponses"]
    for kind in ("DEFAULT_4XX", "DEFAULT_5XX", "MISSING_AUTHENTICATION_TOKEN"):
        headers = responses[kind]["ResponseParameters"]["Headers"]
        assert headers["Access-Control-Allow-Origin"] == "'*'", kind
        assert "Authorization" in headers["Access-Control-Allow-Headers"], kind
        assert "detail" in responses[kind]["ResponseTemplates"]["application/json"], kind
