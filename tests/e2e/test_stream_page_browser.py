"""fastlane's stream page in a real browser (Debian's Chromium, driven by Playwright) against
the local stack: HTTP Basic with the token as the password, as a fastlane user signs in; a
job printing a line a second shows its lines while it runs, in order; the page stops after
"wsdone" (no new connection), and after "wsretry" it connects again 5 s later."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from .conftest import Client

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")  # `make test` installs it (Playwright's download fails)
LINES = "sh -c 'for i in 1 2 3 4 5; do echo $i; sleep 1; done'"

if not CHROMIUM.exists():  # pragma: no cover - `make test` installs it first
    pytest.skip("no /usr/bin/chromium: `make test` installs it", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def grace(stack: Client) -> str:
    answer = stack.request("POST", "/v1/tokens", {"user": "grace-browser", "scope": "user"})
    return answer.json()["token"]


@pytest.fixture
def browser_page(stack: Client, grace: str):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            context = browser.new_context(http_credentials={"username": "fastlane",
                                                            "password": grace})
            page = context.new_page()
            sockets: list[str] = []
            page.on("websocket", lambda socket: sockets.append(socket.url))
            yield page, sockets
        finally:
            browser.close()


def job_status(stack: Client, token: str, task_id: str, job_id: str) -> str:
    job = Client(stack.url, token).request("GET", f"/tasks/{task_id}/jobs/{job_id}").json()
    return job["job"]["executions"][0]["status"] if job["job"]["executions"] else "none"


def test_the_page_shows_a_running_job_s_lines_live_in_order_and_stops_after_wsdone(
        stack, grace, browser_page):
    page, sockets = browser_page
    client = Client(stack.url, grace)
    job_id = client.request("POST", "/tasks/browser-lines", {
        "image": "alpine", "command": LINES}).json()["jobId"]
    deadline = time.monotonic() + 60
    while job_status(stack, grace, "browser-lines", job_id) != "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    answer = page.goto(f"{stack.url}/tasks/browser-lines/jobs/{job_id}/stream")
    assert answer.status == 200
    seen: list[tuple[str, str]] = []  # (output, page state) each time the output changed
    while page.get_attribute("body", "data-state") not in ("done", "gone"):
        assert time.monotonic() < deadline + 60
        current = (page.inner_text("#output"), page.get_attribute("body", "data-state"))
        if not seen or seen[-1][0] != current[0]:
            seen.append(current)
        time.sleep(0.05)
    assert page.get_attribute("body", "data-state") == "done"
    assert page.inner_text("#output").split() == ["1", "2", "3", "4", "5"]
    # Live: the lines came one after another while the page streamed, each once, in order.
    partial = [text.split() for text, state in seen if state == "streaming" and text]
    assert all(lines == ["1", "2", "3", "4", "5"][:len(lines)] for lines in partial)
    assert any(0 < len(lines) < 5 for lines in partial), seen
    # Stopped: no connection after wsdone (a retry would come 5 s later).
    page.wait_for_timeout(6500)
    assert page.get_attribute("body", "data-state") == "done"
    assert len(sockets) == 1 and "ticket=" in sockets[0]


def test_the_page_tries_again_after_wsretry(stack, grace, browser_page):
    page, sockets = browser_page
    client = Client(stack.url, grace)
    job_id = client.request("POST", "/tasks/browser-later", {
        "image": "alpine", "command": "true", "cron": "0 3 * * *"}).json()["jobId"]
    page.goto(f"{stack.url}/tasks/browser-later/jobs/{job_id}/stream")
    page.wait_for_selector("body[data-state=retrying]", timeout=30_000)
    assert "wsretry" in page.inner_text("#state")
    page.wait_for_function("window.performance && true")  # the page is alive
    deadline = time.monotonic() + 30
    while len(sockets) < 2:  # again, 5 s after the close
        assert time.monotonic() < deadline, sockets
        page.wait_for_timeout(200)


def test_output_that_looks_like_the_in_band_close_is_shown_as_output(stack, grace, browser_page):
    # The job prints what the pump's in-band close looks like: the page must not take it
    # for the close (it stops only on a close that follows it) nor hide it.
    page, _ = browser_page
    client = Client(stack.url, grace)
    job_id = client.request("POST", "/tasks/browser-spoof", {
        "image": "alpine", "command": r"printf '\000close 1010 wsdone\nafter\n'"}).json()["jobId"]
    deadline = time.monotonic() + 60
    while job_status(stack, grace, "browser-spoof", job_id) != "done":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    page.goto(f"{stack.url}/tasks/browser-spoof/jobs/{job_id}/stream")
    page.wait_for_selector("body[data-state=done]", timeout=30_000)
    text = page.inner_text("#output")
    assert "close 1010 wsdone" in text and "after" in text and "-=-" in text
