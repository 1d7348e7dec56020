#!/usr/bin/env python
"""Why cnnviz.timing and torch.utils.benchmark disagree on one configuration (a CUDA GPU).

For each ``model:batch:dtype`` it separates the timer from the setup. Two copies of the model
run side by side: ``ref``, built by hand as ``gpu_check.py``'s reference is, and ``ours``,
the copy ``cnnviz.timing`` makes for itself. Each is timed by both timers in interleaved
rounds: torch.utils.benchmark's ``blocked_autorange`` (``tb``) and cnnviz's event-timed
blocks (``blocks``). Each round also makes one full ``timing.benchmark`` call. A bias that
follows the copy points at the setup; one that follows the timer points at the method.

Then, per copy:
- the host time to issue one run from an idle GPU;
- the latency of the same forward captured as a CUDA graph;
- a torch.profiler view of 5 runs: kernels per run, GPU busy time per run, the span from the
  first kernel to the last (busy plus the gaps where the GPU waited on the host), the
  kernels whose counts differ between the copies, and the heaviest host-side ops.

Run from the repository root on a CUDA machine:

    python bench/gpu_profile.py [googlenet:64:bfloat16 ...] [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from gpu_check import Reference
from torch.utils import benchmark as tb

from cnnviz import timing

DEFAULT = ("googlenet:64:bfloat16", "googlenet:1:bfloat16", "resnet50:64:bfloat16")


def tb_ms(fn, t: float) -> float:
    timer = tb.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=t).median * 1e3


def blocks_ms(fn, t: float, clock) -> float:
    return statistics.median(timing._time_blocks(fn, t, clock)) * 1e3


def profile(fn, sync, runs: int = 5) -> dict:
    """Kernels per run, GPU busy and span per run (ms), kernel counts, top host ops."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as prof_ctx

    sync()
    with prof_ctx(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(runs):
            fn()
        sync()
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    busy = sum(e.time_range.elapsed_us() for e in kernels) / 1e3 / runs
    span = (
        (max(e.time_range.end for e in kernels) - min(e.time_range.start for e in kernels))
        / 1e3
        / runs
        if kernels
        else float("nan")
    )
    host_ops = sorted(
        (k for k in prof.key_averages() if k.key.startswith("aten::")),
        key=lambda k: -k.cpu_time_total,
    )[:8]
    return {
        "kernels_per_run": len(kernels) / runs,
        "busy_ms": busy,
        "span_ms": span,
        "kernel_counts": collections.Counter(e.name[:100] for e in kernels),
        "host_ops": [(k.key, k.count // runs, k.cpu_time_total / 1e3 / runs) for k in host_ops],
    }


def probe(spec: str, rounds: int, t: float, device: str) -> dict:
    name, batch, dtype = spec.split(":")
    batch = int(batch)
    dev = torch.device(device)
    clock = timing._CudaClock(dev) if dev.type == "cuda" else timing._WallClock()
    ref = Reference(name, batch, dtype, device)
    shape = tuple(ref.x.shape)
    cells: dict[str, list[float]] = collections.defaultdict(list)
    with timing._prepared(name, dev, getattr(torch, dtype), shape) as prep:

        def ours():
            with torch.inference_mode():
                return prep.forward(prep.x)

        for _ in range(3):
            ours()
        clock.sync()
        fns = {"ref": ref.run, "ours": ours}
        order = [(c, m) for c in ("ref", "ours") for m in ("tb", "blocks")]
        for r in range(rounds):
            for copy, method in order[r % 4 :] + order[: r % 4]:
                fn = fns[copy]
                ms = tb_ms(fn, t) if method == "tb" else blocks_ms(fn, t, clock)
                cells[f"{copy}/{method}"].append(ms)
            df = timing.benchmark(
                name, device=device, batch_sizes=(batch,), dtypes=(dtype,), min_run_time=t
            )
            cells["benchmark()"].append(float(df.loc[0, "latency_ms"]))
        out = {"spec": spec, "cells": dict(cells)}
        for copy, fn in fns.items():
            graph, note = (
                timing._time_graph(fn, t, clock, lambda: None)
                if dev.type == "cuda"
                else (None, "no CUDA")
            )
            out[copy] = {
                "host_ms": timing._host_seconds(fn, clock) * 1e3,
                "graph_ms": statistics.median(graph) * 1e3 if graph else note,
                **profile(fn, clock.sync),
            }
    return out


def report(o: dict) -> None:
    print(f"\n== {o['spec']}")
    for cell, values in o["cells"].items():
        vals = " ".join(f"{v:7.3f}" for v in values)
        print(f"  {cell:14} median {statistics.median(values):7.3f} ms   rounds {vals}")
    for copy in ("ref", "ours"):
        p = o[copy]
        graph = p["graph_ms"]
        graph = f"{graph:.3f} ms" if isinstance(graph, float) else graph
        print(
            f"  {copy:5} host {p['host_ms']:.3f} ms, graph {graph}, {p['kernels_per_run']:.0f} "
            f"kernels/run, GPU busy {p['busy_ms']:.3f} ms/run, span {p['span_ms']:.3f} ms/run"
        )
        for key, count, ms in p["host_ops"]:
            print(f"        {key:40} x{count:<4} {ms:7.3f} ms/run host")
    a, b = o["ref"]["kernel_counts"], o["ours"]["kernel_counts"]
    differ = sorted(k for k in set(a) | set(b) if a[k] != b[k])
    print(f"  kernels whose counts differ (ref, ours): {len(differ)}")
    for k in differ[:30]:
        print(f"    {a[k]:4} {b[k]:4}  {k}")
    top = o["ref"]["kernel_counts"].most_common(6)
    print("  most frequent kernels (ref): " + "; ".join(f"{k[:60]} x{v}" for k, v in top))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("specs", nargs="*", default=list(DEFAULT))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--time", type=float, default=0.3)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="cpu: dry run")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing to profile (--device cpu dry-runs the script)")
        return 0
    torch.backends.cudnn.benchmark = True  # as gpu_check.py runs
    what = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    print(
        f"{what} | torch {torch.__version__} | cuDNN "
        f"{torch.backends.cudnn.version()} | allow_tf32 cudnn {torch.backends.cudnn.allow_tf32}"
        f" matmul {torch.backends.cuda.matmul.allow_tf32}"
    )
    t0 = time.perf_counter()
    results = []
    for spec in args.specs:
        o = probe(spec, args.rounds, args.time, args.device)
        report(o)
        results.append(o)
        if args.device == "cuda":
            torch.cuda.empty_cache()
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=dict))
    return 0


if __name__ == "__main__":
    sys.exit(main())
