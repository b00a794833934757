"""Projects over HTTP: create, slugs, list mine / public with cursor paging, update, delete."""

from __future__ import annotations

import os
import re
from typing import Any

import boto3
import pytest
from urllib3.filepost import encode_multipart_formdata

from tests.conftest import Api, UserCtx, add_member, make_file, make_project, make_user, unique

# The wire contract's fields (and our counters); later features may add more.
PROJECT_FIELDS = {"id", "name", "slug", "description", "visibility", "owner_id", "created_at",
                  "updated_at", "file_count", "total_bytes",
                  "import_url", "import_job_id", "import_status"}  # null unless imported
LINK = re.compile(r'^<([^>]+)>; rel="next"$')


@pytest.fixture(scope="module")
def aws(emulator: Any) -> dict[str, Any]:
    return {"s3": boto3.client("s3", endpoint_url=emulator.url),
            "dynamodb": boto3.client("dynamodb", endpoint_url=emulator.url)}


def ids(reply: Any) -> list[str]:
    return [p["id"] for p in reply.json]


def next_link(reply: Any) -> str | None:
    header = reply.header("Link")
    if header is None:
        return None
    match = LINK.match(header)
    assert match, header
    return match.group(1)


def follow(api: Api, path: str, token: str | None) -> list[list[str]]:
    """Every page of a list, following Link: rel="next" until there is none."""
    pages = []
    url: str | None = path
    while url is not None:
        reply = api.get(url, token=token)
        assert reply.status == 200, reply.body
        pages.append(ids(reply))
        url = next_link(reply)
        assert len(pages) < 50
    return pages


def test_create_answers_the_wire_contract(api: Api, owner: UserCtx) -> None:
    reply = api.post("/api/v1/projects", token=owner.token,
                     json_body={"name": "My  RISC-V Core!", "description": "a core",
                                "visibility": "public"})
    assert reply.status == 201, reply.body
    body = reply.json
    assert PROJECT_FIELDS <= set(body)
    assert body["name"] == "My  RISC-V Core!" and body["slug"] == "my-risc-v-core"
    assert body["description"] == "a core" and body["visibility"] == "public"
    assert body["owner_id"] == owner.id and body["file_count"] == 0 and body["total_bytes"] == 0
    assert body["created_at"] == body["updated_at"]
    got = api.get(f"/api/v1/projects/{body['id']}", token=owner.token)
    # the same project, whose read counted as its first view
    assert got.json == {**body, "views_count": 1} and body["views_count"] == 0


def test_visibility_defaults_to_private(api: Api, owner: UserCtx, stranger: UserCtx) -> None:
    body = api.post("/api/v1/projects", token=owner.token, json_body={"name": unique("p ")}).json
    assert body["visibility"] == "private" and body["description"] is None
    assert api.get(f"/api/v1/projects/{body['id']}", token=stranger.token).status == 404
    assert api.get(f"/api/v1/projects/{body['id']}").status == 404


def test_slug_is_unique_per_owner(api: Api, owner: UserCtx, editor: UserCtx) -> None:
    # GIVEN a project of the owner
    name = unique("Slug Test ")
    first = make_project(api, owner, name=name)
    mine_before = follow(api, "/api/v1/projects?limit=100", owner.token)
    # WHEN the owner creates one whose name gives the same slug
    again = api.post("/api/v1/projects", token=owner.token, json_body={"name": name.upper() + "!"})
    # THEN 409 and nothing was added
    assert again.status == 409, again.body
    assert first["slug"] in again.json["detail"]
    assert follow(api, "/api/v1/projects?limit=100", owner.token) == mine_before
    # AND another user may use the same slug
    theirs = api.post("/api/v1/projects", token=editor.token, json_body={"name": name})
    assert theirs.status == 201 and theirs.json["slug"] == first["slug"]


@pytest.mark.parametrize(("names", "slugs"), [
    (["Café Überflieger"], ["cafe-uberflieger"]),
    (["Проект", "数字设计", "!!!"], None),  # no Latin letters: one slug each, from the id
])
def test_slugs_of_any_name(api: Api, names: list[str], slugs: list[str] | None) -> None:
    me = make_user(api)
    created = [api.post("/api/v1/projects", token=me.token, json_body={"name": n}) for n in names]
    assert [r.status for r in created] == [201] * len(names), [r.body for r in created]
    got = [r.json["slug"] for r in created]
    if slugs is not None:
        assert got == slugs
    else:
        assert len(set(got)) == len(got)
        for reply in created:
            assert reply.json["slug"] == f"project-{reply.json['id']}"


def test_list_mine_has_owned_and_shared_projects(api: Api, editor: UserCtx,
                                                 stranger: UserCtx) -> None:
    # GIVEN a fresh user with two projects of their own, one shared with them, one not
    me = make_user(api)
    own = [make_project(api, me)["id"], make_project(api, me, visibility="public")["id"]]
    shared = make_project(api, editor)
    add_member(api, editor, shared["id"], me, "viewer")
    not_mine = make_project(api, stranger, visibility="public")
    # WHEN they list their projects
    reply = api.get("/api/v1/projects", token=me.token)
    # THEN they see exactly their own and the shared one
    assert reply.status == 200
    assert isinstance(reply.json, list)
    assert set(ids(reply)) == {*own, shared["id"]}
    assert not_mine["id"] not in ids(reply)
    assert all(PROJECT_FIELDS <= set(p) for p in reply.json)


def test_list_mine_pages_with_link_next(api: Api) -> None:
    # GIVEN a user with five projects
    me = make_user(api)
    created = [make_project(api, me)["id"] for _ in range(5)]
    # WHEN listing two at a time, following the Link header
    pages = follow(api, "/api/v1/projects?limit=2", me.token)
    # THEN the pages hold two, two and one, newest first, no project twice
    assert [len(p) for p in pages] == [2, 2, 1]
    flat = [i for page in pages for i in page]
    assert flat == sorted(created, reverse=True)


def test_public_list_is_newest_first_and_pages(api: Api, owner: UserCtx, stranger: UserCtx) -> None:
    # GIVEN three new public projects and a private one
    created = [make_project(api, owner, visibility="public")["id"] for _ in range(3)]
    private = make_project(api, owner)["id"]
    # WHEN anyone lists public projects, three at a time
    first = api.get("/api/v1/projects/public?limit=3")
    # THEN the newest come first, the private one never
    assert first.status == 200
    assert ids(first) == created[::-1]
    assert all(p["visibility"] == "public" for p in first.json)
    link = next_link(first)
    assert link is not None and "limit=3" in link and "cursor=" in link
    second = api.get(link, token=stranger.token)
    assert second.status == 200
    assert not set(ids(second)) & set(created)
    assert ids(second) == sorted(ids(second), reverse=True)
    assert ids(second)[0] < created[0]
    assert private not in ids(first) + ids(second)


def test_a_cursor_only_continues_its_own_list(api: Api, owner: UserCtx, editor: UserCtx) -> None:
    # GIVEN a cursor of the owner's list, of the public list, and of one project's files
    for _ in range(2):
        make_project(api, owner)
    mine = next_link(api.get("/api/v1/projects?limit=1", token=owner.token))
    public = next_link(api.get("/api/v1/projects/public?limit=1"))
    project = make_project(api, owner)
    make_file(api, owner, project["id"], "a.v")
    make_file(api, owner, project["id"], "b.v")
    files = next_link(api.get(f"/api/v1/projects/{project['id']}/files?limit=1",
                              token=owner.token))
    other = make_project(api, owner)
    assert mine and public and files

    def cursor(link: str) -> str:
        return link.split("cursor=", 1)[1]

    # WHEN they are used on other lists THEN 400
    cases = [
        (f"/api/v1/projects?cursor={cursor(mine)}", editor.token),
        (f"/api/v1/projects?cursor={cursor(public)}", owner.token),
        (f"/api/v1/projects/public?cursor={cursor(mine)}", None),
        (f"/api/v1/projects/{other['id']}/files?cursor={cursor(files)}", owner.token),
        (f"/api/v1/projects/{other['id']}/members?cursor={cursor(files)}", owner.token),
        (f"/api/v1/projects?cursor={cursor(mine)[:-2]}", owner.token),  # tampered
    ]
    for path, token in cases:
        reply = api.get(path, token=token)
        assert reply.status == 400, (path, reply.body)
    # AND on their own list they work
    assert api.get(mine, token=owner.token).status == 200


def test_owner_updates_name_description_and_slug(api: Api, owner: UserCtx) -> None:
    project = make_project(api, owner)
    taken = make_project(api, owner)
    reply = api.put(f"/api/v1/projects/{project['id']}", token=owner.token,
                    json_body={"name": "Renamed Core " + str(project["id"])[-6:],
                               "description": "now with a description"})
    assert reply.status == 200, reply.body
    body = reply.json
    assert body["slug"] == f"renamed-core-{str(project['id'])[-6:]}"
    assert body["description"] == "now with a description"
    assert body["updated_at"] > project["updated_at"] and body["created_at"] == project["created_at"]
    got = api.get(f"/api/v1/projects/{project['id']}", token=owner.token).json
    assert got == {**body, "views_count": got["views_count"]}
    # The old slug is free again, the new one is taken.
    assert api.post("/api/v1/projects", token=owner.token,
                    json_body={"name": project["name"]}).status == 201
    clash = api.patch(f"/api/v1/projects/{project['id']}", token=owner.token,
                      json_body={"name": taken["name"]})
    assert clash.status == 409
    assert clash.json["detail"] == f"You already have a project with the slug '{taken['slug']}'"
    got = api.get(f"/api/v1/projects/{project['id']}", token=owner.token).json
    assert got == {**body, "views_count": got["views_count"]}
    # Clearing the description is allowed; a null name is not.
    cleared = api.patch(f"/api/v1/projects/{project['id']}", token=owner.token,
                        json_body={"description": None})
    assert cleared.status == 200 and cleared.json["description"] is None
    null_name = api.patch(f"/api/v1/projects/{project['id']}", token=owner.token,
                          json_body={"name": None})
    assert null_name.status in (400, 422)


def test_visibility_change_moves_a_project_in_and_out_of_the_public_list(
        api: Api, owner: UserCtx, stranger: UserCtx) -> None:
    project = make_project(api, owner)
    pid = project["id"]
    assert pid not in ids(api.get("/api/v1/projects/public?limit=100"))
    published = api.patch(f"/api/v1/projects/{pid}", token=owner.token,
                          json_body={"visibility": "public"})
    assert published.status == 200 and published.json["visibility"] == "public"
    assert pid in ids(api.get("/api/v1/projects/public?limit=100"))
    assert api.get(f"/api/v1/projects/{pid}", token=stranger.token).status == 200
    hidden = api.patch(f"/api/v1/projects/{pid}", token=owner.token,
                       json_body={"visibility": "private"})
    assert hidden.status == 200
    assert pid not in ids(api.get("/api/v1/projects/public?limit=100"))
    assert api.get(f"/api/v1/projects/{pid}", token=stranger.token).status == 404
    assert api.get(f"/api/v1/projects/{pid}/files").status == 404


def _items(aws: dict[str, Any], table: str, key: str, value: int | str) -> list[Any]:
    name = f"{os.environ['A6HUB_TABLE_PREFIX']}{table}"
    typed = {"S": value} if isinstance(value, str) else {"N": str(value)}
    return list(aws["dynamodb"].query(
        TableName=name, KeyConditionExpression="#k = :v",
        ExpressionAttributeNames={"#k": key},
        ExpressionAttributeValues={":v": typed})["Items"])


def test_delete_removes_files_members_and_objects(api: Api, aws: dict[str, Any], owner: UserCtx,
                                                  editor: UserCtx) -> None:
    # GIVEN a project with a member, a text file, an uploaded binary and an edited file
    project = make_project(api, owner, visibility="public")
    pid = project["id"]
    add_member(api, owner, pid, editor, "editor")
    text = make_file(api, owner, pid, "rtl/top.v")
    api.put(f"/api/v1/projects/{pid}/files/{text['id']}", token=owner.token,
            json_body={"content": "module top2; endmodule\n"})
    form, content_type = encode_multipart_formdata({"file": ("blob.bin", bytes(range(256)))})
    assert api.post(f"/api/v1/projects/{pid}/files/upload", token=editor.token, raw=form,
                    headers={"Content-Type": content_type}).status == 201
    bucket = os.environ["A6HUB_BUCKET"]
    assert aws["s3"].list_objects_v2(Bucket=bucket, Prefix=f"projects/{pid}/")["KeyCount"] == 2
    # WHEN the owner deletes it
    reply = api.delete(f"/api/v1/projects/{pid}", token=owner.token)
    # THEN it is gone at once for everyone, with everything that hung off it
    assert reply.status == 204 and reply.body == b""
    assert api.get(f"/api/v1/projects/{pid}", token=owner.token).status == 404
    assert api.get(f"/api/v1/projects/{pid}/files", token=editor.token).status == 404
    assert pid not in ids(api.get("/api/v1/projects/public?limit=100"))
    assert pid not in ids(api.get("/api/v1/projects?limit=100", token=editor.token))
    assert aws["s3"].list_objects_v2(Bucket=bucket, Prefix=f"projects/{pid}/")["KeyCount"] == 0
    everything = aws["s3"].get_paginator("list_objects_v2").paginate(Bucket=bucket)
    assert [o["Key"] for page in everything for o in page.get("Contents", [])
            if f"/{pid}/" in o["Key"]] == []
    assert _items(aws, "files", "project_id", pid) == []
    assert _items(aws, "members", "project_id", pid) == []
    for guard in (f"path#{pid}#rtl/top.v", f"path#{pid}#blob.bin",
                  f"slug#{owner.id}#{project['slug']}"):
        assert _items(aws, "uniques", "key", guard) == []
    # AND the name can be used again; a second delete is 404
    assert api.post("/api/v1/projects", token=owner.token,
                    json_body={"name": project["name"]}).status == 201
    assert api.delete(f"/api/v1/projects/{pid}", token=owner.token).status == 404


def test_an_edit_does_not_undo_a_file_write_that_landed_meanwhile(
        api: Api, owner: UserCtx, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an edit of a project that has been read, when a file is written before it is saved
    from chalicelib.models.accounts import User
    from chalicelib.schemas.files import FileCreate
    from chalicelib.services import files, identity, projects

    pid = make_project(api, owner)["id"]
    real_slugify = projects.slugify

    def slugify_after_a_file_write(name: str, project_id: int = 0) -> str:
        monkeypatch.setattr(projects, "slugify", real_slugify)
        files.create_file(identity.Caller(user=User.get(owner.id)), pid,
                          FileCreate(filename="raced.v", content="x" * 42))
        return real_slugify(name, project_id)

    monkeypatch.setattr(projects, "slugify", slugify_after_a_file_write)
    # WHEN the edit is saved
    reply = api.put(f"/api/v1/projects/{pid}", token=owner.token,
                    json_body={"description": "edited"})
    assert reply.status == 200, reply.body
    # THEN the project still counts the file (quotas depend on it) and has the edit
    got = api.get(f"/api/v1/projects/{pid}", token=owner.token).json
    assert (got["file_count"], got["total_bytes"]) == (1, 42)
    assert got["description"] == "edited"
    assert [f["filepath"] for f in api.get(f"/api/v1/projects/{pid}/files",
                                           token=owner.token).json] == ["raced.v"]
