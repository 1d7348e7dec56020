"""Many visitors at once: N headless Chromium sessions browse every page of one app server.

Run from the repository root (Chromium at /usr/bin/chromium, playwright from
requirements-dev.txt):

    python bench/app_load.py                          # 5, 10 and 20 sessions, 120 s each
    python bench/app_load.py --sessions 5 --duration 60
    python bench/app_load.py --sessions 5 --compute   # a Timing run and an ERF run beside them

For each session count it starts a fresh server the way the Docker image does
(docker/start.sh, production settings) on 127.0.0.1, and one headless Chromium with one
browser context per session. Every session visits the app's pages in turn, each session
starting at a different page, until ``--duration`` is over (the visit under way finishes;
none lasts over ``--timeout``). A visit is ``page.goto`` until the page shows its title and
reports its script run over (``data-test-script-state="notRunning"`` on ``stApp``, no
"Running" widget) for ``--quiet`` ms: that time is the render time.

Errors, per visit: an exception box on the page (``stException``), an error on the browser
console (except the two known 404 probes of ``/<page>/_stcore/health`` and ``host-config``
that Streamlit's frontend makes on a direct load of a page other than ``/``), a failed
request, or a visit over ``--timeout``. A process of its own probes ``/_stcore/health`` every
0.5 s and records each answer's latency (a probe without an answer in 5 s counts as 5 s and a
failure).

With ``--compute`` two more contexts run real compute beside the browsing sessions: the
Timing page runs VGG-19 at batches 2-64 (the request that once held the compute lock for
144 s; now bounded to 90 s) and the explorer measures an effective RF of ResNet-50 with 16
samples. They are not counted as browsing visits; their outcome is reported apart.

Targets (issue #13, section 3): 20 sessions with 0 errors; ``/_stcore/health`` under 1 s
throughout; a Timing or ERF run never fails another session's page. Results go to
bench/results/app_load_<date>.txt and .json (``_compute`` with ``--compute``, ``_2``, ``_3``
for a later run that day). It is a benchmark, not a test: it exits 0 even when a target
fails. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results_path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
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
#: Every page, with the title its visit waits for.
PAGES = {
    "/": "Compare architectures",
    "/explorer": "Layer explorer",
    "/rf-lab": "Receptive-field lab",
    "/shortcut-lab": "ResNet shortcut lab",
    "/custom": "Custom model",
    "/timing": "Timing",
}
HEALTH_EVERY_S = 0.5
HEALTH_TIMEOUT_S = 5.0
TARGET_HEALTH_S = 1.0
_PROBE = re.compile(r"^/.+/_stcore/(health|host-config)$")  # see tests/e2e/conftest.py

_IDLE = """([title, quiet]) => {
    const app = document.querySelector('[data-testid="stApp"]');
    const h1 = document.querySelector('h1');
    const idle = app && app.getAttribute('data-test-script-state') === 'notRunning'
        && app.getAttribute('data-test-connection-state') === 'CONNECTED'
        && !document.querySelector('[data-testid="stStatusWidget"]')
        && h1 && h1.textContent.trim() === title;
    const now = performance.now();
    if (!idle) { window.__idleSince = undefined; return false; }
    if (window.__idleSince === undefined) window.__idleSince = now;
    return now - window.__idleSince >= quiet;
}"""


# --------------------------------------------------------------------------- the server
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.read().decode()
    except OSError:
        return None


@contextlib.contextmanager
def running_app(timeout: float = 120) -> Iterator[tuple[str, int]]:
    """The app started as the Docker image starts it, on a free loopback port; yields its URL
    and the server's pid (start.sh execs streamlit), and stops it whatever happens."""
    port = _free_port()
    env = dict(
        os.environ,
        PORT=str(port),
        ADDRESS="127.0.0.1",
        STREAMLIT=str(Path(sys.executable).parent / "streamlit"),
    )
    proc = subprocess.Popen(
        ["sh", str(ROOT / "docker" / "start.sh")],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while _get(f"{url}/_stcore/health", 2) != "ok":
            if proc.poll() is not None:
                raise RuntimeError(f"the app exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no healthy server at {url} after {timeout} s")
            time.sleep(0.3)
        yield url, proc.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _rss_mib(pid: int) -> dict[str, float]:
    """The server's resident memory now and at its peak (Linux /proc), in MiB."""
    out: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
    return out


class HealthProbe:
    """GET /_stcore/health every 0.5 s until stopped; keeps every latency (seconds).

    The probe runs in a process of its own: a thread in this one timed its own wait for this
    process's interpreter lock, which the browser sessions' event loop holds, and not only
    the server's answer.
    """

    def __init__(self, url: str) -> None:
        self.url = f"{url}/_stcore/health"
        self.latencies: list[float] = []
        self.times: list[float] = []  # time.monotonic() of each probe (one clock system-wide)
        self.failures = 0
        self._proc: subprocess.Popen | None = None

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, __file__, "--probe", self.url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def stop(self) -> None:
        assert self._proc is not None, "start() first"
        out, _ = self._proc.communicate("", timeout=HEALTH_TIMEOUT_S + 10)  # EOF: stop
        for line in out.splitlines():
            at, took, ok = line.split()
            self.times.append(float(at))
            self.latencies.append(float(took))
            self.failures += ok != "1"


def probe_until_eof(url: str) -> None:
    """The probe process: one line ``<monotonic> <seconds> <ok>`` per probe on stdout, until
    stdin closes."""
    halt = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), halt.set()), daemon=True).start()
    while not halt.is_set():
        t0 = time.perf_counter()
        at = time.monotonic()
        ok = _get(url, HEALTH_TIMEOUT_S) == "ok"
        took = time.perf_counter() - t0
        print(f"{at:.4f} {took if ok else max(took, HEALTH_TIMEOUT_S):.4f} {int(ok)}", flush=True)
        halt.wait(max(0.0, HEALTH_EVERY_S - took))


# --------------------------------------------------------------------------- the sessions
@dataclass
class Visit:
    session: int
    path: str
    seconds: float
    error: str | None = None
    end: float = 0.0  # time.monotonic() when it ended


@dataclass
class Compute:
    what: str
    seconds: float
    outcome: str


@dataclass
class Level:
    sessions: int
    duration_s: float
    compute: bool
    nice_browsers: int = 0
    visits: list[Visit] = field(default_factory=list)
    computes: list[Compute] = field(default_factory=list)
    health: list[float] = field(default_factory=list)
    health_times: list[float] = field(default_factory=list)
    health_failures: int = 0
    server_mib: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        ok = [v.seconds for v in self.visits if v.error is None]
        # The server's cold start: until every session has rendered its first page, the
        # first page runs import torch, plotly and pandas (C extensions hold the GIL).
        firsts: dict[int, float] = {}
        for v in sorted(self.visits, key=lambda v: v.end):
            firsts.setdefault(v.session, v.end)
        warm_from = max(firsts.values(), default=float("inf"))
        warm = [h for h, t in zip(self.health, self.health_times, strict=True) if t > warm_from]
        errors = [v for v in self.visits if v.error is not None]
        kinds: dict[str, int] = {}
        for v in errors:
            kind = v.error.split(":")[0]
            kinds[kind] = kinds.get(kind, 0) + 1
        return {
            "sessions": self.sessions,
            "duration_s": self.duration_s,
            "compute": self.compute,
            "nice_browsers": self.nice_browsers,
            "visits": len(self.visits),
            "errors": len(errors),
            "error_kinds": kinds,
            "render_median_s": _pct(ok, 50),
            "render_p95_s": _pct(ok, 95),
            "render_max_s": max(ok, default=None),
            "health_probes": len(self.health),
            "health_failures": self.health_failures,
            "health_median_s": _pct(self.health, 50),
            "health_p95_s": _pct(self.health, 95),
            "health_max_s": max(self.health, default=None),
            "health_max_warm_s": max(warm, default=None),
            "health_over_1s": sum(h >= TARGET_HEALTH_S for h in self.health),
            "server_rss_mib": self.server_mib.get("VmRSS"),
            "server_peak_rss_mib": self.server_mib.get("VmHWM"),
            "computes": [asdict(c) for c in self.computes],
            # every probe: seconds since the first one, latency; and when the cold start ended
            "first_visits_done_s": _round(warm_from - self.health_times[0])
            if self.health_times and warm_from != float("inf")
            else None,
            "health_series": [
                [_round(t - self.health_times[0]), _round(h)]
                for t, h in zip(self.health_times, self.health, strict=True)
            ],
        }


def _round(x: float) -> float:
    return round(x, 3)


def _pct(values: list[float], p: float) -> float | None:
    """The p-th percentile (nearest rank) of ``values``; None when there are none.

    >>> _pct([1.0, 2.0, 3.0, 4.0], 50), _pct([1.0, 2.0, 3.0, 4.0], 95), _pct([], 50)
    (2.0, 4.0, None)
    """
    if not values:
        return None
    ranked = sorted(values)
    k = max(0, min(len(ranked) - 1, -(-len(ranked) * p // 100) - 1))
    return ranked[int(k)]


def _benign(url: str, status: int | None) -> bool:
    return status == 404 and bool(_PROBE.match(urlsplit(url).path))


async def _visit(page, path: str, args) -> str | None:
    """Load ``path`` and wait until it is idle; the error, or None."""
    problems: list[str] = []

    def on_console(msg) -> None:
        where = msg.location.get("url", "") if msg.location else ""
        probe = msg.text.startswith("Failed to load resource") and _benign(where, 404)
        if msg.type == "error" and not probe:
            problems.append(f"console: {msg.text[:200]}")

    def on_response(response) -> None:
        if response.status >= 400 and not _benign(response.url, response.status):
            problems.append(f"request: {response.status} {response.url}")

    page.on("console", on_console)
    page.on("response", on_response)
    try:
        await page.goto(path, timeout=args.timeout * 1000, wait_until="commit")
        await page.wait_for_function(
            _IDLE, arg=[PAGES[path], args.quiet], timeout=args.timeout * 1000, polling=100
        )
        if await page.locator('[data-testid="stException"]').count():
            text = await page.locator('[data-testid="stException"]').first.inner_text()
            problems.append(f"exception: {text[:200]}")
    except Exception as e:  # playwright's TimeoutError, a crashed page
        name = "timeout" if "Timeout" in type(e).__name__ else type(e).__name__
        problems.append(f"{name}: {str(e).splitlines()[0][:200]}")
    finally:
        page.remove_listener("console", on_console)
        page.remove_listener("response", on_response)
    return problems[0] if problems else None


async def _browse(browser, url: str, i: int, deadline: float, level: Level, args) -> None:
    paths = list(PAGES)
    context = await browser.new_context(base_url=url, viewport=VIEWPORT)
    try:
        page = await context.new_page()
        n = i  # each session starts at another page
        while time.monotonic() < deadline:
            path = paths[n % len(paths)]
            t0 = time.perf_counter()
            error = await _visit(page, path, args)
            level.visits.append(Visit(i, path, time.perf_counter() - t0, error, time.monotonic()))
            n += 1
            if error is not None:  # a fresh page after a failure, as a visitor would reload
                await page.close()
                page = await context.new_page()
    finally:
        await context.close()


async def _compute(browser, url: str, what: str, level: Level, args) -> None:
    """One Timing run or one ERF measurement in its own context, until it is over."""
    context = await browser.new_context(base_url=url, viewport=VIEWPORT)
    t0 = time.perf_counter()
    outcome = "?"
    try:
        page = await context.new_page()
        if what == "timing":
            path, button = (
                "/timing?t_models=vgg19&"
                + "&".join(f"t_batches={b}" for b in (2, 4, 8, 16, 32, 64)),
                "Run",
            )
            title = "Timing"
        else:
            path, button, title = (
                "/explorer?model=resnet50&erf_n=16",
                "Measure ERF",
                "Layer explorer",
            )
        await page.goto(path, timeout=args.timeout * 1000)
        await page.wait_for_function(_IDLE, arg=[title, args.quiet], timeout=args.timeout * 1000)
        await page.get_by_role("button", name=button, exact=True).click()
        # the run has started once its progress bar shows (a busy server may take a while)
        await page.locator('[data-testid="stProgress"]').first.wait_for(timeout=300_000)
        await page.wait_for_function(_IDLE, arg=[title, args.quiet], timeout=300_000)
        if await page.locator('[data-testid="stException"]').count():
            outcome = "exception"
        elif what == "timing":
            try:  # the table's component loads lazily, after the run is over
                await page.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=30_000)
                outcome = "table shown"
            except Exception:
                alerts = page.locator('[data-testid="stAlertContentError"]')
                said = [t[:160] for t in await alerts.all_inner_texts()]
                outcome = f"no table; errors: {said}"
        else:
            charts = await page.locator('[data-testid="stPlotlyChart"]').count()
            outcome = f"{charts} charts"
    except Exception as e:
        outcome = f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
    finally:
        level.computes.append(Compute(what, time.perf_counter() - t0, outcome))
        await context.close()


def _chromium(nice: int) -> str:
    """Chromium, or a wrapper that starts it ``nice`` steps below normal CPU priority.

    Chromium sets its threads' priorities itself (renderers back to nice 0, compositor and
    IO threads to -8): run as root, which may lower a nice value, it undid ``nice`` and its
    threads outranked the server. As root the wrapper therefore also drops CAP_SYS_NICE
    (``setpriv``), so no thread of the browser can go below ``nice``.
    """
    if not nice:
        return CHROMIUM
    import shutil
    import tempfile

    wrapper = Path(tempfile.mkdtemp(prefix="app_load_")) / "chromium"
    keep = ""
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            raise RuntimeError("--nice-browsers as root needs setpriv (util-linux)")
        keep = f"{setpriv} --bounding-set=-sys_nice --inh-caps=-sys_nice -- "
    wrapper.write_text(f'#!/bin/sh\nexec {keep}nice -n {int(nice)} {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


async def _run_level(url: str, sessions: int, args) -> Level:
    from playwright.async_api import async_playwright

    level = Level(sessions, args.duration, args.compute, args.nice_browsers)
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=_chromium(args.nice_browsers), args=CHROMIUM_ARGS
        )
        try:
            deadline = time.monotonic() + args.duration
            jobs = [_browse(browser, url, i, deadline, level, args) for i in range(sessions)]
            if args.compute:
                jobs += [_compute(browser, url, w, level, args) for w in ("timing", "erf")]
            await asyncio.gather(*jobs)
        finally:
            await browser.close()
    return level


def run_level(sessions: int, args) -> Level:
    with running_app() as (url, pid):
        probe = HealthProbe(url)
        probe.start()
        try:
            level = asyncio.run(_run_level(url, sessions, args))
        finally:
            probe.stop()
        level.health, level.health_failures = probe.latencies, probe.failures
        level.health_times = probe.times
        level.server_mib = _rss_mib(pid)
    return level


# --------------------------------------------------------------------------- report
def _s(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def report(levels: list[Level]) -> str:
    lines = [
        f"app_load {dt.datetime.now().isoformat(timespec='seconds')} on {platform.node()} "
        f"({os.cpu_count()} CPUs, Python {platform.python_version()})",
        "",
        "| sessions | compute | browsers | visits | errors | render median s | render p95 s "
        "| render max s "
        "| health median s | health p95 s | health max s (after the first visits) "
        "| server RSS MiB (peak) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for lv in levels:
        s = lv.summary()
        lines.append(
            f"| {s['sessions']} | {'yes' if s['compute'] else 'no'} | "
            f"{f'nice {n}' if (n := s['nice_browsers']) else 'normal'} | {s['visits']} | "
            f"{s['errors']} | {_s(s['render_median_s'])} | {_s(s['render_p95_s'])} | "
            f"{_s(s['render_max_s'])} | {_s(s['health_median_s'])} | {_s(s['health_p95_s'])} | "
            f"{_s(s['health_max_s'])} ({_s(s['health_max_warm_s'])}) | "
            f"{_s(s['server_rss_mib'])} "
            f"({_s(s['server_peak_rss_mib'])}) |"
        )
    lines.append("")
    for lv in levels:
        s = lv.summary()
        if s["error_kinds"]:
            lines.append(f"{s['sessions']} sessions, errors by kind: {s['error_kinds']}")
            lines += [f"  {v.path}: {v.error}" for v in lv.visits if v.error][:10]
        for c in lv.computes:
            lines.append(f"{s['sessions']} sessions, {c.what}: {c.outcome} in {c.seconds:.0f} s")
    lines.append("")
    for lv in levels:
        s = lv.summary()
        zero = "PASS" if s["errors"] == 0 else "FAIL"
        fast = "PASS" if (s["health_max_s"] or 0) < TARGET_HEALTH_S else "FAIL"
        lines.append(
            f"{s['sessions']} sessions{' + compute' if s['compute'] else ''}: 0 errors {zero}; "
            f"health under {TARGET_HEALTH_S:g} s throughout {fast} (max {_s(s['health_max_s'])})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--probe"]:  # HealthProbe's own process
        probe_until_eof(argv[1])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, nargs="+", default=[5, 10, 20])
    ap.add_argument("--duration", type=float, default=120.0, help="seconds of browsing")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds one visit may take")
    ap.add_argument("--quiet", type=int, default=300, help="ms a page must stay idle")
    ap.add_argument("--compute", action="store_true", help="a Timing and an ERF run beside")
    ap.add_argument(
        "--nice-browsers",
        type=int,
        default=0,
        metavar="N",
        help="run Chromium N steps below normal CPU priority (visitors' browsers run on their "
        "own machines; on one machine they take the server's CPU)",
    )
    ap.add_argument("--out", type=Path, default=None, help="results prefix (no suffix)")
    args = ap.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} not found: apt-get install chromium")
        return 0
    levels = []
    for n in args.sessions:
        print(f"{n} sessions for {args.duration:g} s{' with compute' if args.compute else ''}…")
        levels.append(run_level(n, args))
        print(report(levels[-1:]).splitlines()[4])
    text = report(levels)
    print(text)
    stem = args.out or free_stem(RESULTS, dt.date.today().isoformat(), args.compute)
    Path(stem).parent.mkdir(parents=True, exist_ok=True)
    Path(f"{stem}.txt").write_text(text + "\n")
    Path(f"{stem}.json").write_text(
        json.dumps([lv.summary() for lv in levels], indent=1, default=str) + "\n"
    )
    print(f"results: {stem}.txt, {stem}.json")
    return 0


def free_stem(folder: Path, date: str, compute: bool) -> Path:
    """results/app_load_<date>[_compute], with _2, _3... where a run of that day is there.

    >>> import tempfile
    >>> free_stem(Path(tempfile.mkdtemp()), "2026-12-03", True).name
    'app_load_2026-12-03_compute'
    """
    return results_path.free_stem(folder, f"app_load_{date}{'_compute' if compute else ''}")


if __name__ == "__main__":
    sys.exit(main())
