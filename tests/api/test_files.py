"""Files over HTTP: text and binary bodies, folders, uploads, rename, ETag / If-Match, delete,
the project's counters, and S3 holding exactly one body per file."""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

import boto3
import pytest
from urllib3.filepost import encode_multipart_formdata

from tests.conftest import Api, UserCtx, add_member, make_file, make_project

# The wire contract's fields (and ours); later features may add more.
FILE_FIELDS = {"id", "filename", "filepath", "size_bytes", "mime_type", "sha256", "version",
               "created_at", "updated_at"}
# Every byte value, CRLFs, something that looks like a boundary, and no trailing newline.
BLOB = bytes(range(256)) + b"\r\n--\r\n--boundary\r\n\r\n" + bytes(range(255, -1, -1)) + b"\x00\xff"


@pytest.fixture(scope="module")
def s3(emulator: Any) -> Any:
    return boto3.client("s3", endpoint_url=emulator.url)


@pytest.fixture(scope="module")
def project(api: Api, owner: UserCtx, editor: UserCtx) -> dict[str, Any]:
    created = make_project(api, owner)
    add_member(api, owner, created["id"], editor, "editor")
    return created


def objects(s3: Any, pid: int, file_id: int = 0) -> list[str]:
    prefix = f"projects/{pid}/files/{f'{file_id}/' if file_id else ''}"
    listed = s3.list_objects_v2(Bucket=os.environ["A6HUB_BUCKET"], Prefix=prefix)
    return [o["Key"] for o in listed.get("Contents", [])]


def counters(api: Api, user: UserCtx, pid: str) -> tuple[int, int]:
    body = api.get(f"/api/v1/projects/{pid}", token=user.token).json
    return body["file_count"], body["total_bytes"]


def upload(api: Api, user: UserCtx, pid: str, name: str, data: bytes,
           filepath: str | None = None, mime: str = "application/octet-stream") -> Any:
    fields: dict[str, Any] = {"file": (name, data, mime)}
    if filepath is not None:
        fields["filepath"] = filepath
    form, content_type = encode_multipart_formdata(fields)
    return api.post(f"/api/v1/projects/{pid}/files/upload", token=user.token, raw=form,
                    headers={"Content-Type": content_type})


def read(api: Api, user: UserCtx, pid: str, file_id: str) -> Any:
    reply = api.get(f"/api/v1/projects/{pid}/files/{file_id}", token=user.token)
    assert reply.status == 200, reply.body
    return reply


def content_bytes(reply: Any) -> bytes:
    body = reply.json
    if body["encoding"] == "base64":
        return base64.b64decode(body["content"])
    assert body["encoding"] == "utf-8"
    return str(body["content"]).encode("utf-8")


def test_text_file_round_trip(api: Api, s3: Any, owner: UserCtx, editor: UserCtx) -> None:
    pid = make_project(api, owner)["id"]
    add_member(api, owner, pid, editor, "editor")
    source = "module alu(input [3:0] a, b, output [4:0] y);\n  assign y = a + b; // ü\nendmodule\n"
    # WHEN an editor creates a file in a folder
    created = api.post(f"/api/v1/projects/{pid}/files", token=editor.token,
                       json_body={"filename": "alu.v", "filepath": "rtl/core/alu.v",
                                  "content": source})
    # THEN the response is the public record with an ETag
    assert created.status == 201, created.body
    body = created.json
    assert FILE_FIELDS <= set(body) and "content" not in body and "s3_key" not in body
    assert body["filename"] == "alu.v" and body["filepath"] == "rtl/core/alu.v"
    assert body["size_bytes"] == len(source.encode()) and body["mime_type"] == "text/x-verilog"
    assert body["sha256"] == hashlib.sha256(source.encode()).hexdigest()
    assert body["version"] == 1 and created.header("ETag") == '"1"'
    # AND a GET (by anyone who can read) has the content, the list has the record
    got = read(api, owner, pid, body["id"])
    assert got.json["content"] == source and got.json["encoding"] == "utf-8"
    assert got.header("ETag") == '"1"'
    assert {k: got.json[k] for k in body} == body
    listed = api.get(f"/api/v1/projects/{pid}/files", token=owner.token).json
    assert listed == [body]
    assert counters(api, owner, pid) == (1, len(source.encode()))
    assert len(objects(s3, pid, body["id"])) == 1


@pytest.mark.parametrize(("path", "content"), [
    ("mem/program.hex", "00000093\n00100113\n002081b3\n0000006f\n"),
    ("mem/rom.mem", "@0000\nDE AD BE EF\n// comment\n@0010\n01 02 03\n"),
])
def test_memory_images(api: Api, owner: UserCtx, project: dict[str, Any], path: str,
                       content: str) -> None:
    created = make_file(api, owner, project["id"], path, content)
    assert created["mime_type"] == "text/plain"
    got = read(api, owner, project["id"], created["id"])
    assert got.json["content"] == content


def test_binary_through_base64(api: Api, s3: Any, owner: UserCtx, project: dict[str, Any]) -> None:
    pid = project["id"]
    created = api.post(f"/api/v1/projects/{pid}/files", token=owner.token,
                       json_body={"filename": "b64.bin", "filepath": "bin/b64.bin",
                                  "content": base64.b64encode(BLOB).decode(),
                                  "encoding": "base64"})
    assert created.status == 201, created.body
    assert created.json["size_bytes"] == len(BLOB)
    assert created.json["sha256"] == hashlib.sha256(BLOB).hexdigest()
    assert created.json["mime_type"] == "application/octet-stream"
    got = read(api, owner, pid, created.json["id"])
    assert got.json["encoding"] == "base64"
    assert content_bytes(got) == BLOB
    key = objects(s3, pid, created.json["id"])[0]
    assert s3.get_object(Bucket=os.environ["A6HUB_BUCKET"], Key=key)["Body"].read() == BLOB


def test_binary_through_multipart_upload(api: Api, editor: UserCtx,
                                         project: dict[str, Any]) -> None:
    pid = project["id"]
    # WHEN an editor uploads a binary into a folder
    reply = upload(api, editor, pid, "firmware.bin", BLOB, filepath="fw/")
    # THEN it is stored byte for byte at fw/firmware.bin
    assert reply.status == 201, reply.body
    assert reply.json["filepath"] == "fw/firmware.bin" and reply.json["filename"] == "firmware.bin"
    assert reply.json["size_bytes"] == len(BLOB) and reply.header("ETag") == '"1"'
    assert content_bytes(read(api, editor, pid, reply.json["id"])) == BLOB


def test_upload_text_and_full_filepath(api: Api, owner: UserCtx, project: dict[str, Any]) -> None:
    pid = project["id"]
    source = b"module up; endmodule\n"
    at_root = upload(api, owner, pid, "up.v", source, mime="text/plain")
    full = upload(api, owner, pid, "up.v", source, filepath="tb/up_tb/up.v")
    assert at_root.status == 201 and full.status == 201, (at_root.body, full.body)
    assert at_root.json["filepath"] == "up.v" and at_root.json["mime_type"] == "text/x-verilog"
    assert full.json["filepath"] == "tb/up_tb/up.v"
    assert read(api, owner, pid, at_root.json["id"]).json["content"] == source.decode()
    duplicate = upload(api, owner, pid, "up.v", b"other")
    assert duplicate.status == 409


@pytest.mark.parametrize("form", [
    {"filepath": "x.v"},                        # no file part
    {"file": "just a field, no filename"},
])
def test_upload_without_a_file_is_422(api: Api, owner: UserCtx, project: dict[str, Any],
                                      form: dict[str, Any]) -> None:
    pid = project["id"]
    before = counters(api, owner, pid)
    body, content_type = encode_multipart_formdata(form)
    reply = api.post(f"/api/v1/projects/{pid}/files/upload", token=owner.token, raw=body,
                     headers={"Content-Type": content_type})
    assert reply.status == 422, reply.body
    no_boundary = api.post(f"/api/v1/projects/{pid}/files/upload", token=owner.token, raw=body,
                           headers={"Content-Type": "multipart/form-data"})
    assert no_boundary.status == 422
    assert counters(api, owner, pid) == before


def test_update_content_keeps_one_body_and_counts_bytes(api: Api, s3: Any, owner: UserCtx) -> None:
    pid = make_project(api, owner)["id"]
    created = make_file(api, owner, pid, "rtl/top.v", "a" * 10)
    fid = created["id"]
    old_objects = objects(s3, pid, fid)
    reply = api.put(f"/api/v1/projects/{pid}/files/{fid}", token=owner.token,
                    json_body={"content": "b" * 25})
    assert reply.status == 200, reply.body
    assert reply.json["version"] == 2 and reply.header("ETag") == '"2"'
    assert reply.json["size_bytes"] == 25 and reply.json["updated_at"] > created["updated_at"]
    assert read(api, owner, pid, fid).json["content"] == "b" * 25
    assert counters(api, owner, pid) == (1, 25)
    new_objects = objects(s3, pid, fid)
    assert len(new_objects) == 1 and new_objects != old_objects
    # A binary replacement through base64
    binary = api.put(f"/api/v1/projects/{pid}/files/{fid}", token=owner.token,
                     json_body={"content": base64.b64encode(b"\0\1\2").decode(),
                                "encoding": "base64"})
    assert binary.status == 200 and binary.json["size_bytes"] == 3
    assert content_bytes(read(api, owner, pid, fid)) == b"\0\1\2"
    assert counters(api, owner, pid) == (1, 3)


def test_rename_and_move_through_put(api: Api, owner: UserCtx) -> None:
    pid = make_project(api, owner)["id"]
    created = make_file(api, owner, pid, "rtl/alu.v", "module alu; endmodule\n")
    other = make_file(api, owner, pid, "rtl/other.v")
    fid = created["id"]
    # Move to another folder
    moved = api.put(f"/api/v1/projects/{pid}/files/{fid}", token=owner.token,
                    json_body={"filepath": "src/core/alu.v"})
    assert moved.status == 200, moved.body
    assert moved.json["filepath"] == "src/core/alu.v" and moved.json["filename"] == "alu.v"
    # Rename within the folder
    renamed = api.patch(f"/api/v1/projects/{pid}/files/{fid}", token=owner.token,
                        json_body={"filename": "alu32.v"})
    assert renamed.status == 200
    assert renamed.json["filepath"] == "src/core/alu32.v" and renamed.json["version"] == 3
    assert read(api, owner, pid, fid).json["content"] == "module alu; endmodule\n"
    # Onto an existing path: 409, nothing changes
    clash = api.put(f"/api/v1/projects/{pid}/files/{fid}", token=owner.token,
                    json_body={"filepath": other["filepath"]})
    assert clash.status == 409, clash.body
    assert clash.json["detail"] == "a file already exists at 'rtl/other.v'"
    assert read(api, owner, pid, fid).json["filepath"] == "src/core/alu32.v"
    # The old paths are free again
    make_file(api, owner, pid, "rtl/alu.v")
    make_file(api, owner, pid, "src/core/alu.v")
    paths = sorted(f["filepath"] for f in api.get(f"/api/v1/projects/{pid}/files",
                                                  token=owner.token).json)
    assert paths == ["rtl/alu.v", "rtl/other.v", "src/core/alu.v", "src/core/alu32.v"]


def test_if_match_refuses_stale_versions(api: Api, owner: UserCtx, editor: UserCtx,
                                         project: dict[str, Any]) -> None:
    pid = project["id"]
    created = make_file(api, owner, pid, "rtl/etag.v", "one\n")
    fid = created["id"]
    etag = read(api, editor, pid, fid).header("ETag")
    assert etag == '"1"'
    # An edit with the current ETag succeeds and moves it on
    first = api.put(f"/api/v1/projects/{pid}/files/{fid}", token=editor.token,
                    json_body={"content": "two\n"}, headers={"If-Match": etag})
    assert first.status == 200 and first.header("ETag") == '"2"'
    # A second edit based on the old ETag is refused, and changes nothing
    stale = api.put(f"/api/v1/projects/{pid}/files/{fid}", token=owner.token,
                    json_body={"content": "lost update\n"}, headers={"If-Match": etag})
    assert stale.status == 412, stale.body
    assert stale.json["detail"]
    for bad in ('"999"', "garbage"):
        reply = api.put(f"/api/v1/projects/{pid}/files/{fid}", token=owner.token,
                        json_body={"filepath": "rtl/moved.v"}, headers={"If-Match": bad})
        assert reply.status == 412
    got = read(api, owner, pid, fid)
    assert got.json["content"] == "two\n" and got.json["filepath"] == "rtl/etag.v"
    assert got.header("ETag") == '"2"'
    # If-Match: * means "any version"; no If-Match at all is allowed too
    assert api.put(f"/api/v1/projects/{pid}/files/{fid}", token=owner.token,
                   json_body={"content": "three\n"}, headers={"If-Match": "*"}).status == 200
    # DELETE honours If-Match as well
    assert api.delete(f"/api/v1/projects/{pid}/files/{fid}", token=owner.token,
                      headers={"If-Match": '"2"'}).status == 412
    assert api.delete(f"/api/v1/projects/{pid}/files/{fid}", token=owner.token,
                      headers={"If-Match": '"3"'}).status == 204


def test_delete_frees_path_counters_and_body(api: Api, s3: Any, owner: UserCtx) -> None:
    pid = make_project(api, owner)["id"]
    kept = make_file(api, owner, pid, "keep.v", "k" * 7)
    gone = make_file(api, owner, pid, "rtl/gone.v", "g" * 11)
    assert counters(api, owner, pid) == (2, 18)
    reply = api.delete(f"/api/v1/projects/{pid}/files/{gone['id']}", token=owner.token)
    assert reply.status == 204 and reply.body == b""
    assert api.get(f"/api/v1/projects/{pid}/files/{gone['id']}", token=owner.token).status == 404
    assert api.delete(f"/api/v1/projects/{pid}/files/{gone['id']}", token=owner.token).status == 404
    assert counters(api, owner, pid) == (1, 7)
    assert objects(s3, pid, gone["id"]) == []
    assert len(objects(s3, pid, kept["id"])) == 1
    assert [f["id"] for f in api.get(f"/api/v1/projects/{pid}/files", token=owner.token).json] \
        == [kept["id"]]
    make_file(api, owner, pid, "rtl/gone.v")


def test_files_list_pages(api: Api, owner: UserCtx) -> None:
    pid = make_project(api, owner, visibility="public")["id"]
    made = {make_file(api, owner, pid, f"f{i}.v")["id"] for i in range(3)}
    first = api.get(f"/api/v1/projects/{pid}/files?limit=2")
    assert first.status == 200 and len(first.json) == 2
    link = first.header("Link")
    assert link is not None
    second = api.get(link[1:link.index(">")])
    assert {f["id"] for f in first.json + second.json} == made
    assert all("content" not in f for f in first.json)


def test_a_read_racing_an_update_gets_the_new_version(api: Api, owner: UserCtx,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a reader that has loaded the file's record when an update replaces the body
    from chalicelib import storage
    from chalicelib.models.accounts import User
    from chalicelib.schemas.files import FileUpdate
    from chalicelib.services import files, identity

    pid = make_project(api, owner)["id"]
    fid = make_file(api, owner, pid, "rtl/live.v", "old\n")["id"]
    real_get = storage.get_bytes

    def update_first(key: str) -> bytes:
        monkeypatch.setattr(storage, "get_bytes", real_get)
        files.update_file(identity.Caller(user=User.get(owner.id)), pid, fid,
                          FileUpdate(content="new\n"), None)
        return real_get(key)  # the old body: deleted by the update

    monkeypatch.setattr(storage, "get_bytes", update_first)
    # WHEN the reader goes on to read the body
    reply = api.get(f"/api/v1/projects/{pid}/files/{fid}", token=owner.token)
    # THEN it gets the new version, not a 500
    assert reply.status == 200, reply.body
    assert reply.json["content"] == "new\n" and reply.header("ETag") == '"2"'


@pytest.mark.parametrize("change", [{"content": "mine\n"}, {"filepath": "rtl/mine.v"},
                                    {"filepath": "rtl/mine.v", "content": "mine\n"}])
def test_a_write_that_loses_the_race_after_its_check_is_412(
        api: Api, s3: Any, owner: UserCtx, monkeypatch: pytest.MonkeyPatch,
        change: dict[str, str]) -> None:
    # GIVEN a PUT with If-Match "1" that has passed its version check when another save lands
    from chalicelib.models.accounts import User
    from chalicelib.schemas.files import FileUpdate
    from chalicelib.services import file_rows, files, identity

    pid = make_project(api, owner)["id"]
    fid = make_file(api, owner, pid, "rtl/race.v", "original\n")["id"]
    real_now = file_rows.utcnow_iso  # called once the version check passed (file_rows.replacing)

    def other_save_first() -> str:
        monkeypatch.setattr(file_rows, "utcnow_iso", real_now)
        files.update_file(identity.Caller(user=User.get(owner.id)), pid, fid,
                          FileUpdate(content="theirs\n", filepath="rtl/theirs.v"), '"1"')
        return real_now()

    monkeypatch.setattr(file_rows, "utcnow_iso", other_save_first)
    # WHEN it commits
    reply = api.put(f"/api/v1/projects/{pid}/files/{fid}", token=owner.token, json_body=change,
                    headers={"If-Match": '"1"'})
    # THEN it is 412 (not a 409 or 500) and the other save stands alone
    assert reply.status == 412, reply.body
    got = read(api, owner, pid, fid)
    assert (got.json["content"], got.json["filepath"]) == ("theirs\n", "rtl/theirs.v")
    paths = [f["filepath"] for f in api.get(f"/api/v1/projects/{pid}/files", token=owner.token).json]
    assert paths == ["rtl/theirs.v"]
    assert len(objects(s3, pid, fid)) == 1
    assert counters(api, owner, pid) == (1, len("theirs\n"))
    # The path the loser wanted is free.
    make_file(api, owner, pid, "rtl/mine.v")


@pytest.mark.parametrize("body", [
    b"not a form at all",
    b'--B\r\nContent-Disposition: form-data; name="file"; filename="x.v"\r\n\r\nno closing',
    b'--B\r\nContent-Disposition: form-data; name="file"; filename="x.v"\r\n--B--\r\n',
    b'--B\r\nContent-Disposition: form-data; name="filepath"\r\n\r\n\xff\xfe/\r\n'
    b'--B\r\nContent-Disposition: form-data; name="file"; filename="x.v"\r\n\r\nx\r\n--B--\r\n',
])
def test_malformed_multipart_bodies_are_422(api: Api, owner: UserCtx, project: dict[str, Any],
                                            body: bytes) -> None:
    pid = project["id"]
    before = counters(api, owner, pid)
    reply = api.post(f"/api/v1/projects/{pid}/files/upload", token=owner.token, raw=body,
                     headers={"Content-Type": "multipart/form-data; boundary=B"})
    assert reply.status == 422, reply.body
    assert counters(api, owner, pid) == before


def test_a_memory_image_of_a_few_mib_uploads_intact(api: Api, owner: UserCtx) -> None:
    pid = make_project(api, owner)["id"]
    image = b"".join(b"%08x\n" % (i * 2654435761 % 2**32) for i in range(400_000))  # 3.6 MB
    reply = upload(api, owner, pid, "rom.hex", image, filepath="mem/")
    assert reply.status == 201, reply.body
    got = read(api, owner, pid, reply.json["id"])
    assert got.json["encoding"] == "utf-8" and content_bytes(got) == image
