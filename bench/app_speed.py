"""Does the cnnviz app feel as fast as a trivial Streamlit app?

Run from the repository root (Chromium at /usr/bin/chromium, playwright from
requirements-dev.txt):

    python bench/app_speed.py              # 5 interleaved rounds, a few minutes
    python bench/app_speed.py --quick      # 2 rounds
    python bench/app_speed.py --rounds 9 --only explorer

It starts the app (docker/start.sh, production settings) and a trivial two-page Streamlit app
(a title, a line of text and one slider per page, written to a temporary folder) on loopback,
and times both in headless Chromium: each page's cold render against the trivial page's, and
the main interactions against the trivial page's rerun after moving its slider (each interaction
beside a trivial tab of its own, so both sides have sat idle as long). An interaction
is timed from its input event (the key or pointer press, by the event's time stamp), so the
driver's own checks before a click count on neither side. A time ends when the page reports
its script run is over (``data-test-script-state="notRunning"`` on ``stApp``) and no new run
starts within ``--quiet`` ms. Each ratio is the app's median over the trivial app's median; the
target is <= 1.5. Results go to bench/results/app_speed_<date>.txt and .json. It is a
benchmark, not a test: it exits 0 even when a target fails. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results_path

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
TARGET = 1.5
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [  # as tests/e2e/conftest.py: no sandbox or GPU, no background traffic
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
VIEWPORT = {"width": 1400, "height": 1000}
TIMEOUT_MS = 120_000  # one measurement at most (a cold model analysis on a busy machine)
START_MS = 15_000  # an action that starts no run within this is retried once
QUIET = 300.0  # ms with no script run that count as settled (--quiet)
# The trivial app's server gets the settings docker/start.sh gives the app.
SERVER_FLAGS = [
    "--server.headless=true",
    "--server.fileWatcherType=none",
    "--server.runOnSave=false",
    # Streamlit's gc.collect() after every script run: about 30 ms of nearly every trivial
    # rerun (gc.callbacks), inside the timed window or not by chance, so the trivial medians
    # flipped between about 65 and 97 ms from run to run (2026-12-04, up to _9).
    "--runner.postScriptGC=false",
    "--browser.gatherUsageStats=false",
    "--client.showErrorDetails=none",
    "--client.toolbarMode=viewer",
]

TRIVIAL_PAGE = """\
import streamlit as st

st.title({title!r})
st.write("A line of text on a trivial page.")
st.slider("value", 0, 100, 50, key="value")
"""
# The floor: the trivial page with the explorer's layer selectbox added (ResNet-50's layers, its
# default layer picked), served like the trivial app. A pick in a Streamlit selectbox costs the
# browser 25-35 ms before anything is sent (the combobox's own handling of the Enter, seen on
# this bare page), where a slider's key press costs under 10: the layer pick is also timed here,
# as the least a pick in that widget costs. (Compare's multiselect has no floor: on a bare page,
# whose runs take a few ms, a pick in it now and then started no run at all.)
FLOOR_WIDGETS = """\
st.selectbox("Selected layer", {layers!r}, index={layer_index}, key="layer", bind="query-params")
"""
# The trivial apps' router. Nor do they run Python's automatic full garbage collection, so
# none falls in a timed rerun (the app's server froze its warm-up's objects, app/serve.py,
# and ran none in 43 probe reruns).
TRIVIAL_MAIN = """\
import gc

import streamlit as st

gc.set_threshold(*gc.get_threshold()[:2], 1_000_000_000)
st.navigation(
    [
        st.Page("one.py", title="One", default=True),
        st.Page("two.py", title="Two", url_path="two"),
    ]
).run()
"""

# Logs every change of stApp's script state, [performance.now(), state], from the page's start
# (performance.now() counts from the navigation's start). One observer call may carry several
# changes (a short fragment run goes running -> notRunning within one task): each record's
# new value is the next record's old one, the last the attribute's value now.
RUN_LOG = """(() => {
  const log = [];
  window.__runlog = log;
  let app = null;
  const STATE = 'data-test-script-state';
  const note = (records) => {
    const now = performance.now(), current = app.getAttribute(STATE);
    if (!records || !records.length) { log.push([now, current]); return; }
    records.forEach((r, i) =>
      log.push([now, i + 1 < records.length ? records[i + 1].oldValue : current]));
  };
  const watch = () => {
    if (app && app.isConnected) return;
    const el = document.querySelector('[data-testid="stApp"]');
    if (!el) return;
    app = el;
    note();
    new MutationObserver(note).observe(el, {
      attributes: true, attributeOldValue: true, attributeFilter: [STATE] });
  };
  new MutationObserver(watch).observe(document, {childList: true, subtree: true});
  // The user's input: an interaction is timed from its first key or pointer press (the event's
  // own time stamp), not from the driver's call, whose checks before a click (visible, stable
  // over two frames, hit) a user never waits for and a slider's key press does not make.
  const inputs = [];
  window.__inputs = inputs;
  const press = (e) => { if (e.isTrusted) inputs.push(e.timeStamp); };
  window.addEventListener('keydown', press, true);
  window.addEventListener('pointerdown', press, true);
})();"""

# Two animation frames: a page brought to the front has drawn as the front page.
FRAMES = "new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"
# A script run started after `since`.
STARTED = """(since) => (window.__runlog || []).some(([t, s]) => t >= since && s === 'running')"""
# Settled: a run started after `since`, the state is notRunning, and has been for `quiet` ms.
SETTLED = """([since, quiet]) => {
  const log = window.__runlog || [];
  const first = log.findIndex(([t, s]) => t >= since && s === 'running');
  if (first < 0) return null;
  const last = log[log.length - 1];
  if (last[1] !== 'notRunning' || performance.now() - last[0] < quiet) return null;
  if (document.querySelector('[data-testid="stStatusWidget"]')) return null;
  const runs = log.slice(first).filter(([, s]) => s === 'running').length;
  const input = (window.__inputs || []).find((t) => t >= since && t <= log[first][0]);
  return {start: log[first][0], end: last[0], runs, input: input === undefined ? null : input};
}"""


# ----------------------------------------------------------------------------- arithmetic


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def ratio(app: list[float], trivial: list[float]) -> float:
    """The app's median time over the trivial app's median time.

    >>> ratio([300, 100, 200], [100, 110, 90])
    2.0
    >>> ratio([], [1.0])
    nan
    """
    a, t = median(app), median(trivial)
    return a / t if t > 0 else float("nan")


def verdict(r: float, target: float = TARGET) -> str:
    """ "ok" within the target, "SLOW" over it.

    >>> verdict(1.2), verdict(1.6), verdict(float("nan"))
    ('ok', 'SLOW', 'n/a')
    """
    if r != r:  # nan
        return "n/a"
    return "ok" if r <= target else "SLOW"


@dataclass
class Item:
    """One thing timed: the app's side and its trivial baseline, paired round by round."""

    kind: str  # "cold" or "rerun"
    name: str
    app: list[float] = field(default_factory=list)  # ms from navigation / action to settled
    trivial: list[float] = field(default_factory=list)
    floor: list[float] = field(default_factory=list)  # the same widget on the floor page
    app_run: list[float] = field(default_factory=list)  # ms from the first run's start
    trivial_run: list[float] = field(default_factory=list)
    app_runs: list[int] = field(default_factory=list)  # script runs per measurement
    app_driver: list[float] = field(default_factory=list)  # ms of driver work before the input
    trivial_driver: list[float] = field(default_factory=list)
    lost: int = 0  # actions, on either side, that started no script run even when repeated

    def row(self) -> dict[str, Any]:
        r = ratio(self.app, self.trivial)
        return {
            "kind": self.kind,
            "name": self.name,
            "app_ms": median(self.app),
            "trivial_ms": median(self.trivial),
            "ratio": r,
            "run_ratio": ratio(self.app_run, self.trivial_run),
            "verdict": verdict(r),
            "floor_ms": median(self.floor),
            "over_floor": ratio(self.app, self.floor),
            "raw": {
                "app_ms": self.app,
                "trivial_ms": self.trivial,
                "floor_ms": self.floor,
                "app_run_ms": self.app_run,
                "trivial_run_ms": self.trivial_run,
                "app_runs": self.app_runs,
                "app_driver_ms": self.app_driver,
                "trivial_driver_ms": self.trivial_driver,
                "lost": self.lost,
            },
        }


def table(rows: list[dict[str, Any]]) -> str:
    """The text table of results, one line per page or interaction.

    >>> rows = [Item("cold", "/x", [300, 100, 200], [100, 110, 90]).row()]
    >>> rows += [Item("rerun", "y", [150, 130], [60, 70], [100, 100]).row()]
    >>> print(table(rows))  # doctest: +NORMALIZE_WHITESPACE
    kind   page or interaction  app ms  trivial ms  ratio  run ratio  verdict  floor ms  app/floor
    cold   /x                      200         100   2.00        n/a  SLOW            -          -
    rerun  y                       140          65   2.15        n/a  SLOW          100       1.40
    """
    head = (
        "kind",
        "page or interaction",
        "app ms",
        "trivial ms",
        "ratio",
        "run ratio",
        "verdict",
        "floor ms",
        "app/floor",
    )
    lines = [head]
    for r in rows:
        lines.append(
            (
                r["kind"],
                r["name"],
                _num(r["app_ms"], "{:.0f}"),
                _num(r["trivial_ms"], "{:.0f}"),
                _num(r["ratio"], "{:.2f}"),
                _num(r["run_ratio"], "{:.2f}"),
                r["verdict"],
                _num(r["floor_ms"], "{:.0f}", "-"),
                _num(r["over_floor"], "{:.2f}", "-"),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    left = {0, 1, 6}
    return "\n".join(
        "  ".join(
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in lines
    )


def _num(x: float, fmt: str, missing: str = "n/a") -> str:
    return missing if x != x else fmt.format(x)


# ----------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
            return r.read() == b"ok"
    except OSError:
        return False


@contextlib.contextmanager
def serve(argv: list[str], cwd: Path, env: dict[str, str], port: int) -> Iterator[str]:
    """Run a Streamlit server on 127.0.0.1:port; yield its URL; stop it whatever happens."""
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=dict(os.environ, **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while not _healthy(url):
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"{argv[:3]} exited with {proc.returncode}:\n{err[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no healthy server at {url} after 120 s")
            time.sleep(0.3)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def streamlit_exe() -> str:
    return str(Path(sys.executable).parent / "streamlit")


def floor_widgets() -> str:
    """FLOOR_WIDGETS with the explorer's options: ResNet-50's layers at 224x224."""
    import cnnviz
    from cnnviz import zoo

    model = zoo.get_model("resnet50")
    a = cnnviz.analyze(model, tuple(model.default_input_size))
    layers = [r.name for r in a.layers]
    default_layer = a.default_layer() or layers[-1]
    return FLOOR_WIDGETS.format(layers=layers, layer_index=layers.index(default_layer))


@contextlib.contextmanager
def servers(floor: bool = True) -> Iterator[tuple[str, str, str | None]]:
    """(app URL, trivial app URL, floor app URL or None without ``floor``), on loopback."""
    with tempfile.TemporaryDirectory(prefix="trivial_app_") as tmp:
        extras = {"trivial": "", **({"floor": floor_widgets()} if floor else {})}
        apps = {}
        for kind, extra in extras.items():
            folder = Path(tmp) / kind
            folder.mkdir()
            (folder / "main.py").write_text(TRIVIAL_MAIN)
            (folder / "one.py").write_text(TRIVIAL_PAGE.format(title="One") + extra)
            (folder / "two.py").write_text(TRIVIAL_PAGE.format(title="Two"))
            apps[kind] = folder
        p1, p2, p3 = free_port(), free_port(), free_port()
        app_env = {"PORT": str(p1), "ADDRESS": "127.0.0.1", "STREAMLIT": streamlit_exe()}
        # as the trivial app's: the page runs share the CPU with this browser, which a
        # visitor's runs on another machine (start.sh would nice them below it)
        app_env["CNNVIZ_PAGE_NICE"] = "0"

        def bare(port: int) -> list[str]:
            argv = [streamlit_exe(), "run", "main.py", f"--server.port={port}"]
            return [*argv, "--server.address=127.0.0.1", *SERVER_FLAGS]

        with contextlib.ExitStack() as stack:
            app = stack.enter_context(
                serve(["sh", str(ROOT / "docker" / "start.sh")], ROOT, app_env, p1)
            )
            trivial = stack.enter_context(serve(bare(p2), apps["trivial"], {}, p2))
            bare_floor = None
            if floor:  # only where an interaction is timed there too
                bare_floor = stack.enter_context(serve(bare(p3), apps["floor"], {}, p3))
            yield app, trivial, bare_floor


# ----------------------------------------------------------------------------- browser


@dataclass
class Run:
    total: float  # ms from the navigation's start or the input event to the settled state
    run: float  # ms from the first script run's start to the settled state
    runs: int
    driver: float  # ms from the driver's call to the input event (not in total)


def settle(page: Page, since: float, quiet: float, start_ms: float = TIMEOUT_MS) -> Run | None:
    """Wait until a script run that started after ``since`` (a performance.now() value) is over
    and no other follows; None when no run starts within ``start_ms``."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(STARTED, arg=since, polling=50, timeout=start_ms)
    except PlaywrightTimeout:
        return None
    got = page.wait_for_function(
        SETTLED, arg=[since, quiet], polling=50, timeout=TIMEOUT_MS
    ).json_value()
    origin = since if got["input"] is None else got["input"]
    return Run(got["end"] - origin, got["end"] - got["start"], got["runs"], origin - since)


def front(page: Page) -> Page:
    """Bring ``page`` to the front, as the tab a visitor acts on, and let it draw twice.

    Chromium gives the pages behind the front one less of the CPU (all of them "visible" when
    headless): a layer pick took 213 ms with five app pages opened after the explorer's, and
    155 ms once it was brought to the front again."""
    page.bring_to_front()
    page.evaluate(FRAMES)
    return page


def timed(page: Page, action: Callable[[], None], quiet: float) -> Run | None:
    """Time ``action`` to the end of the script run it causes; done again once if no run
    starts (a key press lost while the page takes focus); None if still none starts (a
    Streamlit slider now and then sends its change seconds late: that sample is lost and
    counted, not timed)."""
    for _ in range(2):
        since = page.evaluate("performance.now()")
        action()
        got = settle(page, since, quiet, START_MS)
        if got is not None:
            return got
    page.wait_for_function(SETTLED, arg=[0, quiet], polling=50, timeout=TIMEOUT_MS)
    return None


def _loaded(page: Page, quiet: float) -> Run:
    got = settle(page, 0.0, quiet)
    if got is None:
        raise RuntimeError(f"{page.url}: no script run")
    return got


def check(page: Page, title: str | None = None) -> None:
    """The page shows what it should: its title, no exception, no 'Page not found'."""
    if title is not None:
        h1 = page.locator("h1").first.inner_text(timeout=TIMEOUT_MS).strip()
        if h1 != title:
            raise RuntimeError(f"{page.url}: expected the title {title!r}, got {h1!r}")
    for what in ('[data-testid="stException"]', "text=Page not found"):
        if page.locator(what).count():
            raise RuntimeError(f"{page.url} shows {what}")


def cold(browser: Browser, url: str, title: str, quiet: float) -> Run:
    """Open ``url`` in a new context (a new session, an empty browser cache) and time it."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        context.add_init_script(RUN_LOG)
        page = context.new_page()
        page.goto(url, wait_until="commit", timeout=TIMEOUT_MS)
        got = _loaded(page, quiet)
        check(page, title)
        return got
    finally:
        context.close()


@contextlib.contextmanager
def opened(browser: Browser, url: str, title: str, quiet: float) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)
    try:
        context.add_init_script(RUN_LOG)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url, timeout=TIMEOUT_MS)
        _loaded(page, quiet)
        check(page, title)
        yield page
    finally:
        context.close()


# ----------------------------------------------------------------------------- what is timed

# path -> (title, the trivial page it is compared with: "/" for "/", "/two" for the others,
# which like the app's other pages are opened by their own path)
PAGES = {
    "/": "Compare architectures",
    "/explorer": "Layer explorer",
    "/rf-lab": "Receptive-field lab",
    "/shortcut-lab": "ResNet shortcut lab",
    "/custom": "Custom model",
    "/timing": "Timing",
}
TRIVIAL_TITLES = {"/": "One", "/two": "Two"}


def trivial_path(path: str) -> str:
    return "/" if path == "/" else "/two"


def _slider(name: str) -> Callable[[Page, int], Callable[[], None]]:
    """Move the slider ``name`` one step, right in even steps and back left in odd ones."""

    def prepare(page: Page, i: int) -> Callable[[], None]:
        thumb = page.get_by_role("slider", name=name)
        thumb.wait_for()
        return lambda: thumb.press("ArrowLeft" if i % 2 else "ArrowRight")

    return prepare


def _select(label: str, options: tuple[str, str]) -> Callable[[Page, int], Callable[[], None]]:
    """Pick the selectbox ``label``'s option (the two alternate); only the Enter is timed."""

    def prepare(page: Page, i: int) -> Callable[[], None]:
        box = page.get_by_role("combobox", name=label, exact=True)
        option = options[i % 2]
        box.click()
        box.fill(option)
        page.get_by_role("option", name=option, exact=True).wait_for()
        return lambda: box.press("Enter")

    return prepare


def _segment(group: str, options: tuple[str, str]) -> Callable[[Page, int], Callable[[], None]]:
    def prepare(page: Page, i: int) -> Callable[[], None]:
        button = page.get_by_role("radiogroup", name=group).get_by_role(
            "radio", name=options[i % 2], exact=True
        )
        button.wait_for()
        return lambda: button.click()

    return prepare


def _add_model(name: str) -> Callable[[Page, int], Callable[[], None]]:
    """Add ``name`` to Compare's models (timed from the Enter); it is removed again after the
    measurement, untimed (see _remove_model)."""

    def prepare(page: Page, i: int) -> Callable[[], None]:
        box = page.get_by_role("combobox", name="Models", exact=True)
        if page.get_by_test_id("stMultiSelect").get_by_text(name, exact=True).count():
            # a step whose run went unseen (timed's retry) left it selected, and the menu
            # offers no model twice: take it off again first, untimed
            _remove_model(page, QUIET)
        box.click()
        box.fill(name)
        page.get_by_role("option", name=name, exact=True).wait_for()
        return lambda: box.press("Enter")

    return prepare


def _remove_model(page: Page, quiet: float) -> None:
    box = page.get_by_role("combobox", name="Models", exact=True)
    timed(page, lambda: box.press("Backspace"), quiet)  # drops the last model: the added one
    page.keyboard.press("Escape")


@dataclass
class Interaction:
    name: str
    path: str  # the page it happens on (opened once, kept open over the rounds)
    prepare: Callable[[Page, int], Callable[[], None]]  # untimed set-up; returns the action
    after: Callable[[Page, float], None] | None = None  # untimed clean-up
    floor: bool = False  # also done on the floor page (its widget is there, same options)


INTERACTIONS = [
    Interaction(
        "explorer: pick a layer",
        "/explorer",
        _select("Selected layer", ("layer2.0.conv2", "layer3.0.conv2")),
        floor=True,
    ),
    Interaction("explorer: move a unit slider", "/explorer", _slider("unit row")),
    Interaction("shortcut-lab: shortcut type", "/shortcut-lab", _segment("shortcut", ("A", "B"))),
    Interaction("rf-lab: n", "/rf-lab", _slider("n (layers)")),
    Interaction("rf-lab: k", "/rf-lab", _slider("k (kernel)")),
    Interaction("compare: pick another model", "/", _add_model("resnet18"), _remove_model),
]


# ----------------------------------------------------------------------------- the run


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    quiet = args.quiet
    pages = [p for p in PAGES if _wanted(f"{p} {PAGES[p]}", args.only)]
    interactions = [x for x in INTERACTIONS if _wanted(x.name, args.only)]
    cold_items = {p: Item("cold", p) for p in pages}
    rerun_items = {x.name: Item("rerun", x.name) for x in interactions}
    loads: list[list[float]] = [list(os.getloadavg())]
    any_floor = any(x.floor for x in interactions)
    with servers(any_floor) as (app, trivial, floor), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        try:
            # Warm-up, untimed: imports, st.cache_data, the browser's first start.
            for p in pages:
                cold(browser, app + p, PAGES[p], quiet)
                cold(browser, trivial + trivial_path(p), TRIVIAL_TITLES[trivial_path(p)], quiet)
            with contextlib.ExitStack() as stack:
                # Each interaction gets its own trivial tab beside its app tab, used right
                # before or after it: both have sat idle as long when their step comes. One
                # shared trivial tab, stepped after every interaction, was never idle for more
                # than a second while each app tab waited a whole round; a tab that has sat
                # idle for seconds answers its next step slower (bench/README.md, 2026-12-04).
                # A combobox interaction gets a floor tab too, stepped beside the other two.
                tabs: dict[tuple[str, str], Page] = {}
                for x in interactions:
                    opening = [("app", app + x.path, PAGES[x.path]), ("trivial", trivial, "One")]
                    if x.floor:
                        opening.append(("floor", floor, "One"))
                    for side, url, title in opening:
                        tab = opened(browser, url if side == "app" else url + "/", title, quiet)
                        tabs[side, x.name] = stack.enter_context(tab)
                steps = {key: 0 for key in tabs}

                def step(side: str, x: Interaction) -> Run | None:
                    page, i = front(tabs[side, x.name]), steps[side, x.name]
                    if side == "trivial":
                        got = timed(page, _slider("value")(page, i), quiet)
                    else:  # the app's page, or the floor page with the same widget
                        got = timed(page, x.prepare(page, i), quiet)
                        check(page)
                        if x.after is not None:
                            x.after(page, quiet)
                    steps[side, x.name] += 1
                    return got

                for x in interactions:  # warm-up: each step twice, there and back
                    for side in ("app", "trivial", "floor") if x.floor else ("app", "trivial"):
                        step(side, x), step(side, x)
                for rnd in range(args.rounds):
                    flip = rnd % 2 == 1  # which side goes first alternates by round
                    for p, item in cold_items.items():
                        t_url = trivial + trivial_path(p)
                        sides = [
                            ("app", lambda p=p: cold(browser, app + p, PAGES[p], quiet)),
                            (
                                "trivial",
                                lambda u=t_url, p=p: cold(
                                    browser, u, TRIVIAL_TITLES[trivial_path(p)], quiet
                                ),
                            ),
                        ]
                        _record(item, sides[::-1] if flip else sides)
                    for x in interactions:
                        names = ["app", "trivial", "floor"] if x.floor else ["app", "trivial"]
                        names = names[rnd % len(names) :] + names[: rnd % len(names)]
                        sides = [(n, lambda n=n, x=x: step(n, x)) for n in names]
                        _record(rerun_items[x.name], sides)
                    loads.append(list(os.getloadavg()))
                    if not args.silent:
                        print(f"round {rnd + 1}/{args.rounds} done, load {loads[-1][0]:.2f}")
            chromium_version = browser.version
        finally:
            browser.close()
    rows = [i.row() for i in [*cold_items.values(), *rerun_items.values()]]
    return {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "target": TARGET,
        "rounds": args.rounds,
        "quiet_ms": quiet,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_start": loads[0],
            "load_average_end": loads[-1],
            "load_average_per_round": loads[1:],
        },
        "versions": _versions(chromium_version),
        "rows": rows,
    }


def _record(item: Item, sides: list[tuple[str, Callable[[], Run]]]) -> None:
    for side, fn in sides:
        got = fn()
        if got is None:
            item.lost += 1
        elif side == "floor":
            item.floor.append(got.total)
        elif side == "app":
            item.app.append(got.total)
            item.app_run.append(got.run)
            item.app_runs.append(got.runs)
            item.app_driver.append(got.driver)
        else:
            item.trivial.append(got.total)
            item.trivial_run.append(got.run)
            item.trivial_driver.append(got.driver)


def _wanted(name: str, only: list[str] | None) -> bool:
    """Whether --only selects ``name`` (a page's path and title, or an interaction's name).

    >>> _wanted("/ Compare architectures", ["compare"]), _wanted("rf-lab: n", ["explorer"])
    (True, False)
    """
    return not only or any(o.lower() in name.lower() for o in only)


def _versions(chromium: str) -> dict[str, str]:
    from importlib.metadata import version

    out = {"python": platform.python_version(), "chromium": chromium}
    for dist in ("streamlit", "playwright", "torch"):
        with contextlib.suppress(Exception):
            out[dist] = version(dist)
    return out


def report(result: dict[str, Any]) -> str:
    m = result["machine"]
    load = ", ".join(f"{x:.2f}" for x in m["load_average_start"])
    load_end = ", ".join(f"{x:.2f}" for x in m["load_average_end"])
    v = result["versions"]
    lines = [
        f"cnnviz app against a trivial Streamlit app, {result['date']}",
        f"{result['rounds']} interleaved rounds, medians; settled = notRunning for "
        f"{result['quiet_ms']:g} ms; target: ratio <= {result['target']}",
        "reruns are timed from the input event (key or pointer press), cold renders from the "
        "navigation's start",
        f"machine: {m['platform']}, {m['cpus']} CPUs, load average {load} (start), "
        f"{load_end} (end)",
        f"streamlit {v.get('streamlit', '?')}, chromium {v['chromium']}, python {v['python']}",
        "",
        table(result["rows"]),
        "",
    ]
    if any(r["floor_ms"] == r["floor_ms"] for r in result["rows"]):  # not NaN: timed
        lines.append(
            "floor: the same pick (its Enter timed the same way) on the trivial page with the "
            "explorer's selectbox of ResNet-50's layers added; app/floor: the app's median "
            "over it, what the page adds to its widget"
        )
    ok = sum(r["verdict"] == "ok" for r in result["rows"])
    slow = [r["name"] for r in result["rows"] if r["verdict"] == "SLOW"]
    lines.append(
        f"{ok} of {len(result['rows'])} within the target"
        + (f"; over it: {', '.join(slow)}" if slow else "")
    )
    lost = {r["name"]: r["raw"]["lost"] for r in result["rows"] if r["raw"].get("lost")}
    if lost:
        lines.append(
            "actions that started no script run (not timed): "
            + ", ".join(f"{name} {n}" for name, n in lost.items())
        )
    return "\n".join(lines) + "\n"


def _no_nan(x: Any) -> Any:
    """NaN (a ratio with nothing measured) as null: JSON has no NaN."""
    if isinstance(x, float) and x != x:
        return None
    if isinstance(x, dict):
        return {k: _no_nan(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_no_nan(v) for v in x]
    return x


def out_paths(folder: Path, date: str) -> tuple[Path, Path]:
    """bench/results/app_speed_<date>.txt/.json, with _2, _3... for a second run that day."""
    stem = results_path.free_stem(folder, f"app_speed_{date}")
    return stem.with_suffix(".txt"), stem.with_suffix(".json")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5)")
    p.add_argument("--quick", action="store_true", help="2 rounds (unless --rounds is given)")
    p.add_argument(
        "--only", nargs="+", metavar="TEXT", help="only the pages and interactions naming TEXT"
    )
    p.add_argument("--quiet", type=float, default=QUIET, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for the results files")
    p.add_argument("--no-save", action="store_true", help="print only; write no files")
    p.add_argument("--chromium", default=CHROMIUM, help=argparse.SUPPRESS)
    p.add_argument("--silent", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.rounds is None:
        args.rounds = 2 if args.quick else 5
    result = measure(args)
    text = report(result)
    print(text, end="")
    if not args.no_save:
        args.out.mkdir(parents=True, exist_ok=True)
        txt, js = out_paths(args.out, result["date"][:10])
        txt.write_text(text)
        js.write_text(json.dumps(_no_nan(result), indent=1) + "\n")
        print(f"wrote {txt.relative_to(ROOT) if txt.is_relative_to(ROOT) else txt} and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
