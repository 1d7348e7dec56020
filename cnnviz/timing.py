"""Timing on real hardware: what the counted FLOPs cost on the machine at hand.

:func:`benchmark` times a model's forward pass for several batch sizes and dtypes and reports
latency, throughput and achieved TFLOP/s (from :func:`cnnviz.analyze`'s FLOPs). Method:
warm-up, then repeated timed runs until a time budget, in inference mode. On CUDA, blocks of
back-to-back runs (about 50 ms each) are timed with CUDA events, each block after a
synchronisation, with ``cudnn.benchmark`` on and garbage collection paused; on the CPU
``torch.utils.benchmark`` does the timing. On CUDA each row also says whether the run is
host-bound: issuing it from Python takes about as long as it runs, so the GPU idles between
kernels.

Safety, since this allocates real memory: parameter and activation bytes from ``analyze``,
scaled by batch size and dtype, are checked against the device's free memory and a cap before
anything is allocated; a refused or out-of-memory configuration is reported in its row; batch
size and time per request are capped; one process-wide lock keeps two timings from
overlapping. The caller's model is never changed: timing runs on a copy whenever it needs
another dtype, device or memory format.
"""

from __future__ import annotations

import contextlib
import gc
import statistics
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn

from cnnviz import safety, zoo
from cnnviz.analysis import analyze
from cnnviz.errors import AnalysisError
from cnnviz.modules import copy_model, is_leaf
from cnnviz.result import Analysis

MAX_BATCH = 512
MAX_RUN_TIME = 10.0  # seconds of timed runs per configuration
_LOCK = safety.COMPUTE_LOCK  # shared with layer_times and cnnviz.erf
#: A run is host-bound when issuing it takes at least this share of its latency (or, timed
#: as a CUDA graph too, when the replay takes less than this share of it).
HOST_BOUND = 0.9

#: Dense peak TFLOP/s by device name fragment and precision (vendor data sheets, without
#: sparsity). float32 convolutions run as TF32 on tensor cores while cuDNN allows it
#: (PyTorch's default), so their peak is the TF32 one then.
PEAK_TFLOPS = {
    "H200": {"float32": 67.0, "tf32": 494.7, "bfloat16": 989.4, "float16": 989.4},
    "H100": {"float32": 67.0, "tf32": 494.7, "bfloat16": 989.4, "float16": 989.4},
    "A100": {"float32": 19.5, "tf32": 156.0, "bfloat16": 312.0, "float16": 312.0},
}

Progress = Callable[[int, int, str], None]  # (done, total, message)

#: Multiply-accumulates per second per CPU thread assumed by :func:`estimate_seconds` before this
#: process has timed anything (a 2-core server measured about 50 G/s per thread in float32);
#: every timed configuration updates the rate of its device and dtype (:data:`_RATES`).
CPU_MACS_PER_THREAD = {"float32": 25e9, "bfloat16": 5e9, "float16": 2e9}
CUDA_MACS = {"float32": 10e12, "bfloat16": 50e12, "float16": 50e12}
_RATES: dict[tuple[str, str], float] = {}  # (device type, dtype) -> MAC/s last measured
#: Seconds to build a model's copy per parameter (random init on the CPU).
_INIT_SECONDS_PER_PARAM = 5e-9


class _Stop(Exception):
    """A timing request ran out of its time budget or was cancelled; ``note`` says which."""

    def __init__(self, status: str, note: str) -> None:
        super().__init__(note)
        self.status, self.note = status, note


@dataclass
class _Watch:
    """Stops a request between runs: at its deadline, or when ``cancelled()`` says so; and
    repeats the last progress message about twice a second, so that a caller (a Streamlit
    page) gets a chance to stop it from its progress callback too."""

    deadline: float | None = None
    budget: float | None = None
    cancelled: Callable[[], bool] | None = None
    progress: Callable[[], None] | None = None
    _last: float = 0.0

    def check(self) -> None:
        if self.cancelled is not None and self.cancelled():
            raise _Stop("cancelled", "cancelled")
        now = time.monotonic()
        if self.deadline is not None and now > self.deadline:
            raise _Stop("stopped", f"over the request's time budget of {self.budget:g} s")
        if self.progress is not None and now - self._last > 0.5:
            self._last = now
            self.progress()

    def left(self) -> float:
        return float("inf") if self.deadline is None else self.deadline - time.monotonic()


def _rate(dev_type: str, dtype: str) -> float:
    """Multiply-accumulates per second expected on this device in ``dtype``."""
    if (dev_type, dtype) in _RATES:
        return _RATES[(dev_type, dtype)]
    if dev_type == "cuda":
        return CUDA_MACS.get(dtype, 10e12)
    return CPU_MACS_PER_THREAD.get(dtype, 2e9) * max(1, torch.get_num_threads())


def _config_seconds(
    a: Analysis, dev_type: str, cfg: Config, min_run_time: float, warmup: int
) -> float:
    """Expected wall time of one configuration: building the copy, warm-up (at least
    ``warmup`` runs and 0.2 s), the timed runs (at least ``min_run_time``; CPU: about 3 runs
    more, CUDA: 5 blocks of 2 and 5 host-timed runs), the CUDA graph's capture and replays
    when asked for, and 1 ms of overhead per run."""
    batch0 = a.input_shapes[0][0] if a.input_shapes and a.input_shapes[0] else 1
    one = a.total_macs * cfg.batch_size / batch0 / _rate(dev_type, cfg.dtype) + 1e-3
    timed = max(min_run_time, (15 if dev_type == "cuda" else 3) * one) + one
    if cfg.cuda_graph:  # capture (a warm-up on a side stream) and the replays, timed alike
        timed += max(min_run_time, 10 * one) + 5 * one
    return a.total_params * _INIT_SECONDS_PER_PARAM + max(0.2, warmup * one) + timed


def estimate_seconds(
    model: nn.Module | str,
    input_size: Sequence[int] | None = None,
    *,
    device: str | torch.device = "auto",
    batch_sizes: Iterable[int] = (1, 32),
    dtypes: Iterable[str] = ("float32", "bfloat16"),
    min_run_time: float = 1.0,
    warmup: int = 3,
    cuda_graph: bool = False,
) -> float:
    """Seconds :func:`benchmark` with these arguments is expected to take on this machine:
    MACs from :func:`cnnviz.analyze` over a rate per device and dtype (an assumed one until
    this process has timed that device and dtype, then the last measured one). A guide for
    callers to say before running, not a bound (``time_budget`` is one).

    >>> import torch.nn as nn
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3))
    >>> 0.4 < estimate_seconds(net, (1, 3, 8, 8), device="cpu", batch_sizes=(1,),
    ...                        dtypes=("float32",), min_run_time=0.2) < 1
    True
    """
    target = _target(model, input_size, device)
    a = analyze(target.meta_model, (1, *target.input_size[1:]))
    dev_type = target.device.type
    return sum(
        _config_seconds(
            a, dev_type, Config(int(b), d, False, False, cuda_graph), min_run_time, warmup
        )
        for d in dict.fromkeys(dtypes)
        for b in sorted({int(b) for b in batch_sizes})
        if d in supported_dtypes(target.device)
    )


@dataclass(frozen=True)
class Config:
    batch_size: int
    dtype: str
    channels_last: bool
    compile: bool
    cuda_graph: bool = False


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else MPS where present, else the CPU.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if str(device) != "auto":
        d = torch.device(device)
        if d.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for but no CUDA device is available")
        return d
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    import platform

    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def supported_dtypes(device: torch.device) -> tuple[str, ...]:
    """The dtypes worth timing here: float16 only where the device runs it natively."""
    if device.type == "cuda":
        bf16 = torch.cuda.is_bf16_supported()
        return ("float32", "float16") + (("bfloat16",) if bf16 else ())
    if device.type == "mps":
        return ("float32", "float16")
    return ("float32", "bfloat16")


def peak_tflops(name: str, dtype: str) -> float | None:
    """The device's dense peak TFLOP/s for ``dtype`` where known (None otherwise).

    >>> peak_tflops("NVIDIA H200", "bfloat16")
    989.4
    """
    if dtype == "float32" and torch.backends.cudnn.allow_tf32:
        dtype = "tf32"
    for key, table in PEAK_TFLOPS.items():
        if key in name:
            return table.get(dtype)
    return None


def _materialize(
    model: nn.Module | str, device: torch.device, dtype: torch.dtype, channels_last: bool
) -> nn.Module:
    """A copy of the model on ``device`` in ``dtype``: the caller's model is never touched."""
    if isinstance(model, str):
        m = zoo.get_model(model, device=device)
    elif any(p.is_meta for p in model.parameters()):
        m = copy_model(model).to_empty(device=device)
        with torch.no_grad():
            for sub in m.modules():
                if hasattr(sub, "reset_parameters"):
                    sub.reset_parameters()
    else:
        m = copy_model(model).to(device)
    m = m.to(dtype=dtype).eval()
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
    return m


@dataclass(frozen=True)
class _Target:
    """What every timing entry point works out first: where it runs, the model to analyze
    (a zoo name built on meta) and the input size with its batch."""

    device: torch.device
    meta_model: nn.Module
    input_size: tuple[int, ...]


def _target(model: nn.Module | str, input_size, device) -> _Target:
    dev = resolve_device(device)
    meta_model = zoo.get_model(model, device="meta") if isinstance(model, str) else model
    if input_size is None:
        input_size = getattr(meta_model, "default_input_size", None)
        if input_size is None:
            raise ValueError("input_size is required for a model without default_input_size")
    return _Target(dev, meta_model, tuple(int(s) for s in input_size))


class _Prepared:
    """The copy, the input and the forward of one timing run (None once it is over)."""

    model: Any = None
    x: Any = None
    forward: Any = None


@contextlib.contextmanager
def _prepared(
    model, dev: torch.device, dtype: torch.dtype, shape, channels_last=False, compile=False
) -> Iterator[_Prepared]:
    """The one setup of every timing: a copy of the model on the device in ``dtype`` (the
    caller's model never changes), a random input, cuDNN autotuning on CUDA; afterwards the
    copies are dropped, the flag restored and the device's cache emptied."""
    run = _Prepared()
    cudnn_before = torch.backends.cudnn.benchmark
    try:
        run.model = _materialize(model, dev, dtype, channels_last)
        run.x = torch.randn(shape, device=dev, dtype=dtype)
        if channels_last and len(shape) == 4:
            run.x = run.x.contiguous(memory_format=torch.channels_last)
        run.forward = torch.compile(run.model) if compile else run.model
        if dev.type == "cuda":
            torch.backends.cudnn.benchmark = True
        yield run
    finally:
        run.model = run.x = run.forward = None  # drop the copies before freeing the cache
        if dev.type == "cuda":
            torch.backends.cudnn.benchmark = cudnn_before
            torch.cuda.empty_cache()


#: A row is ``unstable`` when its interquartile range exceeds this share of its median, or
#: when fewer than :data:`MIN_STABLE_RUNS` timed runs stand behind the median.
UNSTABLE_IQR_SHARE = 0.10
MIN_STABLE_RUNS = 5
#: Warm-up ends once the median of the last three runs is within this share of the three
#: before (the slow first calls are over), or after :data:`SETTLE_SECONDS` more at most.
SETTLE_SHARE = 0.10
SETTLE_SECONDS = 3.0


def settled(durations: list[float]) -> bool:
    """True when the last three runs' median is within :data:`SETTLE_SHARE` of the median
    of the three before them: the latency has stopped falling (or rising).

    >>> settled([0.9, 0.5, 0.2, 0.12, 0.11, 0.12]), settled([0.9, 0.5, 0.4, 0.3, 0.2, 0.15])
    (False, False)
    >>> settled([0.9, 0.2, 0.12, 0.115, 0.12, 0.118, 0.121])
    True
    """
    if len(durations) < 6:
        return False
    before = statistics.median(durations[-6:-3])
    return abs(statistics.median(durations[-3:]) - before) <= SETTLE_SHARE * before


def _warm_up(
    fn: Callable[[], Any],
    runs: int,
    check: Callable[[], None] = lambda: None,
    sync: Callable[[], None] = lambda: None,
) -> None:
    """At least ``runs`` runs and 0.2 s (autotuning, lazy initialisation, clocks), then on
    until the latency settles (:func:`settled`): a first CPU run of ResNet-18 took 892 ms
    against 115-230 ms later, and a warm-up that ended before the slow calls did gave a
    median of them with an IQR of 0."""
    t = time.perf_counter()
    durations: list[float] = []
    for i in range(10_000):
        check()
        s = time.perf_counter()
        fn()
        sync()
        durations.append(time.perf_counter() - s)
        spent = time.perf_counter() - t
        enough = i + 1 >= max(1, runs) and spent > 0.2
        if enough and (settled(durations) or spent > SETTLE_SECONDS + 0.2 + 3 * durations[0]):
            break


def unstable(iqr: float, median: float, runs: int) -> bool:
    """The quality signal of a timing row (see :data:`UNSTABLE_IQR_SHARE`).

    >>> unstable(2.0, 100.0, 20), unstable(15.0, 100.0, 20), unstable(0.0, 100.0, 3)
    (False, True, True)
    """
    return runs < MIN_STABLE_RUNS or iqr > UNSTABLE_IQR_SHARE * median


class _CudaClock:
    """Device time between two CUDA events; ``sync`` waits for all queued work."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._a = torch.cuda.Event(enable_timing=True)
        self._b = torch.cuda.Event(enable_timing=True)

    def sync(self) -> None:
        torch.cuda.synchronize(self.device)

    def start(self) -> None:
        self._a.record()

    def stop(self) -> float:
        self._b.record()
        self._b.synchronize()
        return self._a.elapsed_time(self._b) / 1e3


class _WallClock:
    """Host wall time with the same interface: the block logic's stand-in off the GPU."""

    def sync(self) -> None:
        pass

    def start(self) -> None:
        self._t = time.perf_counter()

    def stop(self) -> float:
        return time.perf_counter() - self._t


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No garbage collection inside timed loops, as ``timeit`` (and torch.utils.benchmark)
    do: a collection is a pause of the host that has nothing to do with the model."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _time_blocks(
    fn: Callable[[], Any], min_run_time: float, clock, check: Callable[[], None] = lambda: None
) -> list[float]:
    """Blocks of back-to-back runs between two clock marks, as torch.utils.benchmark blocks
    its runs: the steady state, where the host queues run i+1 while the GPU works on run i.
    Blocks last about 50 ms (at least 2 runs); at least 5 blocks. Returns the mean time per
    run of each block, in seconds."""
    clock.sync()
    t = time.perf_counter()
    fn()
    clock.sync()
    per_block = max(2, int(0.05 / max(time.perf_counter() - t, 1e-6)))
    times: list[float] = []
    with _gc_paused():
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < min_run_time or len(times) < 5:
            check()
            clock.start()
            for _ in range(per_block):
                fn()
            times.append(clock.stop() / per_block)
            if len(times) >= 10_000:
                break
    return times


def _host_seconds(fn: Callable[[], Any], clock, n: int = 5) -> float:
    """Median host time to issue one run from an idle device: Python, dispatch and kernel
    launches. Close to the latency means the device waits on the host (launch-bound)."""
    samples = []
    with _gc_paused():
        for _ in range(n):
            clock.sync()
            t = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t)
    clock.sync()
    return statistics.median(samples)


def _capture(fn: Callable[[], Any], graph: torch.cuda.CUDAGraph, pool: Any = None) -> Any:
    """Capture one run of ``fn`` into ``graph``; returns the output each replay writes.
    Capture needs the run warmed up on a side stream first (lazy initialisation, cuDNN's
    algorithm search and the allocator's blocks must not happen while capturing), as
    PyTorch's CUDA graphs notes prescribe."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    with torch.cuda.graph(graph, pool=pool):
        out = fn()
    return out


def _host_sync(fn: Callable[[], Any]) -> str:
    """Why ``fn`` cannot be captured, found without capturing: it reads a value back to the
    host (``.item()``, ``nonzero``, a copy to the CPU), which PyTorch's sync debug mode flags
    in an ordinary run; "" when it does not. The mode is a prototype that misses some syncs,
    and a capture that then fails is reported by :func:`_time_graph`."""
    before = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings():  # "a prototype feature": known, and said below
        warnings.simplefilter("ignore", UserWarning)
        torch.cuda.set_sync_debug_mode("error")
    try:
        fn()
    except RuntimeError as e:
        return "the forward synchronizes with the host (" + f"{e}".split("\n")[0] + ")"
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            torch.cuda.set_sync_debug_mode(before)
    return ""


def _end_failed_capture(stream: torch.cuda.Stream, pool: Any) -> None:
    """After a failed capture: the caller's stream current again (``torch.cuda.graph``
    raises before it restores it) and the caching allocator out of the capture's memory
    pool, whose end the failure skipped. Not enough on torch 2.11: PyTorch's CUDA random
    generator stays mid-capture there, and the next random op on the GPU fails ("Offset
    increment outside graph capture"); :func:`_host_sync` keeps the common cause (a read
    back to the host) from reaching a capture."""
    torch.cuda.set_stream(stream)
    for release in ("_cuda_endAllocateToPool", "_cuda_releasePool"):
        with contextlib.suppress(Exception):  # private bindings: best effort
            getattr(torch._C, release)(stream.device_index, pool)
    torch.cuda.synchronize(stream.device)


def _time_graph(
    fn: Callable[[], Any], min_run_time: float, clock, check: Callable[[], None]
) -> tuple[list[float] | None, str]:
    """Replays of ``fn`` captured as a CUDA graph, timed in blocks as the eager runs are: one
    launch per run, so no host overhead between kernels. ``(None, why)`` where the model
    cannot be captured: it reads a value back to the host (checked before capturing), or
    the capture fails for another reason."""
    reason = _host_sync(fn)
    if reason:
        return None, f"no CUDA graph: {reason}"
    graph = torch.cuda.CUDAGraph()
    stream, pool = torch.cuda.current_stream(), torch.cuda.graph_pool_handle()
    try:
        _capture(fn, graph, pool)
    except RuntimeError as e:
        _end_failed_capture(stream, pool)
        return None, "no CUDA graph: capture failed: " + f"{e}".split("\n")[0]
    try:
        graph.replay()
        clock.sync()
        return _time_blocks(graph.replay, min_run_time, clock, check), ""
    finally:
        graph.reset()  # its private memory pool goes back before the cache is emptied


def _bound(host_s: float | None, latency_s: float, graph_s: float | None = None) -> str | None:
    """``"host"`` when the GPU waits on the host, else ``"device"``. With a CUDA graph's
    replay time (the GPU's own time) that is when the replay takes under 90 % of the eager
    latency; without one, when issuing a run takes at least 90 % of it.

    >>> _bound(0.0095, 0.010), _bound(0.001, 0.010), _bound(None, 0.010)
    ('host', 'device', None)
    >>> _bound(0.0085, 0.010, graph_s=0.002), _bound(0.0095, 0.010, graph_s=0.0097)
    ('host', 'device')
    """
    if graph_s is not None and graph_s == graph_s:
        return "host" if graph_s < HOST_BOUND * latency_s else "device"
    if host_s is None:
        return None
    return "host" if host_s >= HOST_BOUND * latency_s else "device"


def _time_cpu(
    fn: Callable[[], Any], min_run_time: float, check: Callable[[], None] = lambda: None
) -> list[float]:
    from torch.utils import benchmark as tb

    def run() -> Any:  # a check (a clock read) per run: nothing beside a CPU forward pass
        check()
        return fn()

    # Timer defaults to one thread; time with the threads this process (and the device
    # name) says it uses.
    timer = tb.Timer(stmt="fn()", globals={"fn": run}, num_threads=torch.get_num_threads())
    return list(timer.blocked_autorange(min_run_time=min_run_time).times)


def _row(cfg: Config, **values: Any) -> dict[str, Any]:
    return {
        "batch_size": cfg.batch_size,
        "dtype": cfg.dtype,
        "channels_last": cfg.channels_last,
        "compiled": cfg.compile,
        **values,
    }


def benchmark(
    model: nn.Module | str,
    input_size: Sequence[int] | None = None,
    *,
    device: str | torch.device = "auto",
    batch_sizes: Iterable[int] = (1, 32),
    dtypes: Iterable[str] = ("float32", "bfloat16"),
    channels_last: bool = False,
    compile: bool = False,
    cuda_graph: bool = False,
    min_run_time: float = 1.0,
    warmup: int = 3,
    cap_bytes: int | None = safety.DEFAULT_CAP_BYTES,
    progress: Progress | None = None,
    time_budget: float | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> pd.DataFrame:
    """Time ``model`` (an ``nn.Module`` or a zoo name) and return one row per configuration.

    ``input_size`` includes the batch dimension, which each of ``batch_sizes`` replaces; a zoo
    model defaults to its own size. Columns: model, device, device_name, torch, batch_size,
    dtype, channels_last, compiled, status, latency_ms (median), iqr_ms (spread), runs (timed
    runs behind the median), unstable (True when the IQR exceeds :data:`UNSTABLE_IQR_SHARE`
    of the median or fewer than :data:`MIN_STABLE_RUNS` runs were taken: rerun, or time
    longer),
    throughput (images/s), gflops (per forward), tflops (achieved), peak_tflops (where
    known), peak_memory_bytes (CUDA: the most allocated above what the process held
    before), host_ms and bound (CUDA only: the host time to issue one run,
    and ``"host"`` where the GPU waits on Python and kernel launches, else ``"device"``: with
    ``cuda_graph``, where the graph's replay takes under 90 % of the eager latency, else
    where issuing a run takes at least 90 % of it), graph_ms (with ``cuda_graph``: the
    median latency of the same forward captured once as a CUDA graph and replayed, a single
    launch per run; where the row is host-bound this is what the GPU itself needs; missing,
    with the reason in note, where the model cannot be captured), note.

    ``time_budget`` (seconds, counted from when the compute lock is taken) bounds the
    request: a configuration that :func:`estimate_seconds` says would not fit in what is left
    is skipped, one that runs past it is stopped between runs, and the rows say so (status
    ``skipped``/``stopped``). ``cancelled()``, checked between runs, stops it the same way
    (status ``cancelled``). While it waits for another job, ``progress`` says its place in
    the queue.

    >>> import torch.nn as nn
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
    >>> df = benchmark(net, (1, 3, 32, 32), device="cpu", batch_sizes=(1,),
    ...                dtypes=("float32",), min_run_time=0.05)
    >>> df.loc[0, "status"], int(df.loc[0, "batch_size"])
    ('ok', 1)
    """
    target = _target(model, input_size, device)
    dev, meta_model, input_size = target.device, target.meta_model, target.input_size
    label = model if isinstance(model, str) else getattr(model, "zoo_name", type(model).__name__)
    batches = sorted({int(b) for b in batch_sizes})
    if not batches or batches[0] < 1:
        raise ValueError(f"batch_sizes must be positive ints, got {list(batch_sizes)}")
    if batches[-1] > MAX_BATCH:
        raise ValueError(f"batch size {batches[-1]} is over the cap of {MAX_BATCH}")
    if not 0 < min_run_time <= MAX_RUN_TIME:
        raise ValueError(f"min_run_time must be in (0, {MAX_RUN_TIME}] seconds")
    wanted = list(dict.fromkeys(dtypes))
    bad = [d for d in wanted if d not in ("float32", "float16", "bfloat16")]
    if bad:
        raise ValueError(f"unknown dtype {bad[0]!r}; choose float32, float16 or bfloat16")
    a = analyze(meta_model, (1, *input_size[1:]))  # FLOPs and memory, once
    if cuda_graph and dev.type != "cuda":
        raise ValueError(f"cuda_graph=True needs a CUDA device; this run is on {dev.type}")
    configs = [Config(b, d, channels_last, compile, cuda_graph) for d in wanted for b in batches]
    name = device_name(dev)
    common = {"model": label, "device": dev.type, "device_name": name, "torch": torch.__version__}

    rows: list[dict[str, Any]] = []

    def waiting(place: int) -> None:
        if cancelled is not None and cancelled():
            raise _Stop("cancelled", "cancelled")
        if progress:
            progress(0, len(configs), safety.queue_text(place))

    try:
        with safety.exclusive(waiting):
            watch = _Watch(cancelled=cancelled, budget=time_budget)
            if time_budget is not None:
                watch.deadline = time.monotonic() + time_budget
            stopped: _Stop | None = None
            for i, cfg in enumerate(configs):
                msg = f"{label}: batch {cfg.batch_size}, {cfg.dtype}"
                if progress:
                    progress(i, len(configs), msg)
                    watch.progress = lambda i=i, msg=msg: progress(i, len(configs), msg)
                need = _config_seconds(a, dev.type, cfg, min_run_time, warmup)
                if stopped is None and need > watch.left():
                    stopped = _Stop(
                        "skipped",
                        f"would take about {need:.0f} s, over the request's time budget of "
                        f"{time_budget:g} s ({max(0.0, watch.left()):.0f} s left)",
                    )
                if stopped is not None:
                    rows.append({**common, **_row(cfg, status=stopped.status, note=stopped.note)})
                    continue
                # a zoo name is built on the device itself; a module is copied there
                try:
                    run = _run_one(
                        model, a, input_size, dev, cfg, min_run_time, warmup, cap_bytes, name, watch
                    )
                except _Stop as e:
                    stopped, run = e, _row(cfg, status=e.status, note=e.note)
                rows.append({**common, **run})
                if stopped is not None and stopped.status == "skipped":
                    stopped = None  # one configuration too long; a smaller one may still fit
            if progress:
                progress(len(configs), len(configs), "done")
    except _Stop as e:  # cancelled while waiting for the lock
        rows = [{**common, **_row(cfg, status=e.status, note=e.note)} for cfg in configs]
    return pd.DataFrame(rows)


def _run_one(
    model, a, input_size, dev, cfg: Config, min_run_time, warmup, cap_bytes, name, watch=None
) -> dict[str, Any]:
    check = watch.check if watch is not None else (lambda: None)
    if cfg.dtype not in supported_dtypes(dev):
        return _row(cfg, status="skipped", note=f"{cfg.dtype} is not supported on {dev.type}")
    dtype = getattr(torch, cfg.dtype)
    flops = a.total_flops * cfg.batch_size
    graph_times: list[float] | None = None
    graph_note = ""
    try:
        safety.check(
            safety.estimate(a, cfg.batch_size, dtype),
            dev,
            cap_bytes,
            what=f"batch {cfg.batch_size} in {cfg.dtype}",
        )
    except safety.BudgetError as e:
        return _row(cfg, status="refused", note=str(e), gflops=flops / 1e9)
    # Peak memory is counted above what the process held before: the copy, the input and
    # the activations of this configuration, not the caller's other tensors.
    base = torch.cuda.memory_allocated(dev) if dev.type == "cuda" else 0
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    shape = (cfg.batch_size, *input_size[1:])
    try:
        with _prepared(model, dev, dtype, shape, cfg.channels_last, cfg.compile) as prep:

            def run() -> Any:
                with torch.inference_mode():
                    return prep.forward(prep.x)

            clock = _CudaClock(dev) if dev.type == "cuda" else None
            _warm_up(run, warmup, check, clock.sync if clock is not None else lambda: None)
            if clock is not None:
                times = _time_blocks(run, min_run_time, clock, check)
                host = _host_seconds(run, clock)
                peak = torch.cuda.max_memory_allocated(dev) - base
                if cfg.cuda_graph:
                    graph_times, graph_note = _time_graph(run, min_run_time, clock, check)
            else:
                times = _time_cpu(run, min_run_time, check)
                host = peak = None
    except torch.cuda.OutOfMemoryError as e:
        return _row(cfg, status="out of memory", note=str(e).split("\n")[0], gflops=flops / 1e9)
    except (RuntimeError, AnalysisError) as e:
        return _row(
            cfg, status="error", note=f"{type(e).__name__}: {e}".split("\n")[0], gflops=flops / 1e9
        )
    med = statistics.median(times)
    if a.total_macs > 0:  # for estimate_seconds (a is at batch 1)
        _RATES[(dev.type, cfg.dtype)] = a.total_macs * cfg.batch_size / med
    q = statistics.quantiles(times, n=4) if len(times) >= 4 else [min(times), med, max(times)]
    return _row(
        cfg,
        status="ok",
        latency_ms=med * 1e3,
        iqr_ms=(q[2] - q[0]) * 1e3,
        runs=len(times),
        unstable=unstable(q[2] - q[0], med, len(times)),
        throughput=cfg.batch_size / med,
        gflops=flops / 1e9,
        tflops=flops / med / 1e12,
        peak_tflops=peak_tflops(name, cfg.dtype),
        peak_memory_bytes=peak,
        host_ms=None if host is None else host * 1e3,
        bound=_bound(host, med, _median_ms(graph_times) / 1e3),
        **({"graph_ms": _median_ms(graph_times)} if cfg.cuda_graph else {}),
        note=graph_note,
    )


def _median_ms(times: list[float] | None) -> float:
    return float("nan") if not times else statistics.median(times) * 1e3


def layer_times(
    model: nn.Module | str,
    input_size: Sequence[int] | None = None,
    *,
    device: str | torch.device = "auto",
    dtype: str = "float32",
    runs: int = 10,
    cap_bytes: int | None = safety.DEFAULT_CAP_BYTES,
) -> pd.DataFrame:
    """Per-layer breakdown for one configuration: median time of each leaf module call.

    Names match :func:`cnnviz.analyze`'s rows for module calls (``layer1.0.conv1``,
    ``relu#2``), so MACs can be joined on ``name``. On CUDA each call is bracketed by events
    (no synchronisation inside the pass); on the CPU by ``time.perf_counter``.

    >>> import torch.nn as nn
    >>> df = layer_times(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), (1, 3, 16, 16),
    ...                  device="cpu", runs=2)
    >>> list(df["name"])
    ['0', '1']
    """
    target = _target(model, input_size, device)
    return _timed_layers(
        model, target, analyze(target.meta_model, target.input_size), dtype, runs, cap_bytes
    )


def _timed_layers(
    model, target: _Target, a: Analysis, dtype: str, runs: int, cap_bytes
) -> pd.DataFrame:
    safety.check(
        safety.estimate(a, dtype=getattr(torch, dtype)),
        target.device,
        cap_bytes,
        what="per-layer timing",
    )
    with safety.exclusive():
        return _layer_times(model, target.input_size, target.device, dtype, runs)


def layer_breakdown(
    model: nn.Module | str,
    input_size: Sequence[int] | None = None,
    *,
    device: str | torch.device = "auto",
    dtype: str = "float32",
    runs: int = 5,
    cap_bytes: int | None = safety.DEFAULT_CAP_BYTES,
) -> pd.DataFrame:
    """:func:`layer_times` joined with :func:`cnnviz.analyze`'s rows: kind, MACs and the
    achieved GFLOP/s of each leaf layer.

    >>> import torch.nn as nn
    >>> df = layer_breakdown(nn.Sequential(nn.Conv2d(3, 4, 3)), (1, 3, 8, 8), device="cpu",
    ...                      runs=2)
    >>> list(df.columns), int(df.loc[0, "macs"])  # 6*6*4*3*3*3
    (['name', 'ms', 'kind', 'macs', 'gflops_per_s'], 3888)
    """
    target = _target(model, input_size, device)
    a = analyze(target.meta_model, target.input_size)
    times = _timed_layers(model, target, a, dtype, runs, cap_bytes)
    rows = {r.name: r for r in a.layers if r.is_module}
    times["kind"] = times["name"].map(lambda n: rows[n].kind if n in rows else None)
    times["macs"] = times["name"].map(lambda n: rows[n].macs if n in rows else 0)
    times["gflops_per_s"] = 2 * times["macs"] / (times["ms"] / 1e3) / 1e9
    return times


def _layer_times(model, size, dev, dtype, runs) -> pd.DataFrame:
    samples: dict[str, list[float]] = {}
    pending: list[tuple[str, Any, Any]] = []
    pending_done: list[tuple[str, Any, Any]] = []
    calls: dict[str, int] = {}
    is_cuda = dev.type == "cuda"

    def pre(mod, args):
        n = names[id(mod)]
        calls[n] = calls.get(n, 0) + 1
        key = n if calls[n] == 1 else f"{n}#{calls[n]}"
        if is_cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
        else:
            ev = time.perf_counter()
        pending.append((key, ev, None))

    def post(mod, args, out):
        key, ev, _ = pending.pop()
        if is_cuda:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            pending_done.append((key, ev, end))
        else:
            samples.setdefault(key, []).append(time.perf_counter() - ev)

    with _prepared(model, dev, getattr(torch, dtype), size) as prep:
        m = prep.model
        names = {id(mod): n for n, mod in m.named_modules()}
        handles = [
            h
            for mod in m.modules()
            if is_leaf(mod)
            for h in (mod.register_forward_pre_hook(pre), mod.register_forward_hook(post))
        ]
        del m

        def run() -> Any:
            with torch.inference_mode():
                return prep.forward(prep.x)

        try:
            _warm_up(run, 1)
            samples.clear()
            pending_done.clear()
            with _gc_paused():
                for _ in range(runs):
                    calls.clear()
                    run()
            if is_cuda:
                torch.cuda.synchronize(dev)
                for key, start, end in pending_done:
                    samples.setdefault(key, []).append(start.elapsed_time(end) / 1e3)
        finally:
            for h in handles:
                h.remove()
    order = list(samples)
    return pd.DataFrame({"name": order, "ms": [statistics.median(samples[k]) * 1e3 for k in order]})
