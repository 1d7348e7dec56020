"""What a hostile or careless visitor can send (issue #13, section 2): each defect found by a
bounded hostile-input run has a test here that failed before its fix.

Library and command-line checks first, then the app's pages under AppTest. The checks that
need a real server or browser (uploads over HTTP, links drawn in the page) are in
tests/e2e/test_hostile_browser.py.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import streamlit as st
import torch
from apptest import spec_editor
from streamlit.testing.v1 import AppTest

import cnnviz
from cnnviz import erf, safety, spec, timing, zoo
from cnnviz.cli import main
from cnnviz.render import erf_plots, plots

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app" / "streamlit_app.py")


@pytest.fixture(autouse=True, scope="module")
def _app_on_path():
    """The pages import cnnviz_app, which ``streamlit run`` finds next to the router."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(Path(APP).parent))
        yield


@pytest.fixture(autouse=True)
def _clear_caches():
    st.cache_data.clear()
    st.cache_resource.clear()
    yield


def page(name: str, **query) -> AppTest:
    """A page of the app opened directly from a link with ``query``, as a visitor's browser
    opens /explorer?size=... (no check for exceptions: the tests here look at them)."""
    at = AppTest.from_file(APP, default_timeout=120)
    if name != "compare":  # the default page runs first, without the link's values
        at.run()
        at.switch_page(f"cnnviz_app/pages/{name}.py")
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    return at


def shown(at: AppTest) -> str:
    """Every message and caption on the page, as Markdown source."""
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [m.value for kind in (at.error, at.warning, at.info) for m in kind]
    return "\n".join(str(p) for p in parts)


def _safetensors(header: dict, data: bytes = b"") -> bytes:
    """A safetensors file by hand: 8-byte little-endian header length, JSON header, data."""
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def _small_model():
    return zoo.get_model("resnet_cifar", depth=8)  # 4 convs + BN + fc, CPU weights


def _blob(state: dict[str, torch.Tensor]) -> bytes:
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in state.items()})


# --------------------------------------------------------------------- uploaded weights
@pytest.fixture
def no_materialising(monkeypatch):
    """Fail when safetensors would materialise tensors: hostile files must be refused from
    their header alone."""
    import safetensors.torch

    calls: list[int] = []
    real = safetensors.torch.load

    def spy(data, *a, **k):
        calls.append(len(data))
        return real(data, *a, **k)

    monkeypatch.setattr(safetensors.torch, "load", spy)
    return calls


def test_weights_with_a_huge_header_are_refused_from_the_header(no_materialising):
    # Found: 1.45 million zero-size tensors in an 86 MB header cost 18 s and 2.7 GB per click.
    # Here 60,000 of them (about 4 MB): refused before any JSON is parsed or tensor made.
    header = {
        f"t{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for i in range(60_000)
    }
    blob = _safetensors(header)
    from cnnviz_app import caching

    t0 = time.perf_counter()
    with pytest.raises(erf.WeightsError, match=r"header .* bytes, more than"):
        caching.effective_rf("resnet_cifar", (("depth", 8),), (1, 3, 32, 32), "layer1", 1, blob)
    assert time.perf_counter() - t0 < 2
    assert no_materialising == []


def test_weights_with_more_tensors_than_the_model_are_refused(no_materialising):
    model = _small_model()
    n = len(model.state_dict())
    header = {f"t{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for i in range(n + 1)}
    with pytest.raises(erf.WeightsError, match=rf"{n + 1} tensors.* {n}"):
        erf.read_safetensors(_safetensors(header), model)
    assert no_materialising == []


def test_weights_names_and_shapes_are_checked_before_loading(no_materialising):
    model = _small_model()
    state = dict(model.state_dict())
    state["fc.weight"] = torch.zeros(3, 3)  # the model's is 10x64
    state["extra"] = state.pop("conv1.weight")
    with pytest.raises(erf.WeightsError) as e:
        erf.read_safetensors(_blob(state), model)
    assert "missing conv1.weight" in str(e.value) and "unexpected extra" in str(e.value)
    assert "fc.weight (3, 3) != (10, 64)" in str(e.value)
    assert no_materialising == []


def test_weights_with_lying_offsets_are_refused(no_materialising):
    # 10 float32 biases take 40 bytes; the header claims 4,000 of a 40-byte body
    header = {"bias": {"dtype": "F32", "shape": [10], "data_offsets": [0, 4000]}}
    with pytest.raises(erf.WeightsError, match=r"entry for 'bias' is malformed"):
        erf.read_safetensors(_safetensors(header, b"\0" * 40), torch.nn.Linear(4, 10))


@pytest.mark.parametrize(
    ("dtype", "refused"),
    [(torch.int8, True), (torch.bool, True), (torch.complex64, True), (torch.float16, False)],
)
def test_weights_of_the_wrong_kind_are_refused_or_noted(dtype, refused):
    # Found: int8, bool and float16 weights were cast in silence, complex only warned.
    model = torch.nn.Linear(4, 2)
    state = {k: v.detach().to(dtype) for k, v in model.state_dict().items()}
    if refused:
        with pytest.raises(erf.WeightsError, match=rf"{str(dtype).split('.')[1]}.*float"):
            erf.read_safetensors(_blob(state), model)
        with pytest.raises(erf.WeightsError, match="float"):
            erf.check_state_dict(model, state)
    else:
        with pytest.warns(UserWarning, match="float16.*float32"):
            out = erf.read_safetensors(_blob(state), model)
        assert set(out) == {"weight", "bias"}


def test_nan_weights_are_refused_not_measured():
    # Found: NaN weights gave a NaN map captioned "radius 0 px".
    model = _small_model()
    state = dict(model.state_dict())
    state["conv1.weight"] = state["conv1.weight"].clone().fill_(float("nan"))
    from cnnviz_app import caching

    with pytest.raises(erf.WeightsError, match=r"(NaN|finite).*conv1.weight"):
        caching.effective_rf(
            "resnet_cifar", (("depth", 8),), (1, 3, 32, 32), "layer1", 1, _blob(state)
        )


def test_uploaded_weights_are_read_under_the_compute_lock(monkeypatch):
    # Found: the app parsed uploaded bytes before taking the lock and checking the budget.
    seen: list[bool] = []
    real = erf.read_safetensors

    def spy(data, model, **k):
        seen.append(safety.COMPUTE_LOCK.locked())
        return real(data, model, **k)

    monkeypatch.setattr(erf, "read_safetensors", spy)
    from cnnviz_app import caching

    blob = _blob(_small_model().state_dict())
    m, notes = caching.effective_rf(
        "resnet_cifar", (("depth", 8),), (1, 3, 32, 32), "layer1", 1, blob
    )
    assert m.map.shape == (32, 32) and notes == ()
    assert seen and seen[-1] is True


# --------------------------------------------------------------------- spec names, CLI
def test_dunder_layer_names_are_refused_by_validation():
    # Found: {"relu": {"name": "__init__"}} passed validation and failed in build() (KeyError).
    for name in ("__init__", "__class__", "__dict__"):
        bad = {"input": [1, 1, 4, 4], "layers": [{"relu": {"name": name}}]}
        with pytest.raises(spec.SpecError) as e:
            spec.validate(bad)
        assert e.value.path == "layers[0].relu.name" and name in str(e.value)


def test_cli_dunder_name_is_a_message(tmp_path, capsys):
    f = tmp_path / "dunder.yaml"
    f.write_text("input: [1, 1, 4, 4]\nlayers:\n  - relu: {name: __init__}\n")
    code = main(["summary", str(f)])
    err = capsys.readouterr().err
    assert code == 2 and "layers[0].relu.name" in err and "Traceback" not in err


def test_cli_binary_spec_file_is_a_message(tmp_path, capsys):
    # Found: `cnnviz summary binary.yaml` died with an unhandled UnicodeDecodeError.
    f = tmp_path / "binary.yaml"
    f.write_bytes(b"input: [1, 1, 4, 4]\n\xff\xfe\x00garbage")
    code = main(["summary", str(f)])
    err = capsys.readouterr().err
    assert code == 2 and "binary.yaml" in err and "UTF-8" in err and "Traceback" not in err


def test_custom_page_shows_dunder_names_intact():
    at = page("custom")
    spec_editor(at).set_value("input: [1, 1, 4, 4]\nlayers:\n  - relu: {name: __init__}\n").run()
    assert not at.exception and at.error
    # Markdown would read __init__ as bold "init": the name is escaped (or shown as code)
    body = at.error[0].value
    assert "\\_\\_init\\_\\_" in body or "`'__init__'`" in body


# --------------------------------------------------------------------- user text as text
EVIL = "<a href='https://e.vil/'>Session expired: log in</a>"


def test_chart_titles_and_hovers_show_user_text_as_text():
    # Found: a spec named like a link became a live link in Plotly chart titles.
    m = spec.build({"name": EVIL, "input": [1, 1, 8, 8], "layers": ["relu"]})
    a = cnnviz.analyze(m, m.default_input_size)
    for fig in (plots.layer_bars(a), plots.rf_growth_plot(a)):
        text = fig.layout.title.text
        assert "<a" not in text and "&lt;a href=" in text
    from cnnviz.compare import compare, stage_table
    from cnnviz.render import compare_html

    df = compare({EVIL: a})
    for html in (
        compare_html.scatter_html(df),
        compare_html.stage_bars_html({EVIL: stage_table(a)}),
    ):
        root = ET.fromstring(html)  # escaped: still well-formed, with no link in it
        assert root.find(".//a") is None and "<a href" not in html and "e.vil" in html
        assert EVIL in [e.text for e in root.iter()]  # shown as it was typed


def test_erf_heatmap_title_shows_the_layer_as_text():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3, padding=1))
    m = erf.effective_receptive_field(net, "0", (1, 1, 9, 9), n_samples=1)
    fig = erf_plots.erf_heatmap(m, title=EVIL)
    assert "<a" not in fig.layout.title.text


def _token(data: dict) -> str:
    """A ?spec= token of any data, valid or not (spec.to_url takes only valid specs)."""
    import base64
    import zlib

    raw = zlib.compress(json.dumps(data).encode())
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_shared_link_error_does_not_make_a_markdown_link():
    # Found: an invalid value "[Log in](https://e.vil/)" in a shared link's spec became a
    # live Markdown link in the "spec is unreadable" message.
    bad = {"input": [1, 1, 4, 4], "layers": [{"conv": {"out": "[Log in](https://e.vil/)"}}]}
    at = page("custom", spec=_token(bad))
    assert not at.exception and at.error
    body = at.error[0].value
    assert "[Log in](https://e.vil/)" not in body and "Log in" in body


# --------------------------------------------------------------------- numbers in links
@pytest.mark.parametrize(
    ("name", "query", "key"),
    [
        ("compare", {"models": ["resnet_cifar"], "cmp.resnet_cifar.depth": "1e400"}, "depth"),
        ("explorer", {"model": "resnet20", "size": "1e400"}, "size"),
        ("compare", {"models": ["resnet20"], "same_size": "true", "cmp_size": "inf"}, "cmp_size"),
        ("explorer", {"model": "resnet20", "size": "-inf"}, "size"),
    ],
)
def test_overflowing_numbers_in_links_are_a_message(name, query, key):
    # Found: 1e400 or inf raised OverflowError while Streamlit filled the widget.
    at = page(name, **query)
    assert not at.exception, [e.value for e in at.exception]
    notes = " ".join(w.value for w in at.warning)
    assert key in notes and "cannot use" in notes


@pytest.mark.parametrize(
    ("name", "query", "key"),
    [
        ("explorer", {"model": "resnet20", "size": "5000"}, "size"),
        ("explorer", {"model": "resnet20", "erf_n": "99"}, "erf_n"),
        ("rf_lab", {"n": "1e400"}, "n"),
        ("timing", {"t_batches": ["1", "3"]}, "t_batches"),
    ],
)
def test_out_of_range_link_values_are_not_reset_in_silence(name, query, key):
    at = page(name, **query)
    assert not at.exception
    notes = " ".join(w.value for w in at.warning)
    assert key in notes and "cannot use" in notes


def test_valid_link_values_give_no_note():
    at = page("explorer", model="resnet20", size="64", erf_n="2")
    assert not at.exception and not at.warning
    assert at.number_input(key="size").value == 64


# --------------------------------------------------------------------- big numbers
def test_receptive_fields_past_a_float_render_on_the_custom_page():
    # 210 strided, dilated convs: the final field has ~310 digits, past float's 1.8e308.
    layers = [{"conv": {"out": 1, "kernel": 31, "stride": 31, "dilation": 16, "padding": 240}}]
    text = json.dumps({"name": "huge", "input": [1, 1, 8, 8], "layers": layers * 210})
    a = cnnviz.analyze(spec.build(text), (1, 1, 8, 8))
    assert a.receptive_field().size[0] > 10**308
    at = page("custom")
    spec_editor(at).set_value(text).run()
    assert not at.exception and not at.error
    assert next(m.value for m in at.metric if m.label == "Final RF").startswith("inf")


# --------------------------------------------------------------------- tables
@pytest.fixture
def arrow_fixes(monkeypatch):
    """Record every dataframe Streamlit had to repair before Arrow could take it (it logs an
    ArrowInvalid traceback each time)."""
    from streamlit import dataframe_util

    calls: list[list[str]] = []
    real = dataframe_util.fix_arrow_incompatible_column_types

    def spy(df, *a, **k):
        calls.append([str(c) for c in df.columns])
        return real(df, *a, **k)

    monkeypatch.setattr(dataframe_util, "fix_arrow_incompatible_column_types", spy)
    return calls


def test_compare_rf_column_has_one_type(arrow_fixes):
    # Found: VGG-19 at 210 px has an unknown final RF beside ResNet-50's 427.
    at = page("compare", models=["resnet50", "vgg19"], same_size="true", cmp_size="210")
    assert not at.exception
    df = at.dataframe[0].value
    assert "unknown" in set(map(str, df["final RF" if "final RF" in df else "rf"]))
    assert arrow_fixes == []


# --------------------------------------------------------------------- the spec editor
def test_oversized_editor_text_is_a_clear_message_and_keeps_nothing_stale():
    at = page("custom")
    big = "# " + "x" * (spec.LIMITS.text_bytes + 10) + "\ninput: [1, 1, 4, 4]\nlayers: [relu]\n"
    t0 = time.perf_counter()
    spec_editor(at).set_value(big).run()
    assert time.perf_counter() - t0 < 10
    assert not at.exception and at.error
    assert "limit" in at.error[0].value and "64" in at.error[0].value
    assert not [m for m in at.metric if m.label == "Parameters"]  # no stale model below


def test_invalid_spec_text_is_parsed_once(monkeypatch):
    # Found: an invalid 63 KB YAML was parsed at least twice per rerun, 1.7 s each.
    calls: list[str] = []
    real = spec.parse
    monkeypatch.setattr(spec, "parse", lambda text, *a, **k: calls.append(text) or real(text))
    at = page("custom")
    bad = "input: [1, 1, 4, 4]\nlayers:\n  - conv: {out: 2, kernel: 3\n"
    spec_editor(at).set_value(bad).run()
    at.run()
    at.run()
    assert not at.exception and at.error
    assert calls.count(bad) == 1


# --------------------------------------------------------------------- timing
def test_timing_estimate_is_given_before_running(monkeypatch):
    monkeypatch.setattr(timing, "_RATES", {})  # the assumed rates, not earlier tests' runs
    est = timing.estimate_seconds(
        "resnet18", device="cpu", batch_sizes=(1, 8), dtypes=("float32",), min_run_time=0.5
    )
    assert 1 < est < 600
    big = timing.estimate_seconds(
        "vgg19",
        device="cpu",
        batch_sizes=(2, 4, 8, 16, 32, 64),
        dtypes=("float32",),
        min_run_time=3.0,
    )
    assert big > 60  # about 144 s measured on a 2-core machine


def test_timing_request_stops_at_its_time_budget():
    # Found: one request could hold the compute lock for minutes (VGG-19, batches 2-64).
    t0 = time.perf_counter()
    df = timing.benchmark(
        "resnet18",
        device="cpu",
        batch_sizes=(1, 2, 4, 8, 16, 32, 64),
        dtypes=("float32",),
        min_run_time=0.2,
        time_budget=2.0,
    )
    took = time.perf_counter() - t0
    assert took < 8, took
    # How many configurations fit in 2 s depends on the machine's load (a busy CI may finish
    # none): what must hold is that the rest are stopped or skipped, saying why.
    assert len(df) == 7
    over = df[df["status"] != "ok"]
    assert len(over) and all("time budget" in n for n in over["note"])


def test_timing_request_can_be_cancelled():
    stop = threading.Event()
    seen: list[str] = []

    def progress(i, n, msg):
        seen.append(msg)
        stop.set()  # cancel as soon as the first configuration starts

    df = timing.benchmark(
        "resnet18",
        device="cpu",
        batch_sizes=(1, 2, 4),
        dtypes=("float32",),
        min_run_time=2.0,
        progress=progress,
        cancelled=stop.is_set,
    )
    assert set(df["status"]) == {"cancelled"}


def test_waiters_learn_their_place_in_the_queue():
    places: list[int] = []
    release = threading.Event()
    holding = threading.Event()

    def holder():
        with safety.exclusive():
            holding.set()
            release.wait(10)

    def second():
        with safety.exclusive(places.append):
            pass

    t1 = threading.Thread(target=holder)
    t1.start()
    holding.wait(5)
    t2 = threading.Thread(target=second)
    t2.start()
    deadline = time.monotonic() + 5
    while not places and time.monotonic() < deadline:
        time.sleep(0.01)
    assert safety.queue_length() == 1
    release.set()
    t1.join(5)
    t2.join(5)
    assert places and places[0] == 1 and safety.queue_length() == 0


def test_timing_page_says_the_estimate_before_running():
    at = page("timing", t_models=["vgg19"], t_batches=["2", "4", "8", "16", "32", "64"])
    assert not at.exception
    assert "estimate" in shown(at).lower() or "about" in shown(at)


# --------------------------------------------------------------------- deployment
def test_readme_says_how_to_add_security_headers():
    text = (ROOT / "README.md").read_text()
    assert "## Deploying" in text or "### Deploying" in text
    for header in ("X-Frame-Options", "Content-Security-Policy", "frame-ancestors"):
        assert header in text


def test_server_upload_limit_is_the_largest_widget_need():
    # The spec uploader's 1 MB held only in the browser; the server allowed any file up to
    # maxUploadSize. Both server settings name the limit the pages check against.
    from cnnviz_app import uploads

    start = (ROOT / "docker" / "start.sh").read_text()
    config = (ROOT / ".streamlit" / "config.toml").read_text()
    assert f"--server.maxUploadSize={uploads.MAX_UPLOAD_MB} " in start
    assert f"maxUploadSize = {uploads.MAX_UPLOAD_MB}\n" in config
    largest = max(
        erf.weights_file_bytes(zoo.get_model(n, device="meta"))
        for n in ("alexnet", "resnet152", "googlenet")
    )
    assert largest <= uploads.MAX_UPLOAD_MB * 2**20 < 2 * largest


# --------------------------------------------------------------------- under load (section 3)
def test_server_warms_up_and_skips_the_gc_after_each_page():
    # bench/app_load.py with py-spy: the first page runs imported torch with the interpreter
    # lock held for seconds, and Streamlit's gc.collect() after every script run took half
    # of the lock's time under 20 visitors; both stalled /_stcore/health.
    start = (ROOT / "docker" / "start.sh").read_text()
    assert "run app/serve.py" in start and "--runner.postScriptGC=false" in start
    assert "postScriptGC = false" in (ROOT / ".streamlit" / "config.toml").read_text()


def test_server_hands_the_interpreter_lock_on_every_millisecond():
    # py-spy on bench/app_load.py's server: the event loop sat in socket writes and in
    # Thread.start, waiting for the lock behind page runs up to 5 ms (Python's default
    # switch interval) at every call. app/serve.py sets 1 ms, or $CNNVIZ_SWITCH_INTERVAL.
    code = (
        "import runpy, sys; sys.path.insert(0, 'app'); "
        "runpy.run_path('app/serve.py', run_name='serve'); print(sys.getswitchinterval())"
    )
    for env, expected in (({}, 0.001), ({"CNNVIZ_SWITCH_INTERVAL": "0.002"}, 0.002)):
        env = {k: v for k, v in os.environ.items() if k != "CNNVIZ_SWITCH_INTERVAL"} | env
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr[-2000:]
        assert float(out.stdout.split()[-1]) == pytest.approx(expected)


def test_page_runs_can_step_below_the_event_loop(monkeypatch):
    # CNNVIZ_PAGE_NICE: a page run lowers its own thread's priority, and only its own (the
    # event loop keeps its place in the CPU queue); unset, nothing changes.
    from cnnviz_app import priority

    def nice_in_a_thread() -> tuple[int, int]:
        seen = []
        worker = threading.Thread(
            target=lambda: seen.append(
                (priority.lower_this_thread(), os.getpriority(os.PRIO_PROCESS, 0))
            )
        )
        worker.start()
        worker.join()
        return seen[0]

    base = os.getpriority(os.PRIO_PROCESS, 0)  # this (main) thread's nice value
    monkeypatch.delenv(priority.ENV, raising=False)
    assert nice_in_a_thread() == (base, base)
    monkeypatch.setenv(priority.ENV, "2")
    after, read_back = nice_in_a_thread()
    assert after == read_back == min(base + 2, 19)
    assert os.getpriority(os.PRIO_PROCESS, 0) == base
    monkeypatch.setenv(priority.ENV, "two")  # a bad value changes nothing
    assert nice_in_a_thread() == (base, base)

    calls = []  # and the router asks for it on every page run
    monkeypatch.setattr(priority, "lower_this_thread", lambda: calls.append(1) or base)
    page("rf_lab")
    assert len(calls) >= 2
