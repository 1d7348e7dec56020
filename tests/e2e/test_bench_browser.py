"""bench/app_speed.py's script-run log, in Chromium: it must see a run that starts and ends
within one task (a short fragment rerun), which an observer reading the attribute's value
once per batch of changes missed ("the action started no script run")."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def app_speed():
    spec = importlib.util.spec_from_file_location("app_speed", ROOT / "bench" / "app_speed.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["app_speed"] = mod
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop("app_speed", None)


def test_run_log_sees_a_run_within_one_task(browser, app_speed):
    context = browser.new_context()
    try:
        page = context.new_page()
        page.add_init_script(app_speed.RUN_LOG)
        html = '<div data-testid="stApp" data-test-script-state="notRunning"></div>'
        page.route(
            "http://bench.test/", lambda route: route.fulfill(body=html, content_type="text/html")
        )
        page.goto("http://bench.test/")
        page.wait_for_function("(window.__runlog || []).length === 1")
        since = page.evaluate("performance.now()")
        # running, then notRunning, in one task: one observer call with two records
        page.evaluate(
            """() => { const el = document.querySelector('[data-testid="stApp"]');
                       el.setAttribute('data-test-script-state', 'running');
                       el.setAttribute('data-test-script-state', 'notRunning'); }"""
        )
        page.wait_for_function(app_speed.STARTED, arg=since, timeout=5000)
        states = page.evaluate("window.__runlog.map(([, s]) => s)")
        assert states == ["notRunning", "running", "notRunning"]
        got = page.wait_for_function(app_speed.SETTLED, arg=[since, 50], timeout=5000)
        assert got.json_value()["runs"] == 1
    finally:
        context.close()


def test_a_rerun_is_timed_from_the_input_event_not_the_drivers_call(browser, app_speed):
    """The driver's own work before a click (here a 400 ms pause; in the bench, Playwright's
    checks that the button is visible and stable) counts as ``driver``, not in ``total``."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.add_init_script(app_speed.RUN_LOG)
        # a click or a key press runs the "script" for 60 ms, as a Streamlit rerun would
        html = """<div data-testid="stApp" data-test-script-state="notRunning">
          <button id="b">go</button><input id="k"></div>
          <script>
            const app = document.querySelector('[data-testid="stApp"]');
            const run = () => {
              app.setAttribute('data-test-script-state', 'running');
              setTimeout(() => app.setAttribute('data-test-script-state', 'notRunning'), 60);
            };
            document.getElementById('b').addEventListener('click', run);
            document.getElementById('k').addEventListener('keydown', run);
          </script>"""
        page.route(
            "http://bench.test/", lambda route: route.fulfill(body=html, content_type="text/html")
        )
        page.goto("http://bench.test/")
        page.wait_for_function("(window.__runlog || []).length === 1")
        for act in (lambda: page.click("#b"), lambda: page.locator("#k").press("x")):
            got = app_speed.timed(page, lambda act=act: (page.wait_for_timeout(400), act()), 50)
            assert got is not None and got.runs == 1
            assert got.driver >= 400  # the pause came before the input event
            assert 60 <= got.total < 400  # the 60 ms run, and the time to see it end
            assert got.total >= got.run
    finally:
        context.close()
