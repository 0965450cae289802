"""The web console (GET /console) in a real browser: Debian's Chromium driven by Playwright,
against the local stack, with data seeded through the public APIs only. Sign in (the token
in sessionStorage only), watch a task go from Pending to done in the live list without a
reload, its detail (progress, result, stdout/stderr, attempts) shown as text whatever the
function printed, functions (capabilities, pause), a job's output live, schedules with their
next runs, cells with their state, and the chart of tasks per minute.

Each page is photographed; TASKFN_CONSOLE_SCREENSHOTS=docs/console writes the pictures the
README shows (otherwise they go to a temporary directory)."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import time
import uuid
import zoneinfo
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from croniter import croniter

from .conftest import ROOT, Client

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")  # `make test` installs it (Playwright's download fails)
if not CHROMIUM.exists():  # pragma: no cover - `make test` installs it first
    pytest.skip("no /usr/bin/chromium: `make test` installs it", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

WAIT_MS = 60_000  # for a condition to hold; never asserted as a duration
VIEWPORT = {"width": 1280, "height": 860}
SLOW = """import time
def handler(event, context):
    for percent in (20, 50, 80):
        context.set_progress(percent)
        time.sleep(1.2)
    print("working on", event["body"])
    return {"hello": event["body"]}
"""
# What a hostile function answers and prints: markup that would run if it became HTML.
IMG = '<img src=x onerror="window.__xss = \'result\'">'
SCRIPT = "<script>window.__xss = 'stdout'</script>"
HOSTILE = f"""import sys
def handler(event, context):
    print({SCRIPT!r})
    print({IMG!r}, file=sys.stderr)
    return {{"statusCode": 200, "headers": {{"Content-Type": "text/html"}}, "body": {IMG!r}}}
"""
BROKEN = """def handler(event, context):
    raise ValueError("no luck this time")
"""
LINES = "sh -c 'for i in 1 2 3 4 5 6 7 8; do echo line-$i; sleep 1; done'"
SCHEDULES = (("*/15 * * * *", "Europe/Berlin", "every quarter hour"),
             ("0 9 * * 1-5", "America/New_York", "weekday mornings"))


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    chosen = os.environ.get("TASKFN_CONSOLE_SCREENSHOTS")
    folder = (ROOT / chosen) if chosen else tmp_path_factory.mktemp("console")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def owner(stack: Client) -> Client:
    """A user of its own, so that the pages show this module's data only."""
    answer = stack.request("POST", "/v1/tokens", {"user": f"console-{uuid.uuid4().hex[:8]}",
                                                  "scope": "user"})
    assert answer.status == 201, answer
    return stack.as_user(answer.json()["token"])


def function(owner: Client, name: str, source: str) -> str:
    answer = owner.request("POST", "/v1/function", {"name": name, "lang": "PY",
                                                   "source": source})
    assert answer.status == 201, answer
    return answer.json()["id"]


@pytest.fixture(scope="module")
def seeded(owner: Client) -> dict[str, str]:
    """What the pages show, made through the API as a user would."""
    ids = {"hello": function(owner, "hello", SLOW), "hostile": function(owner, "hostile", HOSTILE),
           "broken": function(owner, "broken", BROKEN)}
    for cron, zone, description in SCHEDULES:
        answer = owner.request("POST", "/v1/scheduled", {"functionId": ids["hello"], "cron": cron,
                                                       "timezone": zone,
                                                       "description": description})
        assert answer.status == 201, answer
    node = f"console-cell-{uuid.uuid4().hex[:6]}"
    answer = owner.request("POST", f"/v1/node/{node}", {"description": "a GPU box"})
    assert answer.status == 201, answer
    ids["node"], ids["cell_token"] = node, answer.json()["token"]
    return ids


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser, stack):
    """A fresh tab (its own sessionStorage); what the page's CSP refused fails the test, and
    so does a token in a URL, a request to another origin, a cookie or localStorage."""
    context = browser.new_context(viewport=VIEWPORT, base_url=stack.url)
    tab = context.new_page()
    refused: list[str] = []
    tab.on("console", lambda message: refused.append(message.text)
           if "Content Security Policy" in message.text else None)
    tab.on("pageerror", lambda error: refused.append(f"page error: {error}"))
    urls: list[str] = []
    tab.on("request", lambda request: urls.append(request.url))
    tab.on("websocket", lambda socket: urls.append(socket.url))
    try:
        yield tab
        assert context.cookies() == []
        if not tab.is_closed() and tab.url.startswith(stack.url):
            assert tab.evaluate("window.localStorage.length") == 0
    finally:
        context.close()
    assert refused == []
    ws = re.sub(r"^http", "ws", stack.url)  # the local WebSocket API: another port
    ws_host = urlsplit(ws).hostname
    assert [url for url in urls if "tfn_" in url] == []
    assert [url for url in urls if not url.startswith(stack.url + "/")
            and not (url.startswith("ws://") and urlsplit(url).hostname == ws_host)] == []


def sign_in(page, token: str) -> None:
    page.goto("/console")
    page.fill("#token", token)
    page.click("#signin button[type=submit]")
    expect(page.locator("body")).to_have_attribute("data-state", "signed-in")


def go(page, route: str) -> None:
    page.evaluate("route => { window.location.hash = route; }", route)


def wait_result(owner: Client, task_id: str) -> None:
    assert owner.wait_result(task_id).status != 404


# --- signing in ------------------------------------------------------------------------------


def test_sign_in_keeps_the_token_in_this_tab_only(page, browser, stack, owner, shots):
    page.goto("/console")
    expect(page.locator("#signin")).to_be_visible()
    page.screenshot(path=shots / "signin.png")
    page.fill("#token", "tfn_not-a-token-at-all")
    page.click("#signin button[type=submit]")
    expect(page.locator("#signin [role=alert]")).to_contain_text("unknown token")
    assert page.evaluate("window.sessionStorage.length") == 0
    sign_in(page, owner.token)
    expect(page.locator("#nav")).to_be_visible()
    assert page.evaluate("window.sessionStorage.getItem('taskfn.token')") == owner.token
    assert page.evaluate("window.localStorage.length") == 0
    assert page.evaluate("document.cookie") == ""
    # A reload of the tab keeps it; another tab's session does not have it.
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-state", "signed-in")
    other = browser.new_context(base_url=stack.url).new_page()
    other.goto("/console")
    expect(other.locator("#signin")).to_be_visible()
    other.context.close()
    page.click("#signout")
    expect(page.locator("#signin")).to_be_visible()
    assert page.evaluate("window.sessionStorage.length") == 0


def test_the_page_and_its_files_only_and_a_strict_policy(stack):
    anonymous = Client(stack.url)
    answer = anonymous.request("GET", "/console")
    assert answer.status == 200 and answer.headers["Content-Type"].startswith("text/html")
    policy = answer.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy
    assets = re.findall(r'(?:href|src)="(console/[^"]+)"', answer.body.decode())
    assert {"console/app.js", "console/console.css"} <= set(assets)
    for asset in assets:
        assert anonymous.request("GET", "/" + asset).status == 200, asset
    for attack in ("/console/..%2fconsole.py", "/console/..%2F..%2Ftemplate.yaml",
                   "/console/%2e%2e%2f%2e%2e%2fREADME.md", "/console/../template.yaml",
                   "/console/..", "/console/.%2e/console.py", "/console/index.html%00",
                   "/console/console.py", "/console/%252e%252e%252fconsole.py",
                   "/console/..\\console.py", "/console/static/app.js"):
        refused = anonymous.request("GET", attack)
        assert refused.status == 404, attack
        assert b"import" not in refused.body and b"Resources" not in refused.body, attack


# --- tasks -----------------------------------------------------------------------------------


def test_a_task_goes_from_pending_to_done_in_the_live_list_without_a_reload(
        page, owner, seeded, shots):
    sign_in(page, owner.token)
    go(page, "#/tasks")
    expect(page.locator("#tasks")).to_be_visible()
    page.evaluate("window.__sameDocument = 'yes'")
    # A task for a cell: Pending until the cell (the test, with the node's token) starts it.
    guid = f"console-{uuid.uuid4().hex[:12]}"
    answer = owner.request("POST", "/v1/tasks/desire.r2", {
        "task_guid": guid, "domain": "console",
        "task_definition": {"placement_tags": ["gpu"],
                            "source": "def handler(event, context):\n    return 42\n"}})
    assert answer.status == 200 and answer.json()["error"] is None, answer
    row = page.locator(f'#task-rows tr[data-key="{guid}"]')
    expect(row).to_have_attribute("data-state", "pending", timeout=WAIT_MS)
    cell = Client(owner.url, seeded["cell_token"])
    started = cell.request("POST", "/v1/tasks/start", {"task_guid": guid,
                                                       "cell_id": seeded["node"]})
    assert started.json() == {"error": None, "should_start": True}, started
    expect(row).to_have_attribute("data-state", "running", timeout=WAIT_MS)
    done = cell.request("POST", "/v1/tasks/complete", {
        "task_guid": guid, "cell_id": seeded["node"], "failed": False, "failure_reason": "",
        "result": "42"})
    assert done.json() == {"error": None}, done
    expect(row).to_have_attribute("data-state", "succeeded", timeout=WAIT_MS)
    # A function's task too: it appears, runs and ends with its progress at 100 %.
    task_id = owner.request("POST", f"/v1/task/{seeded['hello']}", {"n": 1}).json()["id"]
    mine = page.locator(f'#task-rows tr[data-key="{task_id}"]')
    expect(mine).to_have_attribute("data-state", re.compile("pending|running"), timeout=WAIT_MS)
    expect(mine).to_have_attribute("data-state", "succeeded", timeout=WAIT_MS)
    expect(mine).to_contain_text("100%", timeout=WAIT_MS)
    expect(mine).to_contain_text("hello")
    assert page.evaluate("window.__sameDocument") == "yes"  # never reloaded
    page.screenshot(path=shots / "tasks.png", full_page=True)


def test_a_task_s_detail_shows_progress_result_and_logs_as_text_never_as_html(
        page, owner, seeded, shots):
    sign_in(page, owner.token)
    task_id = owner.request("POST", f"/v1/task/{seeded['hostile']}", {"x": 1}).json()["id"]
    go(page, f"#/tasks/{task_id}")
    expect(page.locator("#task")).to_have_attribute("data-state", "succeeded", timeout=WAIT_MS)
    expect(page.locator("#stderr")).to_contain_text(IMG)
    assert page.locator("#result").text_content() == IMG
    assert page.locator("#stdout").text_content() == SCRIPT + "\n"
    assert page.locator("#stderr").text_content() == IMG + "\n"
    expect(page.locator("#progress")).to_have_attribute("value", "100")
    # Shown, not run: no element was made of it, and its script never ran.
    assert page.locator("main img").count() == 0 and page.locator("main script").count() == 0
    assert page.evaluate("window.__xss") is None
    # A slow function's page follows it while it runs, without a reload.
    slow = owner.request("POST", f"/v1/task/{seeded['hello']}", "Ada").json()["id"]
    go(page, f"#/tasks/{slow}")
    expect(page.locator("#waiting")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#task")).to_have_attribute("data-state", "succeeded", timeout=WAIT_MS)
    expect(page.locator("#stdout")).to_contain_text("working on Ada")
    assert page.locator("#result").text_content() == '{"hello": "Ada"}'
    page.screenshot(path=shots / "task.png", full_page=True)


def test_a_retried_task_shows_its_failed_attempts(page, owner, seeded):
    sign_in(page, owner.token)
    guid = f"console-retry-{uuid.uuid4().hex[:8]}"
    answer = owner.request("POST", "/v1/tasks/desire.r2", {
        "task_guid": guid, "domain": "console",
        "task_definition": {"function_id": seeded["broken"], "retries": 1}})
    assert answer.json()["error"] is None, answer
    go(page, f"#/tasks/{guid}")
    expect(page.locator("#task")).to_have_attribute("data-state", "failed", timeout=WAIT_MS)
    attempts = page.locator("#task section", has_text="Attempts").locator("tbody tr")
    expect(attempts.first).to_contain_text("1")
    assert "ValueError" in page.locator("#stderr").inner_text()


# --- functions -------------------------------------------------------------------------------


def test_functions_their_capabilities_and_pause(page, owner, seeded, shots):
    sign_in(page, owner.token)
    go(page, "#/functions")
    row = page.locator(f'tr[data-key="{seeded["hello"]}"]')
    expect(row).to_contain_text("hello")
    page.screenshot(path=shots / "functions.png", full_page=True)
    row.locator("a").click()
    expect(page.locator("h1")).to_contain_text("hello")
    timeout = page.locator("#capabilities input[name=timeout]")
    expect(timeout).to_have_value("10")
    timeout.fill("30")
    page.click("#capabilities button[type=submit]")
    expect(page.locator("#capabilities")).to_contain_text("saved")
    assert owner.request("GET", f"/v1/function/{seeded['hello']}/capabilities").json()[
        "timeout"] == 30
    # Refused by the platform (AllowPrivileged is false): its message is shown.
    page.check("#capabilities input[name=privileged]")
    page.click("#capabilities button[type=submit]")
    expect(page.locator("#capabilities [role=alert]")).to_contain_text("privileged")
    page.uncheck("#capabilities input[name=privileged]")
    page.click("#pause")
    expect(page.locator("h1 .badge")).to_have_text("paused")
    assert owner.request("GET", f"/v1/function/{seeded['hello']}").json()["paused"] is True
    page.screenshot(path=shots / "function.png", full_page=True)
    page.click("#pause")
    expect(page.locator("h1 .badge")).to_have_text("active")
    assert owner.request("GET", f"/v1/function/{seeded['hello']}").json()["paused"] is False


# --- jobs ------------------------------------------------------------------------------------


def execution_status(owner: Client, group: str, job_id: str) -> str:
    job = owner.request("GET", f"/tasks/{group}/jobs/{job_id}").json()["job"]
    return job["executions"][0]["status"] if job["executions"] else "none"


def test_a_job_s_output_is_followed_live(page, owner, shots):
    group = f"console-lines-{uuid.uuid4().hex[:6]}"
    job = owner.request("POST", f"/tasks/{group}", {"image": "alpine", "command": LINES}).json()
    sign_in(page, owner.token)
    deadline = time.monotonic() + 120
    while execution_status(owner, group, job["jobId"]) != "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    go(page, f"#/jobs/{group}/{job['jobId']}/{job['executionId']}")
    log = page.locator("#log")
    seen: list[tuple[str, str | None]] = []  # (output, state) each time the output changed
    while log.get_attribute("data-state") not in ("done", "gone"):
        assert time.monotonic() < deadline, seen
        current = (log.inner_text(), log.get_attribute("data-state"))
        if not seen or seen[-1] != current:
            seen.append(current)
        page.wait_for_timeout(50)
    assert log.get_attribute("data-state") == "done"
    assert log.inner_text().split() == [f"line-{i}" for i in range(1, 9)]
    # Live: the lines came one after another while it streamed, each once, in order.
    partial = [text.split() for text, state in seen if state == "streaming" and text]
    assert all(lines == [f"line-{i}" for i in range(1, len(lines) + 1)] for lines in partial)
    assert any(0 < len(lines) < 8 for lines in partial), seen
    expect(page.locator("main .badge").first).to_have_text("done")
    page.screenshot(path=shots / "execution.png", full_page=True)
    # The way there: the groups, the group, the job and its executions.
    go(page, "#/jobs")
    page.locator(f'tr[data-key="{group}"] a').click()
    page.locator(f'a[href$="{job["jobId"]}"]').click()
    expect(page.locator("#job")).to_contain_text(LINES)
    expect(page.locator(f'#job tr[data-key="{job["executionId"]}"]')).to_contain_text("done")
    page.screenshot(path=shots / "job.png", full_page=True)
    go(page, "#/jobs")
    expect(page.locator(f'tr[data-key="{group}"]')).to_be_visible()
    page.screenshot(path=shots / "jobs.png", full_page=True)


# --- schedules and cells ---------------------------------------------------------------------


def test_schedules_show_their_next_runs(page, owner, seeded, shots):
    sign_in(page, owner.token)
    before = dt.datetime.now(dt.UTC)
    go(page, "#/schedules")
    for cron, zone, description in SCHEDULES:
        row = page.locator("#schedules tbody tr", has_text=description)
        expect(row).to_contain_text(zone)
        runs = row.locator("li")
        expect(runs).to_have_count(3)
        shown = [dt.datetime.fromisoformat(runs.nth(i).get_attribute("data-at"))
                 for i in range(3)]
        after = dt.datetime.now(dt.UTC)

        def next_three(moment: dt.datetime, cron: str = cron, zone: str = zone) -> list:
            runs = croniter(cron, moment.astimezone(zoneinfo.ZoneInfo(zone)))
            return [runs.get_next(dt.datetime) for _ in range(3)]

        # croniter's runs from a moment while the page computed its own
        assert shown in (next_three(before), next_three(after)), (cron, zone, shown)
    page.screenshot(path=shots / "schedules.png", full_page=True)


def test_cells_show_their_state(page, owner, seeded, shots):
    sign_in(page, owner.token)
    go(page, "#/nodes")
    row = page.locator(f'#nodes tr[data-key="{seeded["node"]}"]')
    expect(row).to_contain_text("a GPU box")
    cell = Client(owner.url, seeded["cell_token"])
    assert cell.request("POST", f"/v1/node/{seeded['node']}/heartbeat",
                        {"running": 1}).status == 204
    expect(row.locator(".badge")).to_have_text("busy", timeout=WAIT_MS)
    page.screenshot(path=shots / "cells.png", full_page=True)
    assert owner.request("DELETE", f"/v1/node/{seeded['node']}").status == 204
    expect(row.locator(".badge")).to_have_text("disabled", timeout=WAIT_MS)
    assert owner.request("PATCH", f"/v1/node/{seeded['node']}").status == 200


# --- the chart -------------------------------------------------------------------------------


def test_the_chart_counts_tasks_completed_and_failed_per_minute(page, owner, seeded, shots):
    finished = [owner.request("POST", f"/v1/task/{seeded[name]}", {}).json()["id"]
                for name in ("hostile", "hostile", "broken")]
    for task_id in finished:
        wait_result(owner, task_id)
    sign_in(page, owner.token)
    chart = page.locator("#chart")
    expect(chart).to_have_attribute("data-ready", "yes", timeout=WAIT_MS)
    page.wait_for_function(
        "() => { const svg = document.querySelector('#chart svg');"
        " return svg && Number(svg.dataset.succeeded) >= 2 && Number(svg.dataset.failed) >= 1; }",
        timeout=WAIT_MS)
    assert chart.locator("rect.succeeded").count() >= 1
    assert chart.locator("rect.failed").count() >= 1
    # Live: one more failure is counted without a reload.
    failed_before = int(chart.locator("svg").get_attribute("data-failed"))
    wait_result(owner, owner.request("POST", f"/v1/task/{seeded['broken']}", {}).json()["id"])
    page.wait_for_function(
        f"() => Number(document.querySelector('#chart svg').dataset.failed) > {failed_before}",
        timeout=WAIT_MS)
    page.screenshot(path=shots / "overview.png", full_page=True)


# --- attacks: crafted links, hostile answers, a stale page -----------------------------------


def test_a_crafted_link_with_a_bad_escape_is_a_message_not_a_stuck_page(page, owner):
    sign_in(page, owner.token)
    for route in ("#/tasks/%E0%A4%A", "#/jobs/%/x", "#/functions/%zz"):
        go(page, route)
        expect(page.locator("main [role=alert]")).to_contain_text("No such page")
    # The console goes on: another link is a page again.
    go(page, "#/functions")
    expect(page.locator("main h1")).to_have_text("Functions")


def test_dot_ids_in_a_link_never_step_up_the_api_path(page, stack, owner):
    """An id of "." or ".." is a URL's step up: #/jobs/g/.. would read tasks/g/, and a form
    on such a page would post to another route. They are refused before any request."""
    sign_in(page, owner.token)
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    for route in ("#/jobs/g/..", "#/jobs/g/j/..", "#/jobs/..", "#/functions/..", "#/tasks/..",
                  "#/tasks/."):
        go(page, route)
        alert = page.locator("main [role=alert]").first
        expect(alert).to_contain_text(re.compile("no such", re.IGNORECASE))
    page.wait_for_timeout(300)  # what the pages would have asked
    paths = [url.removeprefix(stack.url).split("?")[0] for url in asked]
    stepped = [path for path in paths if path in ("/", "/tasks/g/", "/tasks/", "/v1/", "/v1/task/",
                                                  "/tasks/g/jobs/j/", "/tasks/g/jobs/j/stream")
               or "/../" in path or path.endswith("/..")]
    assert stepped == [], paths


def test_markup_in_names_descriptions_and_links_is_shown_as_text(page, owner):
    """What users name and describe (functions, schedules, cells) and a crafted #/ link."""
    markup = '<img src=x onerror="window.__xss = 1"><script>window.__xss = 2</script>'
    name = "markup"  # names are letters and digits: the description carries it
    answer = owner.request("POST", "/v1/function", {"name": name, "lang": "PY",
                                                   "description": markup})
    assert answer.status == 201, answer
    fid = answer.json()["id"]
    assert owner.request("POST", "/v1/scheduled", {
        "functionId": fid, "cron": "0 3 * * *", "timezone": "UTC",
        "description": markup}).status == 201
    node = f"console-markup-{uuid.uuid4().hex[:6]}"
    assert owner.request("POST", f"/v1/node/{node}", {"description": markup}).status == 201
    sign_in(page, owner.token)
    go(page, "#/functions")
    expect(page.locator(f'tr[data-key="{fid}"]')).to_contain_text(name)
    expect(page.locator(f'tr[data-key="{fid}"]')).to_contain_text(markup)
    go(page, f"#/functions/{fid}")
    expect(page.locator("main h1")).to_contain_text(name)
    expect(page.locator("main section").first).to_contain_text(markup)
    go(page, "#/schedules")
    expect(page.locator("#schedules")).to_contain_text(markup)
    go(page, "#/nodes")
    expect(page.locator(f'#nodes tr[data-key="{node}"]')).to_contain_text(markup)
    go(page, "#/tasks/" + markup.replace("/", "%2F"))
    expect(page.locator("main h1 code")).to_have_text(markup)
    go(page, "#/jobs/" + markup.replace("/", "%2F") + "/javascript:alert(1)")
    expect(page.locator("main h1 code")).to_have_text("javascript:alert(1)")
    hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.getAttribute('href'))")
    assert all(href.startswith("#/") for href in hrefs), hrefs
    assert page.locator("main img").count() == 0 and page.locator("main script").count() == 0
    assert page.evaluate("window.__xss") is None
    assert owner.request("DELETE", f"/v1/node/{node}").status == 204


def test_pause_on_a_stale_page_does_not_resume_it(page, owner):
    """The API toggles: a page that still says "Pause" after another tab paused the function
    must not resume it with that button."""
    fid = owner.request("POST", "/v1/function", {"name": "toggled", "lang": "PY"}).json()["id"]
    sign_in(page, owner.token)
    go(page, f"#/functions/{fid}")
    expect(page.locator("#pause")).to_have_text("Pause")
    assert owner.request("POST", f"/v1/function/{fid}/togglePause").status == 204  # elsewhere
    page.click("#pause")
    expect(page.locator("#notice [role=alert]")).to_contain_text("paused meanwhile")
    expect(page.locator("h1 .badge")).to_have_text("paused")
    assert owner.request("GET", f"/v1/function/{fid}").json()["paused"] is True
    page.click("#pause")  # now it says Resume, and does
    expect(page.locator("h1 .badge")).to_have_text("active")
    assert owner.request("GET", f"/v1/function/{fid}").json()["paused"] is False


def test_a_refused_pause_retry_or_stop_stays_said(page, owner):
    """The platform's refusal is shown, and not wiped by the reload (or the job page's
    refresh every 3 s) that follows."""
    fid = owner.request("POST", "/v1/function", {"name": "refused", "lang": "PY"}).json()["id"]
    refusal = {"status": 409, "content_type": "application/json",
               "body": '{"message": "the function is being deleted"}'}
    page.route("**/togglePause", lambda route: route.fulfill(**refusal))
    sign_in(page, owner.token)
    go(page, f"#/functions/{fid}")
    page.click("#pause")
    expect(page.locator("#pause")).to_be_enabled()  # reloaded after the refusal
    expect(page.locator("#notice [role=alert]")).to_have_text("the function is being deleted")
    # A job (fastlane's answers, made up here) whose retry is refused.
    reads: list[str] = []
    job = {"job": {"id": "j1", "image": "alpine", "command": "true", "scheduled": False,
                   "executionCount": 0, "metadata": {}, "createdAt": "2026-01-01T00:00:00",
                   "executions": []}}

    def answer_job(route):
        reads.append(route.request.url)
        route.fulfill(status=200, content_type="application/json", body=json.dumps(job))

    page.route("**/tasks/g1/jobs/j1", answer_job)
    page.route("**/tasks/g1/jobs/j1/retry", lambda route: route.fulfill(
        status=409, content_type="application/json", body='{"error": "job is running"}'))
    go(page, "#/jobs/g1/j1")
    page.get_by_role("button", name="Retry").click()
    expect(page.locator("#notice [role=alert]")).to_have_text("job is running")
    seen, deadline = len(reads), time.monotonic() + 60
    while len(reads) < seen + 2:  # two refreshes of the job later
        assert time.monotonic() < deadline, reads
        page.wait_for_timeout(200)
    expect(page.locator("#notice [role=alert]")).to_have_text("job is running")


HOSTILE_STREAM = ('<!doctype html><title>x</title><script type="application/json" id="config">'
                  '{{"url": "{url}"}}</script>')


def fake_execution(page, url: str) -> None:
    """fastlane's answers for execution e1 of job j1 (group g1), its stream page hostile."""
    execution = {"execution": {"executionId": "e1", "status": "running", "command": "true",
                               "image": "alpine"}}
    page.route("**/tasks/g1/jobs/j1/executions/e1", lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps(execution)))
    page.route("**/tasks/g1/jobs/j1/executions/e1/stream", lambda route: route.fulfill(
        status=200, content_type="text/html", body=HOSTILE_STREAM.format(url=url)))


@pytest.mark.parametrize("url", ["javascript:alert(1)", "https://evil.example/steal",
                                 "not a url"])
def test_a_stream_page_s_socket_url_must_be_a_websocket_one(page, owner, url):
    sockets: list[str] = []
    page.on("websocket", lambda socket: sockets.append(socket.url))
    sign_in(page, owner.token)
    fake_execution(page, url)
    go(page, "#/jobs/g1/j1/e1")
    expect(page.locator("#log")).to_have_attribute("data-state", "error")
    expect(page.locator("#log-state")).to_contain_text("socket URL is not")
    assert sockets == []


def test_a_steered_socket_url_is_refused_by_the_page_s_policy(browser, stack, owner):
    """A wss:// URL of another origin (were a stream page ever to say one): the page's CSP
    allows the WebSocket API's origin only, so the ticket never leaves."""
    context = browser.new_context(viewport=VIEWPORT, base_url=stack.url)
    tab = context.new_page()
    try:
        messages: list[str] = []
        tab.on("console", lambda message: messages.append(message.text))
        sockets: list[str] = []
        tab.on("websocket", lambda socket: sockets.append(socket.url))
        sign_in(tab, owner.token)
        fake_execution(tab, "wss://evil.example/steal?ticket=t")
        go(tab, "#/jobs/g1/j1/e1")
        deadline = time.monotonic() + 60
        while not any("evil.example" in text and "Content Security Policy" in text
                      for text in messages):  # "… violates … The action has been blocked."
            assert time.monotonic() < deadline, messages
            tab.wait_for_timeout(100)
        expect(tab.locator("#log")).not_to_have_attribute("data-state", "streaming")
        assert not any("evil.example" in socket for socket in sockets)
    finally:
        context.close()


def count_events_requests(page, owner, answer: dict) -> int:
    """The task events asked in 4 s while the platform answers each request with `answer`
    at once."""
    asked: list[str] = []

    def reply(route):
        asked.append(route.request.url)
        route.fulfill(**answer)

    page.route("**/v1/events/tasks.r1*", reply)
    sign_in(page, owner.token)
    page.wait_for_timeout(4000)
    return len(asked)


@pytest.mark.parametrize("answer", [
    {"status": 200, "content_type": "text/html", "body": "<html>a proxy's page</html>"},
    {"status": 200, "content_type": "text/event-stream", "body": "retry: 1000\n\nid: 7\n\n"},
    {"status": 500, "content_type": "application/json", "body": '{"message": "boom"}'},
    {"status": 502, "content_type": "text/plain", "body": "Bad Gateway"},
], ids=["200 not an event stream", "200 empty at once", "500", "502 not JSON"])
def test_the_events_follower_never_hammers_the_api(page, owner, answer):
    """However the events are answered (an error, a proxy's page, no wait), a second or more
    between requests: a handful in 4 s, not hundreds."""
    assert count_events_requests(page, owner, answer) <= 10


def test_the_events_follower_keeps_to_the_platform_s_wait(page, owner, seeded):
    """EVENTS_WAIT_S can be below 20 (0 to 25): a platform that allows 5 s refuses a longer
    `wait` with a 400. The follower asks for the platform's own wait, and stays live."""
    def five_seconds_at_most(route):
        wait = parse_qs(urlsplit(route.request.url).query).get("wait", ["5"])[0]
        if float(wait) > 5:
            route.fulfill(status=400, content_type="application/json",
                          body='{"error": {"type": "InvalidRequest", '
                               '"message": "wait: between 0 and 5 seconds"}}')
        else:
            route.continue_()

    page.route("**/v1/events/tasks.r1*", five_seconds_at_most)
    sign_in(page, owner.token)
    go(page, "#/tasks")
    expect(page.locator("#tasks")).to_be_visible()
    page.wait_for_function("() => document.querySelector('#task-rows') !== null")
    page.wait_for_timeout(1500)  # caught up with the events kept, now following
    task_id = owner.request("POST", f"/v1/task/{seeded['hostile']}", {}).json()["id"]
    expect(page.locator(f'#task-rows tr[data-key="{task_id}"]')).to_have_attribute(
        "data-state", "succeeded", timeout=30_000)


def test_a_revoked_token_signs_the_tab_out(page, stack, owner):
    """Any 401 (the token revoked or expired meanwhile) forgets the token and asks again."""
    sign_in(page, owner.token)
    page.route("**/v1/function/list*", lambda route: route.fulfill(
        status=401, content_type="application/json", body='{"message": "Unauthorized"}'))
    go(page, "#/functions")
    expect(page.locator("#signin")).to_be_visible()
    assert page.evaluate("window.sessionStorage.length") == 0
    # Signed out, the navigation is hidden too (a rule's display: flex had beaten `hidden`).
    expect(page.locator("#nav")).to_be_hidden()
    expect(page.locator("#signout")).to_be_hidden()


def test_a_task_s_page_reads_it_again_after_a_failure(page, owner, seeded):
    """A 503 (the platform or the network, for a moment) is said, then read again: a
    finished task has no more events to wake the page."""
    task_id = owner.request("POST", f"/v1/task/{seeded['hostile']}", {}).json()["id"]
    wait_result(owner, task_id)
    failed: list[str] = []

    def once(route):
        if failed:
            route.continue_()
        else:
            failed.append(route.request.url)
            route.fulfill(status=503, content_type="application/json",
                          body='{"message": "Service Unavailable"}')

    page.route(f"**/v1/task/{task_id}", once)
    sign_in(page, owner.token)
    # Its events read first (the replay at sign-in), so that none wakes its page later.
    deadline = time.monotonic() + 60
    while page.evaluate("async id => (await import(new URL('console/events.js', "
                        "location.href))).view(id)?.state", task_id) != "Completed":
        assert time.monotonic() < deadline
        page.wait_for_timeout(100)
    page.wait_for_timeout(1000)  # the follower's next long poll asked
    go(page, f"#/tasks/{task_id}")
    expect(page.locator("main [role=alert]")).to_have_text("Service Unavailable")
    expect(page.locator("#task")).to_have_attribute("data-state", "succeeded", timeout=WAIT_MS)
    expect(page.locator("main [role=alert]")).to_have_count(0)
    assert page.locator("#result").text_content() == IMG


def test_a_crafted_link_never_acts(page, owner):
    """Links only show: pausing, running, retrying or stopping takes a click on the page."""
    fid = owner.request("POST", "/v1/function", {"name": "linked", "lang": "PY"}).json()["id"]
    sign_in(page, owner.token)
    methods: list[tuple[str, str]] = []
    page.on("request", lambda request: methods.append((request.method, request.url)))
    for route in (f"#/functions/{fid}/pause", f"#/functions/{fid}/togglePause",
                  f"#/functions/{fid}?run=1", f"#/functions/{fid}/run", "#/jobs/g/j/retry",
                  "#/jobs/g/j/stop", "#/jobs/g/j/e/stop", f"#/tasks/{fid}/retry"):
        go(page, route)
        page.wait_for_timeout(200)
    go(page, f"#/functions/{fid}")
    expect(page.locator("#pause")).to_have_text("Pause")
    assert [(method, url) for method, url in methods if method != "GET"
            and not url.endswith("/v1/tasks/get_by_task_guid.r3")] == []
    assert owner.request("GET", f"/v1/function/{fid}").json()["paused"] is False
    assert owner.request("GET", f"/v1/task/list?functionId={fid}").json() == []


def test_a_stream_page_failing_for_a_moment_is_asked_again(page, owner):
    """A 503 for the stream page is a lost connection (again 5 s later), not the end."""
    sign_in(page, owner.token)
    fake_execution(page, "javascript:alert(1)")  # the second answer: a final error
    page.route("**/tasks/g1/jobs/j1/executions/e1/stream", lambda route: route.fulfill(
        status=503, content_type="application/json", body='{"error": "try later"}'),
        times=1)
    go(page, "#/jobs/g1/j1/e1")
    expect(page.locator("#log")).to_have_attribute("data-state", "retrying")
    expect(page.locator("#log-state")).to_contain_text("try later")
    expect(page.locator("#log")).to_have_attribute("data-state", "error", timeout=WAIT_MS)
    expect(page.locator("#log-state")).to_contain_text("socket URL is not")
