"""The shortest path through the service: register, log in, create a project and a file."""

from __future__ import annotations

from tests.conftest import Api, make_file, make_project, make_user


def test_register_login_project_file(api: Api) -> None:
    # GIVEN a registered user
    user = make_user(api)
    # WHEN they create a project with a file
    project = make_project(api, user)
    created = make_file(api, user, project["id"])
    # THEN the file reads back with its content and the project counts it
    got = api.get(f"/api/v1/projects/{project['id']}/files/{created['id']}", token=user.token)
    assert got.status == 200
    assert got.json["content"] == "module top; endmodule\n"
    assert got.header("ETag") == '"1"'
    again = api.get(f"/api/v1/projects/{project['id']}", token=user.token)
    assert again.json["file_count"] == 1
