"""bench/gpu_check.py runs end to end (on the CPU here), so a lent GPU's minutes are not spent
finding a bug in the script. What it measures is not asserted: timing belongs to benchmarks."""

from __future__ import annotations

import doctest
import importlib.util
import itertools
import json
import statistics
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_gpu_check_dry_run_on_cpu(gpu_check, tmp_path, capsys):
    out = tmp_path / "check.json"
    rc = gpu_check.main(
        ["--device", "cpu", "--models", "resnet20", "--batches", "1", "2", "--dtypes",
         "float32", "--rounds", "3", "--time", "0.02", "--json", str(out)]
    )  # fmt: skip
    text = capsys.readouterr().out
    rows = json.loads(out.read_text())
    assert [(r["model"], r["batch_size"]) for r in rows] == [("resnet20", 1), ("resnet20", 2)]
    for r in rows:
        # three paired rounds per side, and the verdict follows the tolerance
        assert len(r["cnnviz_ms_rounds"]) == len(r["reference_ms_rounds"]) == 3
        # the verdict: within 3 %, or within the reference's own round-to-round change
        refs = r["reference_ms_rounds"]
        noise = statistics.median(abs(b / a - 1) for a, b in itertools.pairwise(refs))
        assert r["ref_noise"] == pytest.approx(noise)
        assert r["verdict"] == ("ok" if abs(r["diff"]) <= max(0.03, noise) else "DIFFERS")
        assert r["graph_ms"] is None  # CUDA graphs are a GPU's: none on the CPU
    assert rc == (0 if all(r["verdict"] == "ok" for r in rows) else 1)
    assert "configurations within 3% (or the reference's noise) of torch.utils" in text


def test_gpu_profile_dry_run_on_cpu(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("gpu_profile", ROOT / "bench" / "gpu_profile.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "profile.json"
    argv = ["--device", "cpu", "resnet20:1:float32", "--rounds", "2", "--time", "0.02"]
    assert mod.main([*argv, "--json", str(out)]) == 0
    (o,) = json.loads(out.read_text())
    # both copies under both timers, and benchmark() itself, once per round
    assert sorted(o["cells"]) == sorted(
        ["ref/tb", "ours/tb", "ref/blocks", "ours/blocks", "benchmark()"]
    )
    assert all(len(v) == 2 and min(v) > 0 for v in o["cells"].values())
    assert o["ref"]["host_ms"] > 0 and o["ours"]["graph_ms"] == "no CUDA"
    assert "kernels whose counts differ" in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_gpu_check_without_a_gpu_says_so(gpu_check, capsys):
    assert gpu_check.main([]) == 0
    assert "no CUDA device" in capsys.readouterr().out


# bench/app_speed.py: its arithmetic on fake timings, and one very quick real run.


@pytest.fixture(scope="module")
def app_speed():
    spec = importlib.util.spec_from_file_location("app_speed", ROOT / "bench" / "app_speed.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["app_speed"] = mod  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop("app_speed", None)


def test_app_speed_doctests(app_speed):
    assert doctest.testmod(app_speed).failed == 0


def test_app_speed_ratios_on_fake_timings(app_speed, tmp_path):
    slow = app_speed.Item("rerun", "explorer: pick a layer", [300, 100, 200], [100, 90, 110])
    slow.floor = [150, 170, 160]  # the same pick on the floor page: 200 / 160 = 1.25
    slow.lost = 2  # two actions started no run: reported, and not in the medians
    at_target = app_speed.Item("cold", "/rf-lab", [150, 140, 160, 900], [100, 95, 105, 99])
    empty = app_speed.Item("cold", "/timing")
    rows = [slow.row(), at_target.row(), empty.row()]
    # medians over medians: 200 / 100, and 155 / 99.5 (even counts take the middle two)
    assert rows[0]["ratio"] == 2.0 and rows[0]["verdict"] == "SLOW"
    assert rows[1]["ratio"] == pytest.approx(155 / 99.5) and rows[1]["verdict"] == "SLOW"
    assert app_speed.verdict(1.5) == "ok"  # the target is inclusive
    assert rows[2]["verdict"] == "n/a"
    assert rows[0]["floor_ms"] == 160 and rows[0]["over_floor"] == 1.25
    assert rows[1]["over_floor"] != rows[1]["over_floor"]  # no floor: NaN, shown as "-"
    result = {
        "date": "2026-01-02T03:04:05+00:00",
        "target": 1.5,
        "rounds": 3,
        "quiet_ms": 300.0,
        "machine": {
            "platform": "test",
            "cpus": 2,
            "load_average_start": [1.0, 2.0, 3.0],
            "load_average_end": [1.5, 2.0, 3.0],
            "load_average_per_round": [],
        },
        "versions": {"python": "3", "chromium": "1", "streamlit": "1.67.0"},
        "rows": rows,
    }
    text = app_speed.report(result)
    assert "load average 1.00, 2.00, 3.00 (start)" in text
    assert "explorer: pick a layer" in text and "2.00" in text and "1.56" in text
    assert "0 of 3 within the target" in text
    pick = next(line for line in text.splitlines() if line.startswith("rerun  explorer"))
    assert pick.split()[-2:] == ["160", "1.25"]
    assert "floor: the same pick" in text
    assert "started no script run (not timed): explorer: pick a layer 2" in text
    # the JSON has no NaN (the empty row's ratio is null), and a second run of a day gets _2
    json.loads(json.dumps(app_speed._no_nan(result), allow_nan=False))
    txt, js = app_speed.out_paths(tmp_path, "2026-01-02")
    assert (txt.name, js.name) == ("app_speed_2026-01-02.txt", "app_speed_2026-01-02.json")
    txt.write_text("")
    assert app_speed.out_paths(tmp_path, "2026-01-02")[1].name == "app_speed_2026-01-02_2.json"


# bench/app_load.py: the health probe, in its own process, against a local server.


@pytest.fixture(scope="module")
def app_load():
    spec = importlib.util.spec_from_file_location("app_load", ROOT / "bench" / "app_load.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["app_load"] = mod  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop("app_load", None)


def test_health_probe_records_each_answer_from_its_own_process(app_load):
    import http.server
    import threading
    import time

    seen, enough = [], threading.Event()

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # "ok" on the first two probes, then a 503
            seen.append(self.path)
            ok = len(seen) <= 2
            body = b"ok" if ok else b"busy"
            self.send_response(200 if ok else 503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            if len(seen) >= 3:
                enough.set()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        probe = app_load.HealthProbe(f"http://127.0.0.1:{server.server_port}")
        t0 = time.monotonic()
        probe.start()
        assert enough.wait(60), "no three probes within 60 s"
        probe.stop()
    finally:
        server.shutdown()
    n = len(probe.latencies)
    assert n >= 3 and len(probe.times) == n
    assert probe.failures == n - 2  # every probe after the second got the 503
    assert probe.latencies[2] == app_load.HEALTH_TIMEOUT_S  # a failed probe counts as 5 s
    assert all(0 < t < app_load.HEALTH_TIMEOUT_S for t in probe.latencies[:2])
    assert all(t0 <= t for t in probe.times) and probe.times == sorted(probe.times)
    assert set(seen) == {"/_stcore/health"}


def test_app_load_never_overwrites_a_run_of_the_same_day(app_load, tmp_path):
    # a --compute run once took the plain run's file names and overwrote them
    day = "2026-12-03"
    assert app_load.free_stem(tmp_path, day, False) == tmp_path / f"app_load_{day}"
    (tmp_path / f"app_load_{day}.txt").write_text("first")
    assert app_load.free_stem(tmp_path, day, True) == tmp_path / f"app_load_{day}_compute"
    assert app_load.free_stem(tmp_path, day, False) == tmp_path / f"app_load_{day}_2"
    (tmp_path / f"app_load_{day}_2.json").write_text("[]")
    assert app_load.free_stem(tmp_path, day, False) == tmp_path / f"app_load_{day}_3"


def test_app_load_browsers_stay_below_the_server(app_load, tmp_path):
    # Chromium resets its threads' nice values (renderers to 0, IO and compositor threads to
    # -8); as root nothing stopped it, so "--nice-browsers 19" ran browsers above the server.
    # A process started through the wrapper keeps the nice value and cannot lower it.
    import os
    import subprocess

    wrapper = Path(app_load._chromium(19))
    probe = tmp_path / "probe.sh"
    # the wrapper with a shell in Chromium's place: what would a browser thread be allowed?
    probe.write_text(wrapper.read_text().replace(app_load.CHROMIUM, "/bin/sh"))
    probe.chmod(0o755)
    check = (
        "import os; print(os.nice(0))\n"
        "try:\n    os.setpriority(os.PRIO_PROCESS, 0, -8); print('lowered')\n"
        "except PermissionError:\n    print('refused')\n"
    )
    out = subprocess.run(
        [str(probe), "-c", f"exec {sys.executable} -c \"$0\"", check],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.split()  # fmt: skip
    assert out[0] == str(min(19, os.nice(0) + 19))
    assert out[1] == "refused"
