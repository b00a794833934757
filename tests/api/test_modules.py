"""Modules: design units extracted from a project's HDL files by slang, kept current on every
change (files API, git push, delete), listed and filtered, with diagnostics for bad files."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests import fork_support
from tests.conftest import Api, UserCtx, make_file, make_project

PICORV32 = Path(__import__("pythondata_cpu_picorv32").__file__).parent / "verilog" / "picorv32.v"
PICORV32_MODULES = {"picorv32", "picorv32_regs", "picorv32_pcpi_mul", "picorv32_pcpi_fast_mul",
                    "picorv32_pcpi_div", "picorv32_axi", "picorv32_axi_adapter", "picorv32_wb"}

COUNTER = """\
module counter #(parameter WIDTH = 8, parameter logic [3:0] STEP = 4'd1) (
  input  wire             clk,
  input  wire             rst,
  output reg [WIDTH-1:0]  q
);
  localparam ZERO = 0;
  always @(posedge clk) q <= rst ? ZERO : q + STEP;
endmodule
"""

TOP = """\
module top(input clk, output [7:0] leds);
  wire rst = 1'b0;
  counter #(.WIDTH(8)) c0 (.clk(clk), .rst(rst), .q(leds));
  counter #(.WIDTH(8)) c1 (.clk(clk), .rst(rst), .q());
endmodule
"""

SV_UNITS = """\
package bus_pkg;
  typedef logic [31:0] word_t;
endpackage

interface bus_if (input logic clk);
  logic valid;
endinterface

module sink import bus_pkg::*; (bus_if bus, input word_t data);
endmodule
"""


def modules_of(api: Api, user: UserCtx | None, pid: int, query: str = "") -> list[dict[str, Any]]:
    reply = api.get(f"/api/v1/projects/{pid}/modules?limit=100{query}",
                    token=user.token if user else None)
    assert reply.status == 200, reply.body
    return list(reply.json)


def by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in items}


def test_picorv32_modules_ports_parameters_and_instances(api: Api, owner: UserCtx) -> None:
    # GIVEN a project holding the real picorv32.v, created through the files API
    pid = make_project(api, owner)["id"]
    created = make_file(api, owner, pid, "rtl/picorv32.v", PICORV32.read_text())
    # WHEN its modules are listed
    found = by_name(modules_of(api, owner, pid))
    # THEN every module of the file is there, with its file and lines
    assert set(found) == PICORV32_MODULES
    core = found["picorv32"]
    assert core["module_type"] == "verilog_module"
    assert (core["file_id"], core["filepath"], core["filename"]) == (
        created["id"], "rtl/picorv32.v", "picorv32.v")
    assert (core["start_line"], core["end_line"]) == (62, 2167)
    assert all(isinstance(core[k], int) and 0 < core[k] < 2**53
               for k in ("id", "project_id", "file_id"))
    assert core["project_id"] == pid
    # AND the ports carry direction, width and range as written
    ports = {p["name"]: p for p in core["module_metadata"]["ports"]}
    assert ports["clk"]["direction"] == "input" and ports["clk"]["width"] == 1
    assert ports["mem_addr"] == {**ports["mem_addr"], "direction": "output", "width": 32}
    assert ports["mem_addr"]["range"].replace(" ", "") == "[31:0]"
    assert ports["mem_wstrb"]["width"] == 4
    # AND the parameters their defaults
    params = {p["name"]: p for p in core["module_metadata"]["parameters"]}
    assert params["ENABLE_COUNTERS"]["default_value"] == "1"
    assert params["PROGADDR_RESET"]["default_value"].replace(" ", "") == "32'h0000_0000"
    # AND the instances name the modules they instantiate
    assert set(found["picorv32_axi"]["module_metadata"]["instances"]) == {
        "picorv32_axi_adapter", "picorv32"}
    assert "picorv32" in found["picorv32_wb"]["module_metadata"]["instances"]
    # AND one module reads the same by id
    one = api.get(f"/api/v1/projects/{pid}/modules/{core['id']}", token=owner.token)
    assert one.status == 200 and one.json == core


def test_filters_types_and_instances_of_hand_written_designs(api: Api, owner: UserCtx) -> None:
    # GIVEN a counter, a top that instantiates it twice, and SystemVerilog units
    pid = make_project(api, owner)["id"]
    make_file(api, owner, pid, "rtl/counter.v", COUNTER)
    make_file(api, owner, pid, "rtl/top.v", TOP)
    make_file(api, owner, pid, "rtl/bus.sv", SV_UNITS)
    make_file(api, owner, pid, "README.md", "module not_hdl; endmodule\n")
    found = by_name(modules_of(api, owner, pid))
    # THEN each unit has its type, and a non-HDL file has none
    assert {n: m["module_type"] for n, m in found.items()} == {
        "counter": "verilog_module", "top": "verilog_module", "sink": "verilog_module",
        "bus_pkg": "verilog_package", "bus_if": "verilog_interface"}
    counter = found["counter"]["module_metadata"]
    assert [(p["name"], p["default_value"], p["local"]) for p in counter["parameters"]] == [
        ("WIDTH", "8", False), ("STEP", "4'd1", False), ("ZERO", "0", True)]
    assert [p["width"] for p in counter["ports"]] == [1, 1, 8]
    top = found["top"]["module_metadata"]
    assert top["instances"] == ["counter"]
    assert [(i["module"], i["name"], i["line"]) for i in top["instantiations"]] == [
        ("counter", "c0", 3), ("counter", "c1", 4)]
    assert "bus_pkg" in found["sink"]["module_metadata"]["imports"]
    # WHEN filtered by type and by a case-insensitive part of the name
    packages = modules_of(api, owner, pid, "&module_type=verilog_package")
    searched = modules_of(api, owner, pid, "&search=COUNT")
    both = modules_of(api, owner, pid, "&module_type=verilog_interface&search=bus")
    none = modules_of(api, owner, pid, "&module_type=python_class")
    # THEN only the matching ones come back
    assert [m["name"] for m in packages] == ["bus_pkg"]
    assert [m["name"] for m in searched] == ["counter"]
    assert [m["name"] for m in both] == ["bus_if"]
    assert none == []


def test_modules_follow_edits_renames_and_deletes(api: Api, owner: UserCtx) -> None:
    # GIVEN a file with two modules, one of them described by a user
    pid = make_project(api, owner)["id"]
    f = make_file(api, owner, pid, "rtl/a.v", "module keep(input a); endmodule\nmodule gone; endmodule\n")
    before = by_name(modules_of(api, owner, pid))
    keep_id = before["keep"]["id"]
    described = api.put(f"/api/v1/projects/{pid}/modules/{keep_id}", token=owner.token,
                        json_body={"description": "the one that stays"})
    assert described.status == 200 and described.json["description"] == "the one that stays"
    # WHEN the file is edited: one module gains a port, one goes, one arrives
    edited = api.put(f"/api/v1/projects/{pid}/files/{f['id']}", token=owner.token,
                     json_body={"content": "module keep(input a, output [3:0] b);\nendmodule\n"
                                           "module fresh; endmodule\n"})
    assert edited.status == 200, edited.body
    after = by_name(modules_of(api, owner, pid))
    # THEN the modules follow, the kept one with its id, description and new port
    assert set(after) == {"keep", "fresh"}
    assert after["keep"]["id"] == keep_id
    assert after["keep"]["description"] == "the one that stays"
    assert [(p["name"], p["width"]) for p in after["keep"]["module_metadata"]["ports"]] == [
        ("a", 1), ("b", 4)]
    assert api.get(f"/api/v1/projects/{pid}/modules/{before['gone']['id']}",
                   token=owner.token).status == 404
    # WHEN the file moves to another folder THEN its modules carry the new path
    moved = api.patch(f"/api/v1/projects/{pid}/files/{f['id']}", token=owner.token,
                      json_body={"filepath": "src/b.v"})
    assert moved.status == 200, moved.body
    assert {m["filepath"] for m in modules_of(api, owner, pid)} == {"src/b.v"}
    # WHEN it is renamed to something that is not HDL THEN it has no modules
    api.patch(f"/api/v1/projects/{pid}/files/{f['id']}", token=owner.token,
              json_body={"filepath": "doc/b.txt"})
    assert modules_of(api, owner, pid) == []
    # WHEN it is renamed back and then deleted THEN its modules come and go with it
    api.patch(f"/api/v1/projects/{pid}/files/{f['id']}", token=owner.token,
              json_body={"filepath": "rtl/b.v"})
    assert set(by_name(modules_of(api, owner, pid))) == {"keep", "fresh"}
    assert api.delete(f"/api/v1/projects/{pid}/files/{f['id']}", token=owner.token).status == 204
    assert modules_of(api, owner, pid) == []


def test_a_syntax_error_reports_diagnostics_not_a_500(api: Api, owner: UserCtx) -> None:
    # GIVEN a file with a good module and a syntax error further down
    pid = make_project(api, owner)["id"]
    f = make_file(api, owner, pid, "rtl/broken.v",
                  "module ok(input a);\nendmodule\n\nmodule bad(input a\n  wire x = ;\nendmodule\n")
    # WHEN the file is parsed
    reply = api.post(f"/api/v1/projects/{pid}/files/{f['id']}/parse", token=owner.token)
    # THEN the answer says what is wrong and where, and keeps what could be read
    assert reply.status == 200, reply.body
    result = reply.json
    assert result["success"] is False and result["files_parsed"] == 1
    errors = [d for d in result["diagnostics"] if d["severity"] == "error"]
    assert errors and all(d["filepath"] == "rtl/broken.v" and d["file_id"] == f["id"]
                          for d in errors)
    assert {d["line"] for d in errors} <= {4, 5, 6} and errors[0]["message"]
    assert result["errors"][0].startswith("rtl/broken.v:")
    assert "ok" in {m["name"] for m in result["modules"]}
    assert result["modules_found"] == len(result["modules"])
    # AND the list holds the same modules
    assert {m["name"] for m in modules_of(api, owner, pid)} == {
        m["name"] for m in result["modules"]}


def test_reparse_rebuilds_every_file_and_drops_orphans(api: Api, owner: UserCtx) -> None:
    from chalicelib.models.modules import Module

    # GIVEN a project whose module rows were lost, plus a row whose file does not exist
    pid = make_project(api, owner)["id"]
    make_file(api, owner, pid, "rtl/counter.v", COUNTER)
    make_file(api, owner, pid, "rtl/top.v", TOP)
    rows = list(Module.query(pid))
    counter = next(r for r in rows if r.name == "counter")
    counter.delete()
    gone_file = counter.file_id + 1  # no such file
    Module(pid, counter.id + 1, file_key=str(gone_file), file_id=gone_file, filepath="gone.v",
           filename="gone.v", name="ghost", name_lower="ghost", module_type="verilog_module",
           source_sha256="0", created_at="2026-01-01T00:00:00Z",
           updated_at="2026-01-01T00:00:00Z").save()
    assert {m["name"] for m in modules_of(api, owner, pid)} == {"top", "ghost"}
    # WHEN the project is re-parsed
    reply = api.post(f"/api/v1/projects/{pid}/modules/reparse", token=owner.token)
    # THEN every HDL file's modules are back and the orphan is gone
    assert reply.status == 200, reply.body
    assert reply.json["success"] is True and reply.json["files_parsed"] == 2
    assert {m["name"] for m in reply.json["modules"]} == {"counter", "top"}
    assert {m["name"] for m in modules_of(api, owner, pid)} == {"counter", "top"}


def test_deleting_a_project_removes_its_modules(api: Api, owner: UserCtx) -> None:
    from chalicelib.models.modules import Module

    pid = make_project(api, owner)["id"]
    make_file(api, owner, pid, "rtl/counter.v", COUNTER)
    assert list(Module.query(pid))
    assert api.delete(f"/api/v1/projects/{pid}", token=owner.token).status == 204
    assert list(Module.query(pid)) == []


def test_module_put_and_delete_semantics(api: Api, owner: UserCtx) -> None:
    # GIVEN a module
    pid = make_project(api, owner)["id"]
    f = make_file(api, owner, pid, "rtl/counter.v", COUNTER)
    module = modules_of(api, owner, pid)[0]
    url = f"/api/v1/projects/{pid}/modules/{module['id']}"
    # WHEN the whole module is sent back with a new description THEN only that changes
    sent = {"name": module["name"], "module_metadata": module["module_metadata"],
            "description": "counts"}
    put = api.put(url, token=owner.token, json_body=sent)
    assert put.status == 200, put.body
    assert {**module, "description": "counts", "updated_at": put.json["updated_at"]} == put.json
    # WHEN the name or metadata differ from the source THEN 422, nothing stored
    for body in ({"name": "renamed"}, {"module_metadata": {"ports": []}}):
        refused = api.put(url, token=owner.token, json_body=body)
        assert refused.status == 422 and "source" in refused.json["detail"]
    assert api.get(url, token=owner.token).json == put.json
    # WHEN the description is cleared THEN it is null
    cleared = api.put(url, token=owner.token, json_body={"description": None})
    assert cleared.status == 200 and cleared.json["description"] is None
    # WHEN the module is deleted THEN it is gone until its file is parsed again
    assert api.delete(url, token=owner.token).status == 204
    assert api.get(url, token=owner.token).status == 404
    assert modules_of(api, owner, pid) == []
    parsed = api.post(f"/api/v1/projects/{pid}/files/{f['id']}/parse", token=owner.token)
    assert [m["name"] for m in parsed.json["modules"]] == ["counter"]
    assert [m["name"] for m in modules_of(api, owner, pid)] == ["counter"]


@pytest.mark.parametrize(("method", "suffix", "body", "status"), [
    ("GET", "/modules?module_type=vhdl_entity", None, 422),
    ("GET", "/modules?search=" + "x" * 201, None, 422),
    ("GET", "/modules?limit=0", None, 422),
    ("GET", "/modules?cursor=forged", None, 400),
    ("GET", "/modules/abc", None, 404),
    ("GET", "/modules/0123", None, 404),
    ("GET", "/modules/99999999999999999999", None, 404),
    ("GET", "/modules/9007199254740992", None, 404),  # 2**53
    ("GET", "/modules/-1", None, 404),
    ("GET", "/modules/1.0", None, 404),
    ("PUT", "/modules/{mid}", {"description": 5}, 422),
    ("PUT", "/modules/{mid}", {"descripton": "typo"}, 422),
    ("PUT", "/modules/{mid}", {"description": "x" * 10_001}, 422),
    ("PUT", "/modules/{mid}", "not json", 400),
    ("PUT", "/modules/{mid}", [], 422),
    ("PUT", "/modules/1", {"description": "none such"}, 404),
    ("DELETE", "/modules/1", None, 404),
    ("POST", "/files/abc/parse", None, 404),
    ("POST", "/files/1/parse", None, 404),
    ("POST", "/files/01/parse", None, 404),
])
def test_bad_input_is_refused_and_nothing_is_stored(api: Api, owner: UserCtx, method: str,
                                                    suffix: str, body: Any, status: int) -> None:
    pid = make_project(api, owner)["id"]
    make_file(api, owner, pid, "rtl/counter.v", COUNTER)
    before = modules_of(api, owner, pid)
    path = f"/api/v1/projects/{pid}" + suffix.replace("{mid}", str(before[0]["id"]))
    if isinstance(body, str):
        reply = api.request(method, path, raw=body, token=owner.token,
                            headers={"Content-Type": "application/json"})
    else:
        reply = api.request(method, path, json_body=body, token=owner.token)
    assert reply.status == status, reply.body
    assert reply.json["detail"]
    assert modules_of(api, owner, pid) == before


def test_a_module_of_another_project_is_not_found(api: Api, owner: UserCtx) -> None:
    mine = make_project(api, owner)["id"]
    other = make_project(api, owner)["id"]
    make_file(api, owner, other, "rtl/counter.v", COUNTER)
    foreign = modules_of(api, owner, other)[0]["id"]
    assert api.get(f"/api/v1/projects/{mine}/modules/{foreign}", token=owner.token).status == 404
    assert api.delete(f"/api/v1/projects/{mine}/modules/{foreign}",
                      token=owner.token).status == 404
    assert len(modules_of(api, owner, other)) == 1


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None, reason="the git client is not installed")
def test_a_git_push_updates_the_modules(api: Api, live_server: str, owner: UserCtx,
                                        tmp_path: Path) -> None:
    from tests.git.test_git_http import Git, api_token, commit_all, remote

    git = Git(tmp_path / "home")
    # GIVEN a project with a counter, cloned with the real git client
    pid = make_project(api, owner)["id"]
    make_file(api, owner, pid, "rtl/counter.v", COUNTER)
    counter_id = modules_of(api, owner, pid)[0]["id"]
    git.run("clone", "-q", remote(live_server, pid, api_token(api, owner)), "work")
    work = git.home / "work"
    # WHEN a commit adds picorv32 and a top, changes the counter's port, and is pushed
    (work / "rtl" / "picorv32.v").write_text(PICORV32.read_text())
    (work / "rtl" / "top.v").write_text(TOP)
    (work / "rtl" / "counter.v").write_text(COUNTER.replace("output reg [WIDTH-1:0]  q",
                                                            "output reg [15:0] q"))
    commit_all(git, work, "add picorv32")
    git.run("push", "-q", "origin", "main", cwd=work)
    # THEN the modules API shows the pushed modules, the counter's with its id and new width
    found = by_name(modules_of(api, owner, pid))
    assert set(found) == PICORV32_MODULES | {"counter", "top"}
    assert found["counter"]["id"] == counter_id
    assert [p["width"] for p in found["counter"]["module_metadata"]["ports"]] == [1, 1, 16]
    # WHEN a commit deletes picorv32.v and is pushed THEN its modules are gone
    (work / "rtl" / "picorv32.v").unlink()
    commit_all(git, work, "drop picorv32")
    git.run("push", "-q", "origin", "main", cwd=work)
    assert set(by_name(modules_of(api, owner, pid))) == {"counter", "top"}


@pytest.mark.runner  # the fork is copied by an in-process runner
def test_restore_and_fork_carry_the_modules(api: Api, owner: UserCtx, editor: UserCtx) -> None:
    # GIVEN a public project whose file lost a module after the first commit, plus a second file
    pid = make_project(api, owner, visibility="public")["id"]
    f = make_file(api, owner, pid, "rtl/a.v", "module one; endmodule\nmodule two; endmodule\n")
    first = api.get(f"/api/v1/projects/{pid}/git/commits/HEAD", token=owner.token).json["id"]
    api.put(f"/api/v1/projects/{pid}/files/{f['id']}", token=owner.token,
            json_body={"content": "module one; endmodule\n"})
    make_file(api, owner, pid, "rtl/b.v", COUNTER)
    assert set(by_name(modules_of(api, owner, pid))) == {"one", "counter"}
    # WHEN the whole project is restored to the first commit
    reply = api.post(f"/api/v1/projects/{pid}/git/restore", token=owner.token,
                     json_body={"commit": first})
    assert reply.status == 200, reply.body
    # THEN the modules are those of the first commit
    assert set(by_name(modules_of(api, owner, pid))) == {"one", "two"}
    # WHEN another user forks the project THEN the fork has the same modules, with its own ids
    fork = fork_support.fork(api, editor, pid, {"name": "f"})
    assert fork.status == 202, fork.body
    forked = by_name(modules_of(api, editor, fork.json["id"]))
    assert set(forked) == {"one", "two"}
    assert all(m["project_id"] == fork.json["id"] for m in forked.values())


def test_includes_are_read_from_the_project(api: Api, owner: UserCtx) -> None:
    # GIVEN a header with a width macro, and a module that includes it from another folder
    pid = make_project(api, owner)["id"]
    make_file(api, owner, pid, "include/defs.vh", "`define BUS_W 12\n")
    make_file(api, owner, pid, "rtl/dev.v", '`include "include/defs.vh"\n'
                                            "module dev(input [`BUS_W-1:0] addr); endmodule\n")
    # WHEN its modules are listed THEN the macro was expanded from the project's header
    dev = by_name(modules_of(api, owner, pid))["dev"]
    assert dev["module_metadata"]["ports"][0]["width"] == 12
    # AND a missing include is a diagnostic, not a failure
    g = make_file(api, owner, pid, "rtl/lost.v", '`include "nowhere.vh"\nmodule lost; endmodule\n')
    parsed = api.post(f"/api/v1/projects/{pid}/files/{g['id']}/parse", token=owner.token).json
    assert [m["name"] for m in parsed["modules"]] == ["lost"]
    assert any("nowhere.vh" in d["message"] for d in parsed["diagnostics"])


@pytest.mark.integration
@pytest.mark.slow
def test_racing_edits_and_reparses_end_with_the_last_contents_modules(
        api: Api, live_server: str, owner: UserCtx) -> None:
    import requests

    from tests.api.test_concurrency import race

    # GIVEN a file with one module
    pid = make_project(api, owner)["id"]
    f = make_file(api, owner, pid, "rtl/race.v", "module m0; endmodule\n")
    base = f"{live_server}/api/v1/projects/{pid}"
    auth = {"Authorization": f"Bearer {owner.token}"}

    def edit(i: int) -> Any:
        return lambda: requests.put(f"{base}/files/{f['id']}", headers=auth, timeout=60,
                                    json={"content": f"module m{i}; endmodule\n"})

    def reparse() -> Any:
        return lambda: requests.post(f"{base}/modules/reparse", headers=auth, timeout=60)

    for round_ in range(3):
        # WHEN edits of the file (over 2 server processes) race with re-parses of the project
        replies = race(edit(3 * round_ + 1), reparse(), edit(3 * round_ + 2), reparse())
        assert all(r.status_code in (200, 409) for r in replies), [r.text for r in replies]
        # THEN the modules are exactly those of the file's final content
        content = api.get(f"/api/v1/projects/{pid}/files/{f['id']}", token=owner.token)
        final = content.json["content"].split()[1].rstrip(";")
        assert [m["name"] for m in modules_of(api, owner, pid)] == [final]


def test_a_parse_of_an_older_version_does_not_overwrite_a_newer_ones_modules(
        api: Api, owner: UserCtx) -> None:
    from chalicelib.models.files import File
    from chalicelib.services import modules

    # GIVEN a file read at its first version (as a slow refresh would have read it)
    pid = make_project(api, owner)["id"]
    old_text = b"module old_one; endmodule\n"
    f = make_file(api, owner, pid, "rtl/slow.v", old_text.decode())
    stale = File.get(pid, f["id"], consistent_read=True)
    # AND a newer edit whose refresh already ran
    api.put(f"/api/v1/projects/{pid}/files/{f['id']}", token=owner.token,
            json_body={"content": "module new_one; endmodule\n"})
    assert [m["name"] for m in modules_of(api, owner, pid)] == ["new_one"]
    # WHEN the slow refresh of the first version writes its result
    with pytest.raises(modules._Superseded):
        modules._refresh(stale, modules.sha256_map([old_text]))
    # THEN it wrote nothing: the newer version's modules stand
    assert [m["name"] for m in modules_of(api, owner, pid)] == ["new_one"]
    # AND a refresh from the top reads the newer version
    assert [m.name for m in modules.refresh_file(pid, f["id"]).modules] == ["new_one"]
