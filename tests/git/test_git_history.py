"""Project history through the files API: commits, log, show, content at a commit, diff, restore."""

from __future__ import annotations

from typing import Any

import pytest

from tests import fork_support
from tests.conftest import Api, UserCtx, add_member, make_file, make_project


def _commits(api: Api, user: UserCtx, project_id: str, **params: Any) -> list[dict[str, Any]]:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    reply = api.get(f"/api/v1/projects/{project_id}/git/commits?{query}", token=user.token)
    assert reply.status == 200, reply.body
    return list(reply.json)


def test_every_files_api_change_is_a_commit_authored_by_the_user(api: Api, owner: UserCtx) -> None:
    # GIVEN a project with a file created with a message, then updated, renamed and deleted
    project = make_project(api, owner)
    pid = project["id"]
    created = api.post(f"/api/v1/projects/{pid}/files", token=owner.token, json_body={
        "filename": "top.v", "filepath": "rtl/top.v", "content": "module top; endmodule\n",
        "message": "Add the top module"})
    assert created.status == 201, created.body
    file_id = created.json["id"]
    updated = api.put(f"/api/v1/projects/{pid}/files/{file_id}", token=owner.token,
                      json_body={"content": "module top(input a); endmodule\n"})
    assert updated.status == 200, updated.body
    renamed = api.put(f"/api/v1/projects/{pid}/files/{file_id}", token=owner.token,
                      json_body={"filepath": "src/top.v", "filename": "top.v"})
    assert renamed.status == 200, renamed.body
    make_file(api, owner, pid, "tb/tb.v", "module tb; endmodule\n")
    deleted = api.delete(f"/api/v1/projects/{pid}/files/{file_id}", token=owner.token)
    assert deleted.status == 204, deleted.body

    # WHEN the history is listed
    commits = _commits(api, owner, pid)

    # THEN there is one commit per change, newest first, by the user, with the given message
    assert [c["summary"] for c in commits] == [
        "Delete src/top.v", "Add tb/tb.v", "Rename rtl/top.v to src/top.v",
        "Update rtl/top.v", "Add the top module"]
    # A no-reply address, not the login email (issue 10, finding 9)
    assert {c["author_email"] for c in commits} == {
        f"{owner.username.lower()}@users.noreply.a6hub.invalid"}
    assert commits[-1]["parents"] == []
    assert commits[0]["parents"] == [commits[1]["id"]]

    # AND one commit shows the paths it changed
    show = api.get(f"/api/v1/projects/{pid}/git/commits/{commits[2]['id']}", token=owner.token)
    assert show.status == 200, show.body
    assert sorted((c["path"], c["change"]) for c in show.json["changes"]) == [
        ("rtl/top.v", "deleted"), ("src/top.v", "added")]

    # AND a file's content at an older commit is readable
    old = api.get(f"/api/v1/projects/{pid}/git/commits/{commits[-1]['id']}/content?path=rtl/top.v",
                  token=owner.token)
    assert old.status == 200, old.body
    assert old.json["content"] == "module top; endmodule\n"
    missing = api.get(f"/api/v1/projects/{pid}/git/commits/{commits[-1]['id']}/content?path=tb/tb.v",
                      token=owner.token)
    assert missing.status == 404

    # AND the diff between two commits is a unified diff
    diff = api.get(f"/api/v1/projects/{pid}/git/diff?base={commits[-1]['id']}&head={commits[-2]['id']}",
                   token=owner.token)
    assert diff.status == 200, diff.body
    [changed] = diff.json["files"]
    assert changed["path"] == "rtl/top.v" and changed["change"] == "modified"
    assert "-module top; endmodule" in changed["patch"]
    assert "+module top(input a); endmodule" in changed["patch"]


def test_commits_are_paged_with_a_cursor(api: Api, owner: UserCtx) -> None:
    # GIVEN a project with five commits
    pid = make_project(api, owner)["id"]
    for i in range(5):
        make_file(api, owner, pid, f"f{i}.v", f"// {i}\n")

    # WHEN the history is read two at a time following the Link header
    seen: list[str] = []
    url = f"/api/v1/projects/{pid}/git/commits?limit=2"
    while url:
        reply = api.get(url, token=owner.token)
        assert reply.status == 200, reply.body
        seen += [c["summary"] for c in reply.json]
        link = reply.header("Link")
        url = link[1:link.index(">")] if link else ""

    # THEN every commit is seen once, newest first
    assert seen == [f"Add f{i}.v" for i in reversed(range(5))]


def test_restore_a_file_and_the_whole_project_as_new_commits(api: Api, owner: UserCtx) -> None:
    # GIVEN a project whose file was changed and another file added after the first commit
    pid = make_project(api, owner)["id"]
    first = make_file(api, owner, pid, "rtl/a.v", "// v1\n")
    api.put(f"/api/v1/projects/{pid}/files/{first['id']}", token=owner.token,
            json_body={"content": "// v2\n"})
    make_file(api, owner, pid, "rtl/b.v", "// b\n")
    commits = _commits(api, owner, pid)
    original = commits[-1]["id"]

    # WHEN one file is restored to the first commit
    reply = api.post(f"/api/v1/projects/{pid}/git/restore", token=owner.token,
                     json_body={"commit": original, "path": "rtl/a.v"})

    # THEN a new commit holds the old content, and the files API shows it
    assert reply.status == 200, reply.body
    assert reply.json["restored"] is True
    assert reply.json["commit"]["summary"] == f"Restore rtl/a.v to {original[:12]}"
    files = {f["filepath"]: f for f in api.get(f"/api/v1/projects/{pid}/files", token=owner.token).json}
    body = api.get(f"/api/v1/projects/{pid}/files/{files['rtl/a.v']['id']}", token=owner.token)
    assert body.json["content"] == "// v1\n"

    # WHEN the whole project is restored to the first commit
    reply = api.post(f"/api/v1/projects/{pid}/git/restore", token=owner.token,
                     json_body={"commit": original, "message": "Back to the start"})

    # THEN the later file is gone from the files API too, and history grew by one commit
    assert reply.status == 200, reply.body
    listed = api.get(f"/api/v1/projects/{pid}/files", token=owner.token).json
    assert [f["filepath"] for f in listed] == ["rtl/a.v"]
    project = api.get(f"/api/v1/projects/{pid}", token=owner.token).json
    assert project["file_count"] == 1
    assert _commits(api, owner, pid)[0]["summary"] == "Back to the start"

    # AND restoring again changes nothing
    again = api.post(f"/api/v1/projects/{pid}/git/restore", token=owner.token,
                     json_body={"commit": original})
    assert again.status == 200 and again.json == {"restored": False, "commit": None}


def test_history_follows_project_access(api: Api, owner: UserCtx, viewer: UserCtx,
                                        stranger: UserCtx) -> None:
    # GIVEN a private project with one commit and a viewer
    pid = make_project(api, owner)["id"]
    make_file(api, owner, pid)
    add_member(api, owner, pid, viewer, "viewer")
    head = _commits(api, owner, pid)[0]["id"]

    # THEN a stranger cannot see it, a viewer can read but not restore
    assert api.get(f"/api/v1/projects/{pid}/git/commits", token=stranger.token).status == 404
    assert api.get(f"/api/v1/projects/{pid}/git/commits").status == 404
    assert len(_commits(api, viewer, pid)) == 1
    denied = api.post(f"/api/v1/projects/{pid}/git/restore", token=viewer.token,
                      json_body={"commit": head})
    assert denied.status == 403
    bad = api.get(f"/api/v1/projects/{pid}/git/commits/not-a-sha", token=owner.token)
    assert bad.status == 404


def test_an_empty_project_has_no_commits(api: Api, owner: UserCtx) -> None:
    pid = make_project(api, owner)["id"]
    assert _commits(api, owner, pid) == []
    assert api.get(f"/api/v1/projects/{pid}/git/commits/HEAD", token=owner.token).status == 404


@pytest.mark.runner  # the fork is copied by an in-process runner
def test_fork_keeps_the_full_history_and_the_files(api: Api, owner: UserCtx, editor: UserCtx,
                                                   stranger: UserCtx) -> None:
    # GIVEN a public project with two commits, and a private one
    pid = make_project(api, owner, visibility="public")["id"]
    make_file(api, owner, pid, "rtl/a.v", "// a\n")
    make_file(api, owner, pid, "rtl/b.v", "// b\n")
    private = make_project(api, owner)["id"]
    history = _commits(api, owner, pid)

    # WHEN another user forks the public project and a runner takes the fork job
    reply = fork_support.fork(api, editor, pid, {"name": "my fork"})

    # THEN the fork is theirs at once, marked importing, and after the job it has the same
    # commits and the same files
    assert reply.status == 202, reply.body
    assert reply.json["import_status"] == "importing" and reply.json["forked_from"] == pid
    fork = api.get(f"/api/v1/projects/{reply.json['id']}", token=editor.token).json
    assert fork["import_status"] == "completed"
    assert fork["owner_id"] == editor.id and fork["id"] != pid
    assert fork["visibility"] == "public" and fork["file_count"] == 2
    assert [c["id"] for c in _commits(api, editor, fork["id"])] == [c["id"] for c in history]
    listed = api.get(f"/api/v1/projects/{fork['id']}/files", token=editor.token).json
    assert sorted(f["filepath"] for f in listed) == ["rtl/a.v", "rtl/b.v"]

    # AND later changes to either side stay on their side
    make_file(api, editor, fork["id"], "rtl/c.v", "// c\n")
    assert len(_commits(api, editor, fork["id"])) == 3
    assert len(_commits(api, owner, pid)) == 2

    # AND a private project cannot be forked by someone who cannot read it
    assert fork_support.fork(api, stranger, private, run=False).status == 404


def test_deleting_a_project_removes_its_repository(api: Api, owner: UserCtx) -> None:
    from chalicelib.aws import client
    from chalicelib.config import get_settings
    from chalicelib.models.git import GitRef

    # GIVEN a project with history
    pid = make_project(api, owner)["id"]
    make_file(api, owner, pid)
    prefix = f"git/{pid}/"
    listed = client("s3").list_objects_v2(Bucket=get_settings().bucket, Prefix=prefix)
    assert listed.get("KeyCount", 0) >= 3  # blob, trees, commit
    assert len(list(GitRef.query(pid))) == 1

    # WHEN the project is deleted
    assert api.delete(f"/api/v1/projects/{pid}", token=owner.token).status == 204

    # THEN its refs and objects are gone
    assert list(GitRef.query(pid)) == []
    listed = client("s3").list_objects_v2(Bucket=get_settings().bucket, Prefix=prefix)
    assert listed.get("KeyCount", 0) == 0


def test_content_at_a_commit_under_a_file_path_is_404(api: Api, owner: UserCtx) -> None:
    # GIVEN a commit holding the file rtl/top.v
    pid = make_project(api, owner)["id"]
    make_file(api, owner, pid)
    # WHEN a path below that file is asked for THEN it does not exist (not a server error)
    reply = api.get(f"/api/v1/projects/{pid}/git/commits/HEAD/content?path=rtl/top.v/x",
                    token=owner.token)
    assert reply.status == 404, reply.body


def test_a_revision_in_a_parameter_that_names_nothing_is_422_and_in_the_path_404(
        api: Api, owner: UserCtx) -> None:
    # GIVEN a project with history
    pid = make_project(api, owner)["id"]
    make_file(api, owner, pid, "rtl/a.v", "// a\n")
    head = _commits(api, owner, pid)[0]["id"]
    base = f"/api/v1/projects/{pid}"
    # WHEN a query or body parameter names no commit / THEN 422 naming the parameter, as a
    # job's commit and pipelines/compare answer
    cases = {
        f"{base}/git/diff?base=zzz&head=HEAD": "base: 'zzz' is not a commit, branch or tag",
        f"{base}/git/diff?base={head}&head=nosuch": "head: 'nosuch' is not a commit, branch or tag",
    }
    for url, detail in cases.items():
        reply = api.get(url, token=owner.token)
        assert (reply.status, reply.json["detail"][:len(detail)]) == (422, detail), url
    restore = api.post(f"{base}/git/restore", token=owner.token,
                       json_body={"commit": "f" * 40})
    assert restore.status == 422 and restore.json["detail"].startswith("commit: "), restore.body
    # AND a path with '..' is refused by the files API's guard (422), not looked up (404)
    for reply in (api.get(f"{base}/git/commits/{head}/content?path=rtl/../a.v", token=owner.token),
                  api.post(f"{base}/git/restore", token=owner.token,
                           json_body={"commit": head, "path": "rtl/../a.v"})):
        assert reply.status == 422 and reply.json["detail"].startswith("path: "), reply.body
    # AND a revision in the path that names nothing stays 404 (the resource does not exist)
    assert api.get(f"{base}/git/commits/{'e' * 40}", token=owner.token).status == 404
