"""cnnviz.timing on the CPU: consistent rows, safety paths, the lock, the model untouched.

Speed itself is not asserted beyond "more work takes longer" (bench/gpu_check.py measures).
"""

from __future__ import annotations

import threading

import pandas as pd
import pytest
import torch
from torch import nn

import cnnviz
from cnnviz import timing, zoo


@pytest.fixture(scope="module")
def resnet20_rows():
    # One thread: on a loaded machine two OpenMP threads wait on each other at every op,
    # which can make any one configuration many times slower than its work warrants.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return timing.benchmark(
            "resnet20", device="cpu", batch_sizes=(1, 16), dtypes=("float32",), min_run_time=0.2
        )
    finally:
        torch.set_num_threads(before)


def test_rows_are_consistent(resnet20_rows):
    df = resnet20_rows
    assert list(df["status"]) == ["ok", "ok"]
    b1, b16 = df.iloc[0], df.iloc[1]
    assert b16["latency_ms"] > b1["latency_ms"]  # 16x the work on the same cores
    flops = cnnviz.analyze(zoo.get_model("resnet20", device="meta"), (1, 3, 32, 32)).total_flops
    for row in (b1, b16):
        assert row["gflops"] == pytest.approx(flops * row["batch_size"] / 1e9)
        assert row["throughput"] == pytest.approx(row["batch_size"] / (row["latency_ms"] / 1e3))
        assert row["tflops"] == pytest.approx(row["gflops"] / row["latency_ms"])  # G/ms = T/s
        assert row["runs"] >= 1 and row["iqr_ms"] >= 0
    assert set(df["device"]) == {"cpu"} and set(df["torch"]) == {torch.__version__}


def test_unsupported_dtype_is_a_row_not_an_error():
    net = nn.Conv2d(3, 4, 3)
    df = timing.benchmark(
        net, (1, 3, 8, 8), device="cpu", batch_sizes=(1,), dtypes=("float16",), min_run_time=0.01
    )
    assert df.loc[0, "status"] == "skipped" and "float16" in df.loc[0, "note"]


def test_memory_cap_refuses_before_allocating():
    df = timing.benchmark(
        "resnet20",
        device="cpu",
        batch_sizes=(1, 64),
        dtypes=("float32",),
        min_run_time=0.01,
        cap_bytes=2_000_000,
    )
    # resnet20: 269,722 params * 4 B = 1.08 MB; batch 64 activations push it over 2 MB.
    assert df.loc[0, "status"] == "ok"
    assert df.loc[1, "status"] == "refused" and "cap" in df.loc[1, "note"]


def test_out_of_memory_is_reported_in_its_row():
    class Greedy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            if x.device.type != "meta" and x.shape[0] > 1:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 9 GiB")
            return self.conv(x)

    df = timing.benchmark(
        Greedy(),
        (1, 3, 8, 8),
        device="cpu",
        batch_sizes=(1, 2),
        dtypes=("float32",),
        min_run_time=0.01,
    )
    assert list(df["status"]) == ["ok", "out of memory"]
    assert "Tried to allocate" in df.loc[1, "note"]


def test_lock_serialises_concurrent_calls():
    messages: list[str] = []
    done = threading.Event()

    def second():
        timing.benchmark(
            nn.Conv2d(3, 3, 1),
            (1, 3, 8, 8),
            device="cpu",
            batch_sizes=(1,),
            dtypes=("float32",),
            min_run_time=0.01,
            progress=lambda i, n, msg: messages.append(msg),
        )
        done.set()

    with timing._LOCK:  # a first timing is running
        t = threading.Thread(target=second)
        t.start()
        t.join(timeout=1.0)
        assert not done.is_set()  # the second waits...
        assert messages and "waiting" in messages[0]  # ...and is told so
    t.join(timeout=30)
    assert done.is_set() and messages[-1] == "done"


def test_model_is_not_changed():
    torch.manual_seed(0)
    m = zoo.get_model("resnet_cifar", depth=8).train()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    timing.benchmark(
        m,
        (1, 3, 32, 32),
        device="cpu",
        batch_sizes=(2,),
        dtypes=("float32", "bfloat16"),
        channels_last=True,
        min_run_time=0.01,
    )
    assert m.training and next(m.parameters()).dtype == torch.float32
    assert next(m.parameters()).is_contiguous()
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_meta_model_is_materialised():
    m = zoo.get_model("resnet_cifar", depth=8, device="meta")
    df = timing.benchmark(
        m, (1, 3, 32, 32), device="cpu", batch_sizes=(1,), dtypes=("float32",), min_run_time=0.01
    )
    assert df.loc[0, "status"] == "ok"
    assert all(p.is_meta for p in m.parameters())


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"batch_sizes": (1, 10_000)}, "cap"),
        ({"batch_sizes": (0,)}, "positive"),
        ({"min_run_time": 60}, "min_run_time"),
        ({"dtypes": ("int8",)}, "int8"),
    ],
)
def test_bad_arguments(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        timing.benchmark(nn.Conv2d(3, 3, 1), (1, 3, 8, 8), **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="no CUDA device"):
        timing.benchmark(nn.Conv2d(3, 3, 1), (1, 3, 8, 8), device="cuda")


def test_layer_times_join_analysis_rows():
    net = zoo.get_model("resnet_cifar", depth=8, device="meta")
    df = timing.layer_times(net, (1, 3, 32, 32), device="cpu", runs=2)
    a = cnnviz.analyze(net, (1, 3, 32, 32))
    assert list(df["name"]) == [r.name for r in a.layers if r.is_module]
    assert (df["ms"] > 0).all()


def test_peak_table():
    assert timing.peak_tflops("NVIDIA H200", "bfloat16") == 989.4  # NVIDIA H200 data sheet
    assert timing.peak_tflops("Some CPU", "float32") is None


class _CountingClock(timing._WallClock):
    """The wall clock, counting synchronisations."""

    syncs = 0

    def sync(self):
        self.syncs += 1


def test_blocks_pause_gc_and_average_back_to_back_runs():
    import gc
    import time

    calls, gc_states = [0], []

    def fn():
        calls[0] += 1
        gc_states.append(gc.isenabled())
        time.sleep(0.002)

    assert gc.isenabled()
    times = timing._time_blocks(fn, 0.05, timing._WallClock())
    assert gc.isenabled()  # restored after the loop
    assert gc_states[0] and not any(gc_states[1:])  # only the untimed sizing run sees GC
    assert len(times) >= 5
    per_block, rest = divmod(calls[0] - 1, len(times))  # one untimed run sizes the blocks
    assert rest == 0 and per_block >= 2  # every block holds the same number of runs
    assert min(times) >= 0.002  # a sleep lasts at least what it was asked for


def test_gc_is_restored_when_a_run_fails():
    import gc

    def boom():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError), timing._gc_paused():
        boom()
    assert gc.isenabled()
    gc.disable()
    try:
        with timing._gc_paused():
            pass
        assert not gc.isenabled()  # a caller that had GC off keeps it off
    finally:
        gc.enable()


def test_host_time_syncs_before_each_run():
    import time

    clock = _CountingClock()
    host = timing._host_seconds(lambda: time.sleep(0.002), clock, n=3)
    assert host >= 0.002 and clock.syncs == 3 + 1  # idle device before each run, and after


def test_cpu_timing_uses_the_process_threads():
    seen: list[int] = []

    class Probe(nn.Module):
        def forward(self, x):
            if x.device.type != "meta":
                seen.append(torch.get_num_threads())
            return x * 2

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        df = timing.benchmark(
            Probe(),
            (1, 4),
            device="cpu",
            batch_sizes=(1,),
            dtypes=("float32",),
            min_run_time=0.01,
        )
    finally:
        torch.set_num_threads(before)
    assert df.loc[0, "status"] == "ok" and "2 threads" in df.loc[0, "device_name"]
    assert seen and set(seen) == {2}  # torch.utils.benchmark alone would run one thread
    assert pd.isna(df.loc[0, "host_ms"]) and df.loc[0, "bound"] is None  # CUDA-only columns


def test_warm_up_runs_until_the_latency_settles(monkeypatch):
    # A first call 0.9 s, then 0.6, 0.3, then ~0.12 s: the old warm-up (3 runs and 0.2 s)
    # stopped after the third run, so the timed runs began while the model was still slow.
    durations = iter([0.9, 0.6, 0.3, 0.12, 0.11, 0.12, 0.115, 0.118, 0.12, 0.119] + [0.12] * 50)
    now = [0.0]
    monkeypatch.setattr(timing.time, "perf_counter", lambda: now[0])
    calls = []

    def fn():
        calls.append(1)
        now[0] += next(durations)

    timing._warm_up(fn, runs=3)
    assert len(calls) == 8  # the 3 runs after 0.3 s agree with the 3 before within 10 %
    assert timing.settled([0.3, 0.12, 0.11, 0.12, 0.115, 0.118])


def test_warm_up_is_bounded_when_the_latency_never_settles(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(timing.time, "perf_counter", lambda: now[0])
    step = iter(range(1, 10_000))

    def fn():  # every run 30 % slower or faster than the one before: never settles
        now[0] += 0.05 * (1.3 if next(step) % 2 else 0.7)

    timing._warm_up(fn, runs=3)
    assert now[0] <= timing.SETTLE_SECONDS + 0.2 + 3 * 0.065 + 0.1


def test_rows_say_how_many_runs_and_whether_they_are_stable():
    rows = timing.benchmark(nn.Sequential(nn.Conv2d(3, 4, 3)), (1, 3, 16, 16), min_run_time=0.05)
    row = rows.iloc[0]
    assert row["status"] == "ok" and row["runs"] >= 1
    want = row["runs"] < timing.MIN_STABLE_RUNS or row["iqr_ms"] > 0.1 * row["latency_ms"]
    assert bool(row["unstable"]) == bool(want)


def test_cuda_graph_needs_a_cuda_device():
    with pytest.raises(ValueError, match=r"cuda_graph=True needs a CUDA device; .* on cpu"):
        timing.benchmark(nn.Conv2d(3, 3, 1), (1, 3, 8, 8), device="cpu", cuda_graph=True)


def test_estimate_counts_the_graph_replays():
    net = nn.Sequential(nn.Conv2d(3, 8, 3))
    kw = {"device": "cpu", "batch_sizes": (1,), "dtypes": ("float32",), "min_run_time": 0.5}
    plain = timing.estimate_seconds(net, (1, 3, 8, 8), **kw)
    graphs = timing.estimate_seconds(net, (1, 3, 8, 8), cuda_graph=True, **kw)
    assert graphs >= plain + 0.5  # the replays are timed for min_run_time too


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _launch_bound_net() -> nn.Module:
    # 80 tiny kernels on a 16x16 map: each launch costs more host time than its GPU work
    return nn.Sequential(
        *(m for _ in range(40) for m in (nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()))
    )


@cuda
def test_cuda_graph_replays_what_eager_computes():
    torch.manual_seed(0)
    net = _launch_bound_net().cuda().eval()
    x = torch.randn(2, 8, 16, 16, device="cuda")

    def run():
        with torch.inference_mode():
            return net(x)

    eager = run().clone()
    graph = torch.cuda.CUDAGraph()
    out = timing._capture(run, graph)
    x.copy_(torch.randn_like(x))  # a replay reads the captured input's memory anew
    graph.replay()
    torch.cuda.synchronize()
    torch.testing.assert_close(out, run())
    assert not torch.equal(out, eager)
    graph.reset()


def _graph_row(net: nn.Module, size: tuple[int, ...], seconds: float = 0.1) -> pd.Series:
    """One CUDA float32 row of ``net`` at ``size`` with the graph timed too."""
    return timing.benchmark(
        net,
        size,
        device="cuda",
        batch_sizes=(size[0],),
        dtypes=("float32",),
        min_run_time=seconds,
        cuda_graph=True,
    ).iloc[0]


@cuda
def test_cuda_graph_row_beside_the_eager_latency():
    row = _graph_row(_launch_bound_net(), (1, 8, 16, 16), 0.2)
    assert row["status"] == "ok" and row["bound"] == "host"
    # one launch per replay instead of 80: the graph leaves the host's share out
    assert 0 < row["graph_ms"] < row["latency_ms"]


class _ReadsBack(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        y = self.conv(x)
        if y.is_cuda:  # analyze traces on meta, where there is nothing to read
            y = y * float(y.abs().max())  # a read back to the host: not capturable
        return y


@cuda
def test_a_model_that_reads_back_keeps_its_eager_row():
    row = _graph_row(_ReadsBack(), (1, 3, 8, 8))
    assert row["status"] == "ok" and row["latency_ms"] > 0, row["note"]
    # found by CUDA's sync check in an ordinary run, before any capture is tried
    assert pd.isna(row["graph_ms"]) and "synchronizes with the host" in row["note"]
    after = _graph_row(nn.Conv2d(3, 3, 1), (1, 3, 8, 8), 0.05)
    assert after["status"] == "ok" and after["graph_ms"] > 0, after["note"]


@cuda
@pytest.mark.xfail(
    reason="torch 2.11 on an H200: after a failed capture the CUDA generator stays "
    "mid-capture ('Offset increment outside graph capture encountered unexpectedly')",
    strict=False,
)
def test_a_failed_capture_leaves_the_device_usable(monkeypatch):
    # the same model with the sync check skipped: the capture itself fails
    monkeypatch.setattr(timing, "_host_sync", lambda fn: "")
    row = _graph_row(_ReadsBack(), (1, 3, 8, 8))
    assert row["status"] == "ok" and row["latency_ms"] > 0, row["note"]
    assert pd.isna(row["graph_ms"]) and "capture failed" in row["note"]
    assert torch.cuda.current_stream() == torch.cuda.default_stream()
    after = _graph_row(nn.Conv2d(3, 3, 1), (1, 3, 8, 8), 0.05)
    assert after["status"] == "ok" and after["graph_ms"] > 0, after["note"]
