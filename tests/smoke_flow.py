"""`python -m tests.smoke_flow`: register -> project -> file (-> job) through the Chalice app, with
whatever A6HUB_* / AWS_* environment the caller gives; prints one JSON line of what it made.

Run in a subprocess by tests/devstack/test_deploy.py, because the models read the table prefix at import.
"""

from __future__ import annotations

import json
import sys
import tempfile
import uuid
from typing import Any


def _call(http: Any, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    reply = getattr(http, method)(path, headers=headers, body=json.dumps(body) if body else b"")
    data = json.loads(reply.body) if reply.body else None
    if reply.status_code >= 300:
        raise SystemExit(f"{method.upper()} {path} -> {reply.status_code} {data}")
    return data


def main() -> int:
    from chalice.test import Client

    from app import app

    name = f"smoke{uuid.uuid4().hex[:8]}"
    made: dict[str, Any] = {}
    # An empty project dir: the environment is the caller's, not .chalice/config.json's stage.
    with Client(app, project_dir=tempfile.mkdtemp()) as client:
        http = client.http
        made["user"] = _call(http, "post", "/api/v1/auth/register", {
            "email": f"{name}@example.test", "username": name, "password": "smoke test password"})
        token = _call(http, "post", "/api/v1/auth/login", {
            "email": f"{name}@example.test", "password": "smoke test password"})["access_token"]
        project = _call(http, "post", "/api/v1/projects", {"name": name, "visibility": "private"},
                        token)
        made["project"] = project
        made["file"] = _call(http, "post", f"/api/v1/projects/{project['id']}/files", {
            "filename": "top.v", "filepath": "rtl/top.v", "content": "module top; endmodule\n"}, token)
        made["content"] = _call(http, "get",
                                f"/api/v1/projects/{project['id']}/files/{made['file']['id']}",
                                token=token)["content"]
        if any(path.endswith("/jobs") for path in app.routes):
            made["job"] = _call(http, "post", f"/api/v1/projects/{project['id']}/jobs",
                                {"job_type": "lint", "config": {}}, token)
    print(json.dumps(made))
    return 0


if __name__ == "__main__":
    sys.exit(main())
