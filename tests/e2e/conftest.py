"""Real-browser fixtures: one app server and one Chromium per session, a fresh context per test.

Every test's page records its console messages and failed requests; a test fails at teardown
when the browser logged an error that is not known noise (see ``_benign``). The final state of
every test (a failure's state included) is saved to test-artifacts/screenshots/<test>.png.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
from appserver import ROOT, running_app
from conftest import IN_CI, need

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Response

CHROMIUM = "/usr/bin/chromium"
# No sandbox/GPU in containers; the networking flags stop Chromium's own background traffic
# (updates, sync, ...), whose refused connections would otherwise show up as errors.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
TIMEOUT_MS = 60_000  # a model's first analysis takes seconds on a small CI machine
VIEWPORT = {"width": 1400, "height": 1000}


def _sync_api():
    """playwright.sync_api; skipped on a user's machine without it, a failure under CI=true."""
    if IN_CI:
        try:
            import playwright.sync_api
        except ImportError as e:  # pragma: no cover - CI installs requirements-dev.txt
            pytest.fail(f"playwright is not installed ({e}); CI=true: requirements-dev.txt has it")
        return playwright.sync_api
    return pytest.importorskip(
        "playwright.sync_api", reason="pip install -r requirements-dev.txt for the browser tests"
    )


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    executable = need(CHROMIUM, "apt-get install chromium")
    api = _sync_api()
    api.expect.set_options(timeout=TIMEOUT_MS)
    with api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="session")
def base_url(browser) -> Iterator[str]:
    """The app, started like the Docker image does, once per session (after the browser, so
    that a machine without Chromium skips without starting a server)."""
    with running_app() as url:
        yield url


# When a page other than "/" is loaded directly (e.g. /explorer), Streamlit's frontend first
# probes <path>/_stcore/health and <path>/_stcore/host-config, gets 404s, and falls back to the
# server root. Those two 404s, and the "Failed to load resource" console lines they cause, are
# the only browser errors ignored here.
_PROBE = re.compile(r"^/.+/_stcore/(health|host-config)$")


def _benign(url: str, status: int | None) -> bool:
    return status == 404 and bool(_PROBE.match(urlsplit(url).path))


@dataclass
class BrowserLog:
    console: list[str] = field(default_factory=list)  # every console line, for the report
    errors: list[str] = field(default_factory=list)  # console errors that are not benign
    failed: list[str] = field(default_factory=list)  # failed requests / 4xx-5xx responses

    def on_console(self, msg: ConsoleMessage) -> None:
        where = msg.location.get("url", "") if msg.location else ""
        line = f"[{msg.type}] {msg.text} ({where})"
        self.console.append(line)
        probe_404 = msg.text.startswith("Failed to load resource") and "status of 404" in msg.text
        if msg.type == "error" and not (probe_404 and _benign(where, 404)):
            self.errors.append(line)

    def on_response(self, response: Response) -> None:
        if response.status >= 400 and not _benign(response.url, response.status):
            self.failed.append(f"{response.status} {response.request.method} {response.url}")

    def drop_cancelled_uploads(self) -> None:
        """Forget the uploads the browser cancelled because a newer file replaced them."""
        self.failed = [
            f for f in self.failed if not ("/_stcore/upload_file/" in f and "ERR_ABORTED" in f)
        ]
        self.errors = [e for e in self.errors if "CanceledError: canceled" not in e]

    def on_request_failed(self, request: Request) -> None:
        self.failed.append(f"failed {request.method} {request.url}: {request.failure}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page(browser, base_url, request) -> Iterator[Page]:
    """A fresh context and page for one test, with base_url set (page.goto("/explorer"))."""
    context = browser.new_context(base_url=base_url, viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    p = context.new_page()
    log = BrowserLog()
    p.on("console", log.on_console)
    p.on("response", log.on_response)
    p.on("requestfailed", log.on_request_failed)
    try:
        yield p
    finally:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^\w.\-\[\]=]+", "_", request.node.name)
        try:
            p.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
        finally:
            context.close()
        if log.console:
            request.node.add_report_section("teardown", "browser console", "\n".join(log.console))
        if request.node.get_closest_marker("uploads_replaced"):
            log.drop_cancelled_uploads()
        call = getattr(request.node, "report_call", None)
        if call is not None and call.passed and (log.errors or log.failed):
            pytest.fail(
                "the browser logged errors:\n" + "\n".join(log.errors + log.failed),
                pytrace=False,
            )
