"""Drive the real a6hub web client in headless Chromium against our API (issue 8, "what must be shown").

The client is upstream's Next.js frontend (`adonairc/a6hub`, folder `frontend/`), built and started
by hand outside this repository (its `NEXT_PUBLIC_API_URL` is fixed at build time, so it must have
been built against the `--api-url` given here). This module only drives it, as a person would:

    register -> create a project -> open it -> create, edit and save files -> the modules panel
    lists their modules -> run a simulation with Verilator and with Icarus, see each complete and
    read its log -> settings save -> a forum topic and a reply -> the Build page: an ASIC PDK is
    refused with the API's 422, an FPGA preset builds a blinky to a bitstream

and prints one line per step, `PASS <step>: <what it saw>` or `FAIL <step>: <what it saw>`, then
the client bugs it probed (`BUG-CONFIRMED` / `BUG-NOT-SEEN`), every API answer >= 400 and every
request the browser could not complete (CORS), and a closing `N passed, N failed` line.

Where the frontend has a bug of its own (stale closures on the simulation and settings pages, the
toolbar that vanishes after a tab change) the driver says so and does what a person would do next
(click again, reload the page); it never changes what the client sends.

Usage (`make client-e2e`): `python -m e2e.client --client-url URL --api-url URL`; screenshots go to
`$CLIENT_E2E_SCREENSHOTS` (default `.local/client-e2e`). Needs `requirements-e2e.txt` and a
Chromium (`--chromium`, default `$CHROMIUM` or `/usr/bin/chromium`). Exit status 0 when every step
passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:  # the browser package is only needed to run, not to import (tests/test_client_e2e.py)
    from playwright.sync_api import Page, Request, Response

UI_TIMEOUT_MS = 20_000
EDITOR_TIMEOUT_MS = 90_000  # Monaco's first load is ~4 MB of script from public/
SIM_TIMEOUT_S = 300.0
SIM_EXPECTED = "E2E-RESULT count=10"

COUNTER_V = """\
// 4-bit counter with synchronous reset (written by the e2e driver)
module counter #(parameter WIDTH = 4) (
  input  wire             clk,
  input  wire             rst,
  output reg  [WIDTH-1:0] count
);
  always @(posedge clk) begin
    if (rst) count <= 0;
    else     count <= count + 1'b1;
  end
endmodule
"""

# Ten rising edges after reset (15 ns .. 105 ns), so both simulators must print count=10.
TESTBENCH_V = """\
`timescale 1ns/1ps
module testbench;
  reg clk = 0;
  reg rst = 1;
  wire [3:0] count;
  counter #(.WIDTH(4)) dut (.clk(clk), .rst(rst), .count(count));
  always #5 clk = ~clk;
  initial begin
    #12 rst = 0;
    #100;
    $display("E2E-RESULT count=%0d", count);
    $finish;
  end
endmodule
"""

FILES = {"counter.v": COUNTER_V, "testbench.v": TESTBENCH_V}

BUILD_TIMEOUT_S = 600.0
BUILD_PAGE_POLL_S = 20.0  # the build page polls for 15 s after Start Build, then waits on its WebSocket
BUILD_PRESET = "ice40-up5k-sg48"  # GET /api/v1/builds/presets: one of this deployment's FPGA targets

BLINKY_V = """\
// LED blinker for the iCEBreaker's 12 MHz clock (written by the e2e driver)
module blinky (input wire clk, output wire led);
  reg [23:0] counter = 0;
  always @(posedge clk) counter <= counter + 1'b1;
  assign led = counter[23];
endmodule
"""

# iCEBreaker (iCE40UP5K-SG48): 12 MHz oscillator on pin 35, LED on pin 39
BLINKY_PCF = "set_io clk 35\nset_io led 39\n"
MODULES = ("counter", "testbench")


class StepFailed(Exception):
    """A step did not see what it needed; the message says what it saw instead."""


@dataclass
class ApiEvent:
    """One request the page made to the API that answered >= 400 or never completed."""

    method: str
    url: str
    status: int | None
    request_body: str | None
    response_body: str

    def line(self) -> str:
        status = "FAILED (no response: CORS or network)" if self.status is None else str(self.status)
        sent = f" body={self.request_body[:300]}" if self.request_body else ""
        return f"{self.method} {self.url} -> {status} {self.response_body[:300]}{sent}"


@dataclass
class Run:
    """What the driver knows while it runs: URLs, the page, state shared by steps, findings."""

    client_url: str
    api_url: str
    shots: Path
    page: Any = None
    state: dict[str, Any] = field(default_factory=dict)
    results: list[tuple[str, str, str]] = field(default_factory=list)
    bugs: list[tuple[str, bool, str]] = field(default_factory=list)
    api_events: list[ApiEvent] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    offsite: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.client_url.rstrip("/") + path

    def bug(self, name: str, seen: bool, detail: str) -> None:
        self.bugs.append((name, seen, detail))

    def need(self, key: str) -> Any:
        if key not in self.state:
            raise StepFailed(f"not attempted: an earlier step did not provide {key}")
        return self.state[key]


# --------------------------------------------------------------------------- helpers


def ws_url(api_url: str, job_id: int, token: str) -> str:
    """The job-updates URL exactly as the client's `useJobWebSocket` builds it from its API URL."""
    host = re.sub(r"^https?://", "", api_url.rstrip("/"))
    scheme = "wss:" if api_url.startswith("https:") else "ws:"
    return f"{scheme}//{host}/api/v1/ws/jobs/{job_id}/updates?token={token}"


def is_local(host: str) -> bool:
    """A loopback host: everything the client loads must come from this machine."""
    return host in {"localhost", "::1"} or host.startswith("127.")


def summary_line(results: list[tuple[str, str, str]]) -> str:
    """`N passed, N failed` over (verdict, step, saw) rows."""
    passed = sum(1 for verdict, _, _ in results if verdict == "PASS")
    return f"{passed} passed, {len(results) - passed} failed"


def api_get(run: Run, path: str) -> Any:
    """GET on our API with the client's own token (the driver's cross-check of what was stored)."""
    import requests

    token = run.page.evaluate("localStorage.getItem('token')")
    response = requests.get(run.api_url.rstrip("/") + path, timeout=30,
                            headers={"Authorization": f"Bearer {token}"})
    if response.status_code != 200:
        raise StepFailed(f"GET {path} -> {response.status_code} {response.text[:200]}")
    return response.json()


def api_post(run: Run, path: str, body: dict[str, Any]) -> Any:
    """POST on our API with the client's own token (for set-up the UI path would make long)."""
    import requests

    token = run.page.evaluate("localStorage.getItem('token')")
    response = requests.post(run.api_url.rstrip("/") + path, json=body, timeout=30,
                             headers={"Authorization": f"Bearer {token}"})
    if response.status_code not in (200, 201):
        raise StepFailed(f"POST {path} -> {response.status_code} {response.text[:200]}")
    return response.json()


def toasts(page: Page) -> str:
    """The toast messages on screen now (react-hot-toast renders them with role=status)."""
    texts = [t.strip() for t in page.locator("[role=status]").all_inner_texts() if t.strip()]
    return "; ".join(texts) or "no toast"


def newest_toast(page: Page) -> str:
    texts = [t.strip() for t in page.locator("[role=status]").all_inner_texts() if t.strip()]
    return texts[0] if texts else "no toast"


def shoot(run: Run, name: str) -> None:
    index = len(list(run.shots.glob("*.png"))) + 1
    run.page.screenshot(path=str(run.shots / f"{index:02d}-{name}.png"))


def watch(run: Run, page: Page) -> None:
    """Record API answers >= 400, requests that never completed, and console errors."""
    api = run.api_url.rstrip("/")

    def on_response(response: Response) -> None:
        if response.url.startswith(api) and response.status >= 400:
            try:
                body = response.text()
            except Exception:  # noqa: BLE001 - the body may be gone after a navigation
                body = "<body unavailable>"
            run.api_events.append(ApiEvent(response.request.method, response.url, response.status,
                                           response.request.post_data, body))

    def on_failed(request: Request) -> None:
        # ERR_ABORTED: the page navigated away mid-request (the client's own doing), not CORS
        if request.url.startswith(api) and "ERR_ABORTED" not in (request.failure or ""):
            run.api_events.append(ApiEvent(request.method, request.url, None, request.post_data,
                                           request.failure or ""))

    def on_request(request: Request) -> None:
        host = urlsplit(request.url).hostname or ""
        if request.url.startswith(("http:", "https:", "ws:", "wss:")) and not is_local(host):
            run.offsite.append(request.url)

    page.on("request", on_request)
    page.on("response", on_response)
    page.on("requestfailed", on_failed)
    page.on("console", lambda msg: run.console_errors.append(msg.text) if msg.type == "error" else None)


def set_editor_text(page: Page, text: str) -> None:
    """Replace the Monaco editor's text through Monaco's own model (fires the client's onChange)."""
    page.locator(".monaco-editor").first.wait_for(timeout=EDITOR_TIMEOUT_MS)
    page.wait_for_function("() => window.monaco && window.monaco.editor.getModels().length > 0",
                           timeout=EDITOR_TIMEOUT_MS)
    page.evaluate("""(text) => {
        const editors = window.monaco.editor.getEditors ? window.monaco.editor.getEditors() : [];
        const model = editors.length ? editors[0].getModel() : window.monaco.editor.getModels()[0];
        model.setValue(text);
    }""", text)


def toolbar_button(run: Run, name: str, what: str) -> Any:
    """The toolbar button `name` after a client-side tab change; reload if the client dropped it."""
    page = run.page
    button = page.get_by_role("button", name=name)
    try:
        button.wait_for(timeout=5_000)
        run.bug(f"toolbar vanishes after a tab change ({what})", False, f"'{name}' shown after the tab click")
    except Exception:  # noqa: BLE001 - Playwright's TimeoutError; the client bug is what we probe
        run.bug(f"toolbar vanishes after a tab change ({what})", True,
                f"no '{name}' button after clicking the {what} tab; it appears only after a reload")
        page.reload()
        button.wait_for(timeout=UI_TIMEOUT_MS)
    return button


# --------------------------------------------------------------------------- steps


def step_register(run: Run) -> str:
    page = run.page
    suffix = uuid.uuid4().hex[:8]
    username, email, password = f"e2e{suffix}", f"e2e{suffix}@example.com", "correct-horse-42"
    page.goto(run.url("/auth/register"))
    page.fill("#username", username)
    page.fill("#email", email)
    page.fill("#password", password)
    page.get_by_role("button", name="Create Account").click()
    try:
        page.wait_for_url("**/dashboard", timeout=UI_TIMEOUT_MS)
    except Exception as exc:  # noqa: BLE001
        raise StepFailed(f"stayed on {page.url}; toasts: {toasts(page)}") from exc
    token = page.evaluate("localStorage.getItem('token')")
    if not token:
        raise StepFailed("on /dashboard but no token in localStorage")
    me = api_get(run, "/api/v1/auth/me")
    run.state.update(username=username, email=email, password=password)
    return f"landed on /dashboard, token stored, /auth/me id={me.get('id')!r} username={me.get('username')}"


def step_create_project(run: Run) -> str:
    page = run.page
    name = f"e2e-counter-{uuid.uuid4().hex[:6]}"
    page.goto(run.url("/projects/new"))
    page.fill("#name", name)
    page.fill("#description", "made by the e2e driver")
    with page.expect_response(lambda r: r.request.method == "POST"
                              and r.url.rstrip("/").endswith("/api/v1/projects")) as created:
        page.get_by_role("button", name="Create Project").click()
    response = created.value
    if response.status != 201 and response.status != 200:
        raise StepFailed(f"POST /projects -> {response.status} {response.text()[:200]}")
    project_id = response.json().get("id")
    page.wait_for_url(re.compile(r".*/projects/(?!new$)[^/]+$"), timeout=UI_TIMEOUT_MS)
    run.state.update(project_name=name, project_id=project_id)
    kind = type(project_id).__name__
    return f"POST /projects -> {response.status}, id={project_id!r} ({kind}); now at {page.url}"


def step_open_project(run: Run) -> str:
    page = run.page
    name = run.need("project_name")
    project_id = run.need("project_id")
    if not page.url.endswith(f"/projects/{project_id}"):
        raise StepFailed(f"client navigated to {page.url}, not /projects/{project_id}")
    try:
        page.get_by_role("heading", name=name).wait_for(timeout=UI_TIMEOUT_MS)
    except Exception as exc:  # noqa: BLE001
        raise StepFailed(f"no project heading; toasts: {toasts(page)}") from exc
    page.get_by_role("heading", name="Files").wait_for(timeout=UI_TIMEOUT_MS)
    run.state["project_open"] = True
    return f"heading '{name}', tabs Design/Simulation/Build/Settings and the Files panel shown"


def create_and_save(run: Run, filename: str, text: str) -> str:
    page = run.page
    project_id = run.need("project_id")
    page.get_by_title("New file").first.click()
    page.get_by_placeholder("filename.v").fill(filename)
    with page.expect_response(lambda r: r.request.method == "POST"
                              and r.url.endswith(f"/projects/{project_id}/files")) as created:
        page.get_by_role("button", name="Create", exact=True).click()
    if created.value.status >= 300:
        raise StepFailed(f"POST files {filename} -> {created.value.status} {created.value.text()[:200]}")
    file_id = created.value.json()["id"]
    page.get_by_text(f"(src/{filename})").wait_for(timeout=UI_TIMEOUT_MS)
    set_editor_text(page, text)
    page.get_by_text(f"{text.count(chr(10)) + 1} lines").wait_for(timeout=UI_TIMEOUT_MS)
    with page.expect_response(lambda r: r.request.method == "PUT"
                              and r.url.endswith(f"/files/{file_id}")) as saved:
        page.get_by_role("button", name="Save", exact=True).click()
    if saved.value.status != 200:
        raise StepFailed(f"PUT file {filename} -> {saved.value.status} {saved.value.text()[:200]}")
    stored = api_get(run, f"/api/v1/projects/{project_id}/files/{file_id}")
    if stored.get("content") != text:
        got = repr(stored.get("content"))[:120]
        raise StepFailed(f"{filename}: stored content differs from the editor's: {got}")
    run.state.setdefault("file_ids", {})[filename] = file_id
    return f"{filename} (id {file_id!r}) at src/{filename}, edited, saved (PUT 200, {newest_toast(page)!r})"


def step_files(run: Run) -> str:
    run.need("project_open")
    seen = [create_and_save(run, name, text) for name, text in FILES.items()]
    shoot(run, "file-saved")
    return "; ".join(seen) + "; content read back from the API is byte-identical"


def module_names(page: Page) -> list[str]:
    panel = page.locator("span.font-mono.font-semibold")
    return sorted(set(panel.all_inner_texts()))


def wait_modules(page: Page, timeout_s: float) -> list[str]:
    deadline = time.monotonic() + timeout_s
    names = module_names(page)
    while not set(MODULES) <= set(names) and time.monotonic() < deadline:
        page.wait_for_timeout(500)
        names = module_names(page)
    return names


def step_modules(run: Run) -> str:
    page = run.page
    run.need("file_ids")
    page.reload()
    page.get_by_text("Design Modules").first.wait_for(timeout=UI_TIMEOUT_MS)
    names = wait_modules(page, 10)
    how = "after a page reload (kept current on save)"
    if not set(MODULES) <= set(names):
        page.get_by_title("Re-parse all files").first.click()
        names = wait_modules(page, 20)
        how = "only after 'Re-parse all files'"
    shoot(run, "modules")
    if not set(MODULES) <= set(names):
        raise StepFailed(f"panel lists {names or 'no modules'}; toasts: {toasts(page)}")
    row = page.locator("div.p-3.cursor-pointer", has=page.locator("span.font-mono", has_text="counter")).first
    row_text = " ".join(row.inner_text().split())
    row.click()  # the client opens the module's file at its start line
    page.get_by_text("(src/counter.v)").wait_for(timeout=UI_TIMEOUT_MS)
    return f"panel lists {names} {how}; counter's row: '{row_text[:120]}'; clicking it opened src/counter.v"


def open_simulation_tab(run: Run) -> Any:
    page = run.page
    page.get_by_role("link", name="Simulation", exact=True).click()
    page.wait_for_url("**/simulation", timeout=UI_TIMEOUT_MS)
    page.get_by_text("Simulator Configuration").wait_for(timeout=UI_TIMEOUT_MS)
    return toolbar_button(run, "Run Simulation", "Simulation")


@dataclass
class Submitted:
    """One click on Run Simulation: what the client sent and what the API answered."""

    config: dict[str, Any]
    status: int
    body: str

    def job_id(self) -> int:
        if self.status >= 300:
            raise StepFailed(f"POST /jobs {json.dumps(self.config)} -> {self.status} {self.body[:300]}")
        return int(json.loads(self.body)["id"])


def submit_simulation(run: Run) -> Submitted:
    """Click the toolbar's Run Simulation and wait until the button is back."""
    page = run.page
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/jobs")) as posted:
        page.get_by_role("button", name="Run Simulation").click()
    response = posted.value
    sent = json.loads(response.request.post_data or "{}")
    page.get_by_role("button", name="Run Simulation").wait_for(timeout=UI_TIMEOUT_MS)
    return Submitted(sent.get("config") or {}, response.status, response.text())


def wait_job_done(run: Run, job_id: int) -> str:
    """Reload the simulation page (it does not poll) until the job's badge is final."""
    page = run.page
    row = page.locator("div.border.p-4", has_text=f"Simulation #{job_id}")
    deadline = time.monotonic() + SIM_TIMEOUT_S
    while True:
        row.first.wait_for(timeout=UI_TIMEOUT_MS)
        text = row.first.inner_text()
        for status in ("Completed", "Failed", "Cancelled"):
            if status in text:
                return status
        if time.monotonic() > deadline:
            raise StepFailed(f"job {job_id} still '{' '.join(text.split())}' after {SIM_TIMEOUT_S:.0f} s")
        page.wait_for_timeout(3_000)
        page.reload()


def read_log(run: Run, job_id: int) -> str:
    page = run.page
    row = page.locator("div.border.p-4", has_text=f"Simulation #{job_id}").first
    row.get_by_role("button", name="View Logs").click()
    page.get_by_text(f"Simulation Logs - Job #{job_id}").wait_for(timeout=UI_TIMEOUT_MS)
    return page.locator("pre").first.inner_text()


def finish_simulation(run: Run, simulator: str, job_id: int) -> str:
    status = wait_job_done(run, job_id)
    log = read_log(run, job_id)
    shoot(run, f"sim-{simulator}-log")
    run.page.get_by_role("button", name="Close").click()
    lines = [line for line in log.splitlines() if line.strip()]
    if status != "Completed" or SIM_EXPECTED not in log:
        raise StepFailed(f"job {job_id} {status}; log ({len(lines)} lines): {' | '.join(lines[-6:])[:400]}")
    return f"job {job_id} Completed; log has {len(lines)} lines incl. '{SIM_EXPECTED}'"


def step_sim_verilator(run: Run) -> str:
    run.need("file_ids")
    open_simulation_tab(run)
    run.page.locator("select").first.select_option("verilator")
    sent = submit_simulation(run)
    if sent.config.get("simulator") != "verilator":
        raise StepFailed(f"client sent {sent.config}")
    job_id = sent.job_id()
    run.state["last_job"] = job_id
    return f"sent {json.dumps(sent.config)}; " + finish_simulation(run, "verilator", job_id)


def step_sim_icarus(run: Run) -> str:
    page = run.page
    run.need("file_ids")
    if not page.url.endswith("/simulation"):
        open_simulation_tab(run)
    page.locator("select").first.select_option("icarus")
    page.locator("select").nth(1).select_option("testbench.v")
    sent = submit_simulation(run)
    stale = sent.config.get("simulator") != "icarus"
    run.bug("stale closure on the simulation page", stale,
            f"with Icarus selected the toolbar button sent {json.dumps(sent.config)} -> {sent.status}")
    extra = ""
    if stale:  # the click re-rendered the button with the current config: a person clicks again
        extra = f"first click sent the stale {sent.config.get('simulator')} config ({sent.status}); "
        sent = submit_simulation(run)
        if sent.config.get("simulator") != "icarus":
            raise StepFailed(extra + f"second click sent {sent.config}")
    job_id = sent.job_id()
    run.state["last_job"] = job_id
    return extra + f"sent {json.dumps(sent.config)}; " + finish_simulation(run, "icarus", job_id)


WS_PROBE = """async ([url, waitMs]) => new Promise((resolve) => {
    const got = [];
    const ws = new WebSocket(url);
    const done = (why) => { try { ws.close(); } catch (e) {} resolve({why, got}); };
    ws.onmessage = (e) => { got.push(e.data); if (JSON.parse(e.data).type === 'complete') done('complete'); };
    ws.onclose = (e) => resolve({why: 'closed ' + e.code + ' ' + e.reason, got});
    ws.onerror = () => resolve({why: 'error', got});
    setTimeout(() => done('timeout'), waitMs);
})"""


def step_websocket(run: Run) -> str:
    """The client's own socket URL, opened from the client's origin with its token, for a finished job."""
    page = run.page
    job_id = run.need("last_job")
    token = page.evaluate("localStorage.getItem('token')")
    result = page.evaluate(WS_PROBE, [ws_url(run.api_url, job_id, token), 15_000])
    types = [json.loads(m).get("type") for m in result["got"]]
    if not types or types[0] != "connected" or "complete" not in types:
        raise StepFailed(f"ended '{result['why']}' after messages {types}: {result['got'][:3]}")
    last = json.loads(result["got"][-1])
    return f"messages {types}; last {json.dumps(last)[:200]}"


def step_settings(run: Run) -> str:
    page = run.page
    project_id = run.need("project_id")
    run.need("project_open")
    page.get_by_role("link", name="Settings", exact=True).click()
    page.wait_for_url("**/settings", timeout=UI_TIMEOUT_MS)
    button = toolbar_button(run, "Save Changes", "Settings")
    page.get_by_placeholder("Project description...").fill("saved from settings by the e2e driver")
    attempts = []
    for _ in range(2):
        with page.expect_response(lambda r: r.request.method == "PUT"
                                  and r.url.endswith(f"/projects/{project_id}")) as put:
            button.click()
        sent = json.loads(put.value.request.post_data or "{}")
        attempts.append(f"sent {json.dumps(sent)} -> {put.value.status} {put.value.text()[:160]}")
        if sent.get("description") == "saved from settings by the e2e driver":
            break
        page.get_by_role("button", name="Save Changes").wait_for(timeout=UI_TIMEOUT_MS)
    run.bug("stale closure on the settings page", len(attempts) > 1, attempts[0])
    page.get_by_role("button", name="Save Changes").wait_for(timeout=UI_TIMEOUT_MS)
    shoot(run, "settings")
    stored = api_get(run, f"/api/v1/projects/{project_id}")
    if stored.get("description") != "saved from settings by the e2e driver":
        raise StepFailed(" / ".join(attempts) + f"; stored description {stored.get('description')!r}")
    if stored.get("git_branch") != "main":  # upstream's project responses carry it; the client sends it back
        branch = stored.get("git_branch")
        raise StepFailed(" / ".join(attempts) + f"; saved, but the project's git_branch is {branch!r}")
    return " / ".join(attempts) + f"; stored git_branch={stored.get('git_branch')!r}"


def step_forum(run: Run) -> str:
    page = run.page
    page.goto(run.url("/forum"))
    category = page.locator("a[href^='/forum/']").first
    try:
        category.wait_for(timeout=UI_TIMEOUT_MS)
    except Exception as exc:  # noqa: BLE001
        raise StepFailed(f"no category listed; toasts: {toasts(page)}") from exc
    category_name = " ".join(category.inner_text().split())[:60]
    category.click()
    page.get_by_role("heading", name="Topics").wait_for(timeout=UI_TIMEOUT_MS)
    page.get_by_role("button", name="New Topic").first.click()
    title = f"e2e topic {uuid.uuid4().hex[:6]}"
    page.fill("#title", title)
    page.fill("#content", "Does counter.v simulate the same on Icarus and Verilator?")
    page.get_by_role("button", name="Create Topic").click()
    try:
        page.wait_for_url(re.compile(r".*/forum/topic/\d+$"), timeout=UI_TIMEOUT_MS)
    except Exception as exc:  # noqa: BLE001
        raise StepFailed(f"stayed on {page.url}; toasts: {toasts(page)}") from exc
    page.get_by_role("heading", name=title).wait_for(timeout=UI_TIMEOUT_MS)
    reply = f"Yes: both print {SIM_EXPECTED}."
    page.get_by_placeholder("Write your reply...").fill(reply)
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/posts")) as posted:
        page.get_by_role("button", name="Post Reply").click()
    if posted.value.status >= 300:
        raise StepFailed(f"POST reply -> {posted.value.status} {posted.value.text()[:200]}")
    try:  # a rendered post, not the textarea that still holds the text
        page.locator("p.whitespace-pre-wrap", has_text=reply).wait_for(timeout=UI_TIMEOUT_MS)
    except Exception as exc:  # noqa: BLE001
        raise StepFailed(f"reply answered {posted.value.status} but is not listed; {toasts(page)}") from exc
    posts = page.locator("p.whitespace-pre-wrap").count()
    shoot(run, "forum")
    return (f"category '{category_name}', topic '{title}' at {page.url}; reply POST {posted.value.status}, "
            f"{posts} posts listed, the reply among them")


def step_build_page(run: Run) -> str:
    """A second project holding a blinky and its .pcf (made through the API), opened on its Build tab."""
    page = run.page
    run.need("username")
    project = api_post(run, "/api/v1/projects", {"name": f"e2e-blinky-{uuid.uuid4().hex[:6]}",
                                                 "description": "FPGA build from the e2e driver"})
    project_id = project["id"]
    for name, text in (("blinky.v", BLINKY_V), ("blinky.pcf", BLINKY_PCF)):
        api_post(run, f"/api/v1/projects/{project_id}/files", {"filename": name, "content": text})
    page.goto(run.url(f"/projects/{project_id}"))
    page.get_by_role("heading", name=project["name"]).wait_for(timeout=UI_TIMEOUT_MS)
    page.get_by_role("link", name="Build", exact=True).click()
    page.wait_for_url("**/build", timeout=UI_TIMEOUT_MS)
    page.get_by_text("Quick Start Presets").wait_for(timeout=UI_TIMEOUT_MS)
    toolbar_button(run, "Start Build", "Build")
    page.locator("div.grid-cols-3 > button").first.wait_for(timeout=UI_TIMEOUT_MS)
    presets = page.locator("div.grid-cols-3 > button").all_inner_texts()
    options = page.locator("select").first.locator("option").all_inner_texts()
    run.state["build_project"] = project_id
    shoot(run, "build-page")
    names = [" ".join(p.split())[:40] for p in presets]
    return (f"project {project_id} with blinky.v + blinky.pcf; Build tab shows presets {names}; "
            f"top-module list {options}")


def submit_build(run: Run, want: Callable[[dict[str, Any]], bool], what: str) -> tuple[dict[str, Any], Any]:
    """Click Start Build; a second click if the page sent a stale form (a person clicks again)."""
    page = run.page
    project_id = run.need("build_project")
    attempts = []
    for _ in range(2):
        with page.expect_response(lambda r: r.request.method == "POST"
                                  and r.url.endswith(f"/builds/{project_id}/build")) as posted:
            page.get_by_role("button", name="Start Build").click()
        sent = (json.loads(posted.value.request.post_data or "{}").get("config") or {})
        attempts.append(sent)
        page.get_by_role("button", name="Start Build").wait_for(timeout=UI_TIMEOUT_MS)
        if want(sent):
            break
    run.bug(f"stale form on the build page ({what})", len(attempts) > 1,
            f"first click sent pdk={attempts[0].get('pdk')!r} design_name={attempts[0].get('design_name')!r}")
    if not want(attempts[-1]):
        raise StepFailed(f"Start Build sent {json.dumps(attempts[-1])[:300]} twice")
    return attempts[-1], posted.value


def step_build_asic(run: Run) -> str:
    page = run.page
    run.need("build_project")
    page.locator("select").nth(1).select_option("sky130A")
    sent, response = submit_build(run, lambda c: c.get("pdk") == "sky130A", "ASIC PDK")
    detail = response.json().get("detail", "") if response.status == 422 else ""
    if response.status != 422 or "sky130A" not in str(detail):
        raise StepFailed(f"pdk sky130A -> {response.status} {response.text()[:200]}")
    toast = page.locator("[role=status]", has_text="sky130A").first
    try:
        toast.wait_for(timeout=UI_TIMEOUT_MS)
    except Exception as exc:  # noqa: BLE001
        raise StepFailed(f"422 {detail!r} answered but the page shows: {toasts(page)}") from exc
    shown = " ".join(toast.inner_text().split())
    shoot(run, "build-asic-422")
    if "Build started" in toasts(page):
        raise StepFailed(f"the page said 'Build started' after a 422: {toasts(page)}")
    stored = api_get(run, f"/api/v1/projects/{run.need('build_project')}/jobs")
    if stored:
        raise StepFailed(f"422 answered, but the project has jobs: {json.dumps(stored)[:200]}")
    return f"sent pdk={sent.get('pdk')!r} -> 422, no job stored; toast '{shown[:200]}'"


def wait_build_shown(run: Run) -> str:
    """Wait for the sidebar's final state; press the page's Refresh once its own updates have stopped.

    After Start Build the page polls the status each second for 15 s and then relies on its job
    WebSocket; a person presses Refresh when neither has shown the end.
    """
    page = run.page
    started = time.monotonic()
    deadline = started + BUILD_TIMEOUT_S
    clicks = 0
    while True:
        for text in ("Build Complete", "Build Failed"):
            if page.get_by_text(text, exact=True).count():
                return f"'{text}' " + (f"after {clicks} clicks on Refresh" if clicks else "by itself")
        if time.monotonic() > deadline:
            raise StepFailed(f"no final build state on the page after {BUILD_TIMEOUT_S:.0f} s; "
                             f"toasts: {toasts(page)}")
        page.wait_for_timeout(3_000)
        refresh = page.get_by_title("Refresh logs")
        if time.monotonic() - started > BUILD_PAGE_POLL_S and refresh.count():
            refresh.first.click()
            clicks += 1


def step_build_fpga(run: Run) -> str:
    page = run.page
    project_id = run.need("build_project")
    presets = api_get(run, "/api/v1/builds/presets")
    label = presets[BUILD_PRESET]["name"]
    page.locator("div.grid-cols-3 > button", has_text=label).first.click()
    page.locator("[role=status]", has_text=f"Applied {label} preset").first.wait_for(timeout=UI_TIMEOUT_MS)
    page.locator("select").first.select_option("blinky")
    sent, response = submit_build(run, lambda c: c.get("pdk") == BUILD_PRESET
                                  and c.get("design_name") == "blinky", "FPGA preset")
    if response.status != 201:
        raise StepFailed(f"sent {json.dumps(sent)[:200]} -> {response.status} {response.text()[:300]}")
    job_id = int(response.json()["id"])
    shown = wait_build_shown(run)
    shoot(run, "build-done")
    job = api_get(run, f"/api/v1/projects/{project_id}/jobs/{job_id}")
    artifacts = [a.get("name") for a in job.get("artifacts") or []]
    status = api_get(run, f"/api/v1/builds/{project_id}/build/status")
    done = "'Build Complete'" in shown and job.get("status") == "completed"
    if not done or "bitstream.bin" not in artifacts:
        raise StepFailed(f"job {job_id}: page shows {shown}, API status {job.get('status')!r}, "
                         f"artifacts {artifacts}; error {status.get('error_message')!r}")
    steps = (status.get("progress_data") or {}).get("completed_steps")
    return (f"preset '{label}' applied, top 'blinky'; sent pdk={sent['pdk']!r} "
            f"clock_period={sent.get('clock_period')!r} -> 201 job {job_id}; "
            f"page shows {shown}; API: job completed, artifacts {artifacts}, completed_steps {steps}")


def probe_login_401(run: Run, browser: Any) -> None:
    """A wrong password: does the client's 401 interceptor reload the login page over the error toast?"""
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(run.url("/auth/login"))
        page.fill("#email", run.state.get("email", "nobody@example.com"))
        page.fill("#password", "wrong-password-1")
        page.evaluate("window.__e2e_same_document = true")
        with page.expect_response(lambda r: r.url.endswith("/api/v1/auth/login")) as answered:
            page.get_by_role("button", name="Sign In").click()
        status = answered.value.status
        page.wait_for_load_state("load")
        page.wait_for_timeout(2_000)
        reloaded = not page.evaluate("window.__e2e_same_document === true")
        run.bug("401 handler reloads the login page", reloaded,
                f"POST /auth/login -> {status}; document {'reloaded' if reloaded else 'kept'}; "
                f"toast now: {toasts(page)}")
    finally:
        context.close()


STEPS: list[tuple[str, Callable[[Run], str]]] = [
    ("register", step_register),
    ("create project", step_create_project),
    ("open project", step_open_project),
    ("create, edit and save files", step_files),
    ("modules panel", step_modules),
    ("simulation with Verilator", step_sim_verilator),
    ("simulation with Icarus", step_sim_icarus),
    ("live job updates (WebSocket)", step_websocket),
    ("settings save", step_settings),
    ("forum topic and reply", step_forum),
    ("build page", step_build_page),
    ("build with an ASIC PDK is refused", step_build_asic),
    ("FPGA build from a preset", step_build_fpga),
]


def run_step(run: Run, name: str, step: Callable[[Run], str]) -> None:
    try:
        saw = step(run)
        verdict = "PASS"
    except StepFailed as exc:
        saw, verdict = str(exc), "FAIL"
    except Exception as exc:  # noqa: BLE001 - a Playwright timeout etc.: report it as this step's failure
        saw, verdict = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}", "FAIL"
    if verdict == "FAIL":
        try:
            shoot(run, re.sub(r"\W+", "-", name) + "-FAIL")
        except Exception as exc:  # noqa: BLE001
            saw += f" (no screenshot: {type(exc).__name__})"
    run.results.append((verdict, name, saw))
    print(f"{verdict} {name}: {saw}", flush=True)


def report(run: Run) -> None:
    for name, seen, detail in run.bugs:
        print(f"{'BUG-CONFIRMED' if seen else 'BUG-NOT-SEEN'} {name}: {detail}")
    for url in dict.fromkeys(run.offsite):
        print(f"OFFSITE request (the client must load nothing from the network): {url[:200]}")
    for event in run.api_events:
        print(f"API {event.line()}")
    for text in dict.fromkeys(re.sub(r"token=[\w.-]+", "token=<jwt>", t) for t in run.console_errors):
        print(f"CONSOLE {text[:300]}")
    print(summary_line(run.results))


def drive(args: argparse.Namespace) -> int:
    from playwright.sync_api import sync_playwright

    run = Run(client_url=args.client_url, api_url=args.api_url, shots=Path(args.screenshots))
    run.shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, headless=True,
                                             args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1440, "height": 1000})
        context.set_default_timeout(UI_TIMEOUT_MS)
        run.page = context.new_page()
        watch(run, run.page)
        for name, step in STEPS:
            run_step(run, name, step)
        try:
            probe_login_401(run, browser)
        except Exception as exc:  # noqa: BLE001 - a probe must not hide the report
            why = f"not probed: {type(exc).__name__}: {exc}"
            run.bug("401 handler reloads the login page", False, why[:300])
        browser.close()
    report(run)
    return 0 if all(verdict == "PASS" for verdict, _, _ in run.results) else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m e2e.client", description=__doc__.splitlines()[0])
    parser.add_argument("--client-url", default=os.environ.get("CLIENT_URL", "http://127.0.0.1:3000"))
    parser.add_argument("--api-url", default=os.environ.get("API_URL", "http://127.0.0.1:8000"),
                        help="the API the client was built against (its NEXT_PUBLIC_API_URL)")
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM", "/usr/bin/chromium"))
    parser.add_argument("--screenshots",
                        default=os.environ.get("CLIENT_E2E_SCREENSHOTS", ".local/client-e2e"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point: drive every step, print the report; 0 when all passed."""
    return drive(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
