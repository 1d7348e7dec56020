"""What a hostile or careless visitor can send, checked against a real server and browser
(issue #13, section 2): uploads sent past the browser's limits, links drawn in the page,
an oversized paste, unreadable numbers in links. Library and AppTest checks are in
tests/test_hostile.py; fixtures in tests/e2e/conftest.py.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.request
import uuid
import zlib
from typing import TYPE_CHECKING

import pytest

from cnnviz import spec

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.e2e

EVIL_URL = "https://e.vil/"


def expect(target):
    from playwright.sync_api import expect as _expect

    return _expect(target)


def wait_idle(page: Page) -> None:
    app = page.locator('[data-testid="stApp"]')
    expect(app).to_have_attribute("data-test-connection-state", "CONNECTED")
    expect(app).to_have_attribute("data-test-script-state", "notRunning")
    expect(page.locator('[data-testid="stStatusWidget"]')).to_have_count(0)


def no_evil_links(page: Page) -> None:
    """No element links to the visitor's URL: not in Markdown, not in Plotly's SVG."""
    expect(page.locator('a[href*="e.vil"], a[*|href*="e.vil"]')).to_have_count(0)


def token(data: dict) -> str:
    """A ?spec= token of any data, valid or not."""
    raw = zlib.compress(json.dumps(data).encode())
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def uploaded_bytes(base_url: str) -> int:
    """What the server's upload manager holds now (Streamlit's /_stcore/metrics)."""
    with urllib.request.urlopen(f"{base_url}/_stcore/metrics", timeout=10) as r:
        text = r.read().decode()
    total = 0
    for line in text.splitlines():
        if line.startswith("cache_memory_bytes") and "UploadedFileManager" in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


# --------------------------------------------------------------------- user text as text
def test_spec_named_like_a_link_is_drawn_as_text(page: Page):
    # Found: a spec named <a href=...> became a live link in Plotly chart titles.
    name = f"<a href='{EVIL_URL}'>Session expired: log in</a>"
    s = {"name": name, "input": [1, 1, 8, 8], "layers": ["relu"]}
    page.goto(f"/custom?spec={spec.to_url(s)}")
    charts = page.locator('[data-testid="stPlotlyChart"]')
    expect(charts.first.locator(".gtitle")).to_contain_text("Session expired: log in")
    wait_idle(page)
    expect(charts.first.locator(".gtitle")).to_contain_text("<a href=")  # shown as typed
    no_evil_links(page)


def test_invalid_link_value_is_not_a_markdown_link(page: Page):
    # Found: an invalid value "[Log in](https://e.vil/)" became a live link in the error.
    bad = {"input": [1, 1, 4, 4], "layers": [{"conv": {"out": f"[Log in]({EVIL_URL})"}}]}
    page.goto(f"/custom?spec={token(bad)}")
    error = page.locator('[data-testid="stAlertContentError"]').first
    # the text as typed (a word joiner, U+2060, after the colon keeps it from being a link)
    expect(error).to_contain_text(re.compile(r"\[Log in\]\(https:\u2060?//e\.vil/\)"))
    wait_idle(page)
    no_evil_links(page)


# --------------------------------------------------------------------- numbers in links
def test_overflowing_number_in_a_link_leaves_the_page_working(page: Page):
    # Found: /explorer?size=1e400 raised OverflowError: a generic error and nothing below.
    page.goto("/explorer?model=resnet20&size=1e400")
    expect(page.locator("h1")).to_have_text("Layer explorer")
    expect(page.locator('[data-testid="stAlertContentWarning"]').first).to_contain_text(
        "size=1e400"
    )
    wait_idle(page)
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    expect(page.get_by_role("spinbutton", name="input size (pixels)")).to_have_value("32")


# --------------------------------------------------------------------- the spec editor
# What a paste does to the editor (a React textarea): the value set and an input event.
_PASTE = """(el, n) => {
    const set = Object.getOwnPropertyDescriptor(HTMLTextAreaElement.prototype, "value").set;
    set.call(el, "# " + "x".repeat(n) + "\\ninput: [1, 1, 4, 4]\\nlayers: [relu]\\n");
    el.dispatchEvent(new Event("input", {bubbles: true}));
}"""


def test_oversized_paste_is_refused_at_once_and_said(page: Page):
    # Found: a 50 MB paste left the old spec in place after 44 s with no message (the server
    # refuses WebSocket messages over 25 MB). Now the editor takes at most 64 KiB + 1
    # characters, says so, and refuses a longer paste whole without sending it.
    page.goto("/custom")
    wait_idle(page)
    expect(page.get_by_text(re.compile(r"At most 64 KiB of text"))).to_be_visible()
    box = page.get_by_role("textbox", name="YAML or JSON")
    expect(box).to_have_value(re.compile(r"layers:"))  # the example spec is in the editor
    before = box.input_value()
    box.evaluate(_PASTE, 30 * 2**20)
    assert box.evaluate("e => e.value.length") <= spec.LIMITS.text_bytes + 1
    expect(box).to_have_value(before)
    box.press("Control+Enter")
    wait_idle(page)
    expect(page.locator('[data-testid="stAlertContentError"]')).to_have_count(0)
    expect(page.locator('[data-testid="stMetric"]').first).to_be_visible()  # the editor's model


# --------------------------------------------------------------------- uploads
def _session_upload(page: Page, tmp_path, size: int) -> tuple[str, dict[str, str]]:
    """Upload a ``size``-byte spec through the page's widget; return the upload URL the
    browser used and the headers it sent (the XSRF token)."""
    f = tmp_path / "big.yaml"
    f.write_text("# " + "x" * (size - 40) + "\ninput: [1, 1, 4, 4]\nlayers: [relu]\n")
    with page.expect_response(lambda r: r.request.method == "PUT") as put:
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(f))
    assert put.value.status == 204, put.value.status
    wait_idle(page)
    return put.value.url, put.value.request.headers


def test_upload_over_a_widgets_cap_is_dropped_on_the_server(page: Page, base_url, tmp_path):
    # The spec widget's 1 MB held in the browser only, and a file over the spec limit stayed
    # in the server's memory until the session ended.
    page.goto("/custom")
    wait_idle(page)
    before = uploaded_bytes(base_url)
    _session_upload(page, tmp_path, 200 * 1024)  # over 64 KiB, under the widget's 1 MB
    error = page.locator('[data-testid="stAlertContentError"]').first
    expect(error).to_contain_text("specs take at most 64.0 KiB")
    assert uploaded_bytes(base_url) <= before


def test_upload_under_an_id_the_server_never_issued_is_refused(page: Page, base_url, tmp_path):
    # Found: PUT /_stcore/upload_file/<session>/<any id> took 150 MB files under any number of
    # new ids, each held until the session ended. Here 3 x 20 MB under fresh ids.
    page.goto("/custom")
    wait_idle(page)
    url, headers = _session_upload(page, tmp_path, 1024)
    session = url.split("/upload_file/")[1].split("/")[0]
    cookies = "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies())
    before = uploaded_bytes(base_url)
    statuses = []
    for _ in range(3):
        boundary = uuid.uuid4().hex
        body = (
            (
                f"--{boundary}\r\nContent-Disposition: form-data; "
                'name="file"; filename="x.yaml"\r\nContent-Type: application/octet-stream\r\n\r\n'
            ).encode()
            + b"x" * (20 * 2**20)
            + f"\r\n--{boundary}--\r\n".encode()
        )
        req = urllib.request.Request(
            f"{base_url}/_stcore/upload_file/{session}/{uuid.uuid4()}",
            data=body,
            method="PUT",
            headers={
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "X-Xsrftoken": headers.get("x-xsrftoken", ""),
                "Cookie": cookies,
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                statuses.append(r.status)
        except urllib.error.HTTPError as e:
            statuses.append(e.code)
    assert all(s >= 400 for s in statuses), statuses
    assert uploaded_bytes(base_url) <= before + 1024
    assert re.fullmatch(r"[0-9a-f-]{36}", session)


# --------------------------------------------------------------------- the server
def test_responses_forbid_framing_and_sniffing(base_url):
    # Found: responses carried no X-Frame-Options or CSP; app/serve.py adds them.
    for path in ("/", "/explorer", "/_stcore/health"):
        with urllib.request.urlopen(f"{base_url}{path}", timeout=10) as r:
            headers = {k.lower(): v for k, v in r.headers.items()}
        assert headers.get("x-frame-options") == "DENY", path
        assert "frame-ancestors 'none'" in headers.get("content-security-policy", ""), path
        assert headers.get("x-content-type-options") == "nosniff", path
