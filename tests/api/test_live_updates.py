"""Live job updates over a real WebSocket against the dev server (uvicorn workers), fed by the
DynamoDB streams of the jobs and wsconnections tables the way Lambda's triggers feed them, with
a real `python -m runner` completing a real simulation."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.conftest import Api, UserCtx, add_member, make_file, make_project, make_shared_project
from tests.jobs_support import Queues, api_queue, make_queues

TB = """\
module hello_tb;
  integer i;
  initial begin
    for (i = 0; i < 5; i = i + 1) begin
      $display("tick %0d", i);
      #10;
    end
    $display("done");
    $finish;
  end
endmodule
"""


@pytest.fixture(scope="module")
def pusher(emulator: Any, live_server: str) -> Iterator[str]:
    """The stream handlers, fed from the emulator's streams in this process, posting to the
    live server's Management API stand-in (what `make run`'s event dispatcher does)."""
    from devstack import events

    os.environ["A6HUB_WS_ENDPOINT"] = live_server
    stop = threading.Event()
    thread = threading.Thread(target=events.follow_streams, args=("test", stop), daemon=True)
    thread.start()
    yield live_server
    stop.set()
    thread.join(timeout=10)
    os.environ.pop("A6HUB_WS_ENDPOINT", None)


@pytest.fixture(scope="module")
def idle_queue(emulator: Any) -> Iterator[Queues]:
    """A queue no runner reads: jobs submitted to it stay pending."""
    queues = make_queues()
    with api_queue(queues.url):
        yield queues


def socket_url(server: str, job_id: int | str, token: str | None = None, **query: str) -> str:
    params = {**({"token": token} if token else {}), **query}
    tail = "?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else ""
    return server.replace("http://", "ws://") + f"/api/v1/ws/jobs/{job_id}/updates{tail}"


def receive(ws: ClientConnection, timeout: float = 60) -> dict[str, Any]:
    return dict(json.loads(ws.recv(timeout=timeout)))


def close_code(url: str) -> int | None:
    """The close code of a socket the server refuses (None: it stayed open)."""
    with connect(url, open_timeout=30) as ws:
        try:
            ws.recv(timeout=30)
        except ConnectionClosed as e:
            return e.rcvd.code if e.rcvd else None
        except TimeoutError:
            return None
    return None


def submit(api: Api, user: UserCtx, project: dict[str, Any], testbench: str = "tb/hello_tb.v",
           simulator: str = "icarus") -> int:
    reply = api.post(f"/api/v1/projects/{project['id']}/jobs", token=user.token, json_body={
        "job_type": "simulation", "config": {"testbench": testbench, "simulator": simulator}})
    assert reply.status == 201, reply.body
    return int(reply.json["id"])


@pytest.fixture(scope="module")
def projects(api: Api, owner: UserCtx, editor: UserCtx, viewer: UserCtx,
             idle_queue: Queues) -> dict[str, dict[str, Any]]:
    made = {}
    for visibility in ("private", "public"):
        project = make_shared_project(api, owner, visibility, editor, viewer, "tb/hello_tb.v", TB)
        made[visibility] = {**project, "job_id": submit(api, owner, project)}
    return made


MATRIX = {  # role -> (private, public): None = connected, else the close code
    "owner": (None, None), "editor": (None, None), "viewer": (None, None),
    "stranger": (4003, None), "anonymous": (4001, None),
}


@pytest.mark.parametrize("visibility", ["private", "public"])
@pytest.mark.parametrize("role", list(MATRIX))
def test_who_may_follow_a_job(live_server: str, pusher: str, projects: dict[str, Any],
                              owner: UserCtx, editor: UserCtx, viewer: UserCtx,
                              stranger: UserCtx, role: str, visibility: str) -> None:
    users = {"owner": owner, "editor": editor, "viewer": viewer, "stranger": stranger}
    project = projects[visibility]
    token = users[role].token if role in users else None
    expected = MATRIX[role][visibility == "public"]
    url = socket_url(live_server, project["job_id"], token)
    if expected is not None:
        # THEN a caller who may not read the job is refused with its close code
        assert close_code(url) == expected
        return
    # THEN a reader is greeted with the job's current state
    with connect(url, open_timeout=30) as ws:
        hello = receive(ws)
        assert hello["type"] == "connected", hello
        assert hello["data"]["job_id"] == project["job_id"]
        assert hello["data"]["status"] == "pending"
        assert hello["timestamp"]


def test_refusals_have_upstreams_close_codes(live_server: str, pusher: str,
                                             projects: dict[str, Any], owner: UserCtx) -> None:
    job_id = projects["private"]["job_id"]
    # a token that does not verify, and an expired-looking garbage one
    assert close_code(socket_url(live_server, job_id, owner.token[:-4] + "AAAA")) == 4001
    assert close_code(socket_url(live_server, job_id, "not-a-jwt")) == 4001
    # a job that does not exist (well-formed id, and not an id at all)
    assert close_code(socket_url(live_server, "123", owner.token)) == 4004
    assert close_code(socket_url(live_server, "01M8MTANVZ45A9T9XN58YVX34Y", owner.token)) == 4004
    # another path under the prefix is no route: the handshake itself is refused
    with pytest.raises(InvalidStatus):
        connect(live_server.replace("http", "ws") + "/api/v1/ws/jobs/x/y/updates",
                open_timeout=30)


def test_ping_is_answered_with_pong(live_server: str, pusher: str, projects: dict[str, Any],
                                    viewer: UserCtx) -> None:
    url = socket_url(live_server, projects["private"]["job_id"], viewer.token)
    with connect(url, open_timeout=30) as ws:
        assert receive(ws)["type"] == "connected"
        # pong goes through the Management API, whichever worker the post lands on
        for _ in range(4):
            ws.send("ping")
            assert receive(ws)["type"] == "pong"


def test_cancelling_a_pending_job_is_pushed(api: Api, live_server: str, pusher: str,
                                            owner: UserCtx, viewer: UserCtx,
                                            idle_queue: Queues) -> None:
    # GIVEN a viewer following a pending job
    project = make_project(api, owner)
    add_member(api, owner, project["id"], viewer, "viewer")
    make_file(api, owner, project["id"], "tb/hello_tb.v", TB)
    job_id = submit(api, owner, project)
    with connect(socket_url(live_server, job_id, viewer.token), open_timeout=30) as ws:
        assert receive(ws)["data"]["status"] == "pending"
        # WHEN the owner cancels it through the API
        assert api.delete(f"/api/v1/projects/{project['id']}/jobs/{job_id}",
                          token=owner.token).status == 200
        # THEN the socket is told the new status, then that the job is complete
        status = receive(ws)
        assert (status["type"], status["data"]["status"]) == ("status", "cancelled")
        done = receive(ws)
        assert (done["type"], done["data"]["status"]) == ("complete", "cancelled")


def test_deleting_the_project_closes_its_jobs_sockets(api: Api, live_server: str, pusher: str,
                                                      owner: UserCtx, idle_queue: Queues) -> None:
    project = make_project(api, owner)
    make_file(api, owner, project["id"], "tb/hello_tb.v", TB)
    job_id = submit(api, owner, project)
    with connect(socket_url(live_server, job_id, owner.token), open_timeout=30) as ws:
        assert receive(ws)["type"] == "connected"
        # WHEN the project (and with it the job) is deleted
        assert api.delete(f"/api/v1/projects/{project['id']}", token=owner.token).status == 204
        # THEN the socket is told, and closed by the server
        told = receive(ws)
        assert (told["type"], told["data"]["error_message"]) == ("error", "the job was deleted")
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=60)
    # AND a new socket for it is refused as a job that does not exist
    assert close_code(socket_url(live_server, job_id, owner.token)) == 4004


@pytest.mark.slow
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_a_running_simulation_is_pushed_and_a_reconnect_replays_it(
        api: Api, live_server: str, pusher: str, owner: UserCtx, viewer: UserCtx,
        tmp_path: Path, simulator: str) -> None:
    from tests.runner.test_jobs_e2e import RunnerProcess

    queues = make_queues(max_receives=3, visibility=30)
    with api_queue(queues.url):
        project = make_project(api, owner)
        add_member(api, owner, project["id"], viewer, "viewer")
        make_file(api, owner, project["id"], "tb/hello_tb.v", TB)
        job_id = submit(api, owner, project, simulator=simulator)
    # GIVEN a viewer following the job before any runner picked it up
    with connect(socket_url(live_server, job_id, viewer.token), open_timeout=30) as ws:
        hello = receive(ws)
        assert (hello["type"], hello["data"]["status"]) == ("connected", "pending")
        # WHEN a runner runs it
        runner = RunnerProcess(queues, tmp_path / "runner.log")
        try:
            seen: list[dict[str, Any]] = []
            while not seen or seen[-1]["type"] != "complete":
                seen.append(receive(ws, timeout=300))
        finally:
            assert runner.stop() == 0, runner.output()[-2000:]
    # THEN it heard running, then the log as it grew, then completed
    statuses = [m["data"]["status"] for m in seen if m["type"] == "status"]
    assert statuses[0] == "running" and statuses[-1] == "completed", seen
    assert seen[-1]["data"]["status"] == "completed"
    pieces = [m["data"] for m in seen if m["type"] == "log"]
    assert pieces and pieces[0]["offset"] == 0
    assert all(a["next_offset"] == b["offset"] for a, b in zip(pieces, pieces[1:], strict=False))
    pushed = "".join(p["log_line"] for p in pieces)
    logs = api.get(f"/api/v1/projects/{project['id']}/jobs/{job_id}/logs", token=viewer.token)
    assert pushed == logs.json["logs"]
    assert "tick 4" in pushed and "done" in pushed
    # AND a client that reconnects gets the state, the whole log again, and complete
    with connect(socket_url(live_server, job_id, viewer.token), open_timeout=30) as ws:
        again = [receive(ws)]
        while again[-1]["type"] != "complete":
            again.append(receive(ws))
    assert again[0]["type"] == "connected" and again[0]["data"]["status"] == "completed"
    assert "".join(m["data"]["log_line"] for m in again if m["type"] == "log") == pushed
    # AND one that says where it stopped gets only the rest
    half = len(pushed.encode()) // 2
    with connect(socket_url(live_server, job_id, viewer.token, offset=str(half)),
                 open_timeout=30) as ws:
        rest = [receive(ws)]
        while rest[-1]["type"] != "complete":
            rest.append(receive(ws))
    assert rest[0]["data"]["log_offset"] == half
    assert "".join(m["data"]["log_line"] for m in rest if m["type"] == "log").encode() == \
        pushed.encode()[half:]


def test_the_management_api_reaches_a_socket_through_any_worker(
        api: Api, live_server: str, pusher: str, projects: dict[str, Any], owner: UserCtx) -> None:
    import boto3

    from chalicelib.models.live import WsConnection, job_key
    from devstack.sockets import socket_dir

    project = projects["private"]
    port = int(live_server.rsplit(":", 1)[1])
    with connect(socket_url(live_server, project["job_id"], owner.token), open_timeout=30) as ws:
        assert receive(ws)["type"] == "connected"
        # GIVEN the socket's id, as the pusher finds it, and the worker that does not hold it
        ids = [c.connection_id for c in WsConnection.by_job.query(
            job_key(project["id"], project["job_id"]))]
        mine = next(i for i in ids if WsConnection.get(i).user_id == owner.id)
        holder = mine.split("-", 1)[0]
        others = [p for p in socket_dir(port).glob("*.sock") if p.stem != holder]
        assert others, "the live server runs two workers"
        # WHEN a post for it arrives at the other worker
        body = json.dumps({"type": "status", "data": {"status": "hello"}}).encode()
        raw = _post_over_unix(others[0], f"/@connections/{mine}", body)
        # THEN it was forwarded to the socket
        assert raw.startswith(b"HTTP/1.1 200"), raw[:200]
        assert receive(ws)["data"]["status"] == "hello"
        # AND boto3's Management API client works against the stand-in, Gone included
        management = boto3.client("apigatewaymanagementapi", endpoint_url=live_server)
        management.post_to_connection(ConnectionId=mine, Data=b'{"type": "pong"}')
        assert receive(ws)["type"] == "pong"
        with pytest.raises(management.exceptions.GoneException):
            management.post_to_connection(ConnectionId=f"{holder}-nosuchsocket", Data=b"{}")
    # AND once closed, its record is gone and posts to it are Gone
    from tests.jobs_support import wait_for

    wait_for(lambda: WsConnection.count(mine) == 0, timeout=30, what="$disconnect")
    with pytest.raises(management.exceptions.GoneException):
        management.post_to_connection(ConnectionId=mine, Data=b"{}")


def _post_over_unix(path: Path, target: str, body: bytes) -> bytes:
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(path))
        sock.sendall(f"POST {target} HTTP/1.1\r\nHost: local\r\nContent-Length: {len(body)}\r\n"
                     "Connection: close\r\n\r\n".encode() + body)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)
