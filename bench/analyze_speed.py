"""How fast is ``cnnviz.analyze`` next to the tools people would otherwise use?

Run from the repository root:

    python bench/analyze_speed.py            # full run (a few minutes at most)
    python bench/analyze_speed.py --quick    # fewer repeats
    python bench/analyze_speed.py --json out.json --profile

Everything runs single-threaded (``torch.set_num_threads(1)``) so the ratios do not depend on
the machine's core count. Each timing is the median of several runs in this one process, after
one untimed warm-up call per tool and model (first calls pay for lazy imports and caches).
The script is a benchmark, not a test: it exits 0 even when a target fails.
See bench/README.md for what each column means.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import io
import json
import logging
import platform
import pstats
import resource
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torchinfo
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import cnnviz
from cnnviz.zoo.vgg import CFGS, make_layers

INPUT = (1, 3, 224, 224)
MODELS = ("resnet50", "resnet152", "vgg16")
BIG_SCALE = 16  # VGG-16 with every width x16: about 35 billion parameters

# Targets from the issue.
TARGET_RATIO_RESNET152 = 0.25  # analyze <= 0.25x torchinfo on resnet152
TARGET_BIG_SECONDS = 2.0  # the 35B model analyzed in < 2 s ...
TARGET_BIG_RSS_MB = 300.0  # ... with < 300 MB peak-RSS rise

FlopCountAnalysis: Any = None  # set by load_fvcore() in the parent process only
FVCORE_ERROR: str | None = "not loaded"


def load_fvcore() -> None:
    """fvcore is optional (bench/requirements.txt); the big-model child never imports it."""
    global FlopCountAnalysis, FVCORE_ERROR
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from fvcore.nn import FlopCountAnalysis as fca
    except Exception as e:  # ImportError, or a broken install
        FVCORE_ERROR = f"{type(e).__name__}: {e}"
    else:
        FlopCountAnalysis, FVCORE_ERROR = fca, None


# --------------------------------------------------------------------------------------------
# timing helpers


def run_analyze(model: nn.Module) -> cnnviz.Analysis:
    return cnnviz.analyze(model, INPUT)


def run_torchinfo(model: nn.Module) -> Any:
    return torchinfo.summary(model, input_size=INPUT, verbose=0)


def run_flopcounter(model: nn.Module, x: torch.Tensor) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(x)
    return fc.get_total_flops()


def run_fvcore(model: nn.Module, x: torch.Tensor) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # jit TracerWarnings
        return FlopCountAnalysis(model, x).total()


def run_meta_forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


# --------------------------------------------------------------------------------------------
# part 1: zoo models against torchinfo, FlopCounterMode, fvcore and a bare meta forward


def bench_model(name: str, repeats: int) -> dict[str, Any]:
    torch.manual_seed(0)
    model = cnnviz.zoo.get_model(name).eval()  # real CPU weights
    meta_model = cnnviz.zoo.get_model(name, device="meta").eval()
    x = torch.randn(INPUT)
    x_meta = torch.empty(INPUT, device="meta")

    tools: dict[str, Callable[[], Any]] = {
        "analyze": lambda: run_analyze(model),
        "analyze_meta_model": lambda: run_analyze(meta_model),
        "torchinfo": lambda: run_torchinfo(model),
        "flopcounter_cpu": lambda: run_flopcounter(model, x),
        "flopcounter_meta": lambda: run_flopcounter(meta_model, x_meta),
        "meta_forward": lambda: run_meta_forward(meta_model, x_meta),
    }
    if FlopCountAnalysis is not None:
        tools["fvcore"] = lambda: run_fvcore(model, x)

    # Warm every tool once, then time them round-robin so slow drift (thermal, page cache)
    # hits all tools alike.
    outs = {k: fn() for k, fn in tools.items()}
    times: dict[str, list[float]] = {k: [] for k in tools}
    for _ in range(repeats):
        for k, fn in tools.items():
            gc.collect()
            t0 = time.perf_counter()
            outs[k] = fn()
            times[k].append((time.perf_counter() - t0) * 1e3)
    ms = {k: statistics.median(v) for k, v in times.items()}

    a = outs["analyze"]
    ti = outs["torchinfo"]
    fc_flops = outs["flopcounter_cpu"]
    sanity = {
        "analyze_macs": a.total_macs,
        "flopcounter_flops": fc_flops,
        "flopcounter_meta_flops": outs["flopcounter_meta"],
        "macs_ok": a.total_macs == fc_flops // 2,
        "meta_flops_equal_cpu": outs["flopcounter_meta"] == fc_flops,
        "analyze_params": a.total_params,
        "torchinfo_params": ti.total_params,
        "params_ok": a.total_params == ti.total_params,
        "torchinfo_mult_adds": ti.total_mult_adds,
        "fvcore_total": outs.get("fvcore"),
        "analyze_meta_model_same": (
            outs["analyze_meta_model"].total_macs == a.total_macs
            and outs["analyze_meta_model"].total_params == a.total_params
        ),
    }
    return {"model": name, "ms": ms, "runs_ms": times, "sanity": sanity}


def fmt_ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}"


def fmt_ratio(a: float, b: float | None) -> str:
    return "-" if b is None else f"{a / b:.3f}"


def print_table(rows: list[dict[str, Any]]) -> None:
    cols = [
        ("torchinfo", "torchinfo"),
        ("flopcounter_cpu", "FC(cpu)"),
        ("flopcounter_meta", "FC(meta)"),
        ("fvcore", "fvcore"),
        ("meta_forward", "meta fwd"),
    ]
    head = f"{'model':<10} {'analyze':>8}"
    sub = f"{'':<10} {'ms':>8}"
    for _, label in cols:
        head += f" | {label:>16}"
        sub += f" | {'ms':>8} {'a/x':>7}"
    print(head)
    print(sub)
    print("-" * len(sub))
    for r in rows:
        ms = r["ms"]
        line = f"{r['model']:<10} {fmt_ms(ms['analyze']):>8}"
        for key, _ in cols:
            v = ms.get(key)
            line += f" | {fmt_ms(v):>8} {fmt_ratio(ms['analyze'], v):>7}"
        print(line)
    print(
        "a/x = analyze ms / that tool's ms (below 1: analyze is faster). "
        "analyze runs on the real CPU model."
    )


def print_sanity(rows: list[dict[str, Any]]) -> None:
    print("\nSanity (not timing):")
    for r in rows:
        s = r["sanity"]
        macs = "ok" if s["macs_ok"] else "MISMATCH"
        params = "ok" if s["params_ok"] else "MISMATCH"
        fv = "" if s["fvcore_total"] is None else f"  fvcore total={s['fvcore_total']:,}"
        print(
            f"  {r['model']:<10} analyze MACs={s['analyze_macs']:,} vs FlopCounter flops//2="
            f"{s['flopcounter_flops'] // 2:,} [{macs}]; params={s['analyze_params']:,} vs "
            f"torchinfo={s['torchinfo_params']:,} [{params}]{fv}"
        )
        if not s["meta_flops_equal_cpu"]:
            print(f"  {'':<10} note: FlopCounter meta flops differ from cpu flops")
        if not s["analyze_meta_model_same"]:
            print(f"  {'':<10} note: analyze on the meta copy gives different totals")
    print(
        "  analyze on the meta copy of each model (ms): "
        + ", ".join(f"{r['model']} {fmt_ms(r['ms']['analyze_meta_model'])}" for r in rows)
    )


# --------------------------------------------------------------------------------------------
# part 2: a ~35B-parameter VGG-16 (every width x16) on the meta device, in a fresh subprocess


def build_big_vgg(scale: int = BIG_SCALE) -> nn.Module:
    """torchvision's VGG-16 layout (cfg D) with every width times ``scale``, on meta.

    ``cnnviz.zoo.VGG`` hard-codes the classifier widths (512*7*7 -> 4096 -> 4096), so the same
    layout is spelled out as an nn.Sequential with the zoo's own ``make_layers``.
    """
    cfg = [v if v == "M" else int(v) * scale for v in CFGS["D"]]
    with torch.device("meta"):
        return nn.Sequential(
            make_layers(cfg),
            nn.AdaptiveAvgPool2d((7, 7)),
            nn.Flatten(1),
            nn.Linear(512 * scale * 7 * 7, 4096 * scale),
            nn.ReLU(True),
            nn.Dropout(0.5),
            nn.Linear(4096 * scale, 4096 * scale),
            nn.ReLU(True),
            nn.Dropout(0.5),
            nn.Linear(4096 * scale, 1000),
        ).eval()


def maxrss_mb() -> float:
    """Peak RSS of this process so far, per getrusage."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 2**20 if sys.platform == "darwin" else r / 1024  # bytes on macOS, KiB on Linux


def proc_status_mb(key: str) -> float | None:
    """VmRSS (resident now) or VmHWM (peak of this address space) from /proc; Linux only."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def reset_hwm() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def big_child(repeats: int) -> None:
    """Runs in a fresh interpreter: prints one JSON line with the big model's numbers.

    Two peak-RSS measurements, because on Linux ``ru_maxrss`` is inherited across exec: a child
    started by subprocess begins with the parent's peak (vfork) or the parent's RSS at fork, so
    a rise can hide under it. VmHWM is per address space and can be reset right before the
    calls, so ``peak VmHWM after - VmRSS before`` is the honest figure where /proc exists.
    """
    torch.set_num_threads(1)
    model = build_big_vgg()
    params = sum(p.numel() for p in model.parameters())
    gc.collect()
    maxrss0 = maxrss_mb()
    cur0 = proc_status_mb("VmRSS")
    hwm_reset = reset_hwm()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a = cnnviz.analyze(model, INPUT)
        times.append(time.perf_counter() - t0)
    maxrss1 = maxrss_mb()
    hwm1 = proc_status_mb("VmHWM")
    exact = hwm_reset and cur0 is not None and hwm1 is not None
    out = {
        "params": params,
        "analyze_params": a.total_params,
        "analyze_macs": a.total_macs,
        "times_s": times,
        "median_s": statistics.median(times),
        "maxrss_before_mb": maxrss0,
        "maxrss_after_mb": maxrss1,
        "maxrss_rise_mb": maxrss1 - maxrss0,
        "rss_before_mb": cur0,
        "hwm_after_mb": hwm1 if exact else None,
        "hwm_rise_mb": hwm1 - cur0 if exact else None,
    }
    out["rss_rise_mb"] = out["hwm_rise_mb"] if exact else out["maxrss_rise_mb"]
    print("BIGRESULT " + json.dumps(out))


def bench_big(repeats: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--_big-child", str(repeats)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    for line in proc.stdout.splitlines():
        if line.startswith("BIGRESULT "):
            return json.loads(line[len("BIGRESULT ") :])
    return {"error": f"child exited {proc.returncode}: {proc.stderr.strip()[-2000:]}"}


# --------------------------------------------------------------------------------------------
# optional: where analyze spends its time


def profile_analyze(name: str = "resnet152", top: int = 10) -> str:
    model = cnnviz.zoo.get_model(name).eval()
    run_analyze(model)  # warm
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(5):
        run_analyze(model)
    prof.disable()
    buf = io.StringIO()
    for key in ("tottime", "cumulative"):
        st = pstats.Stats(prof, stream=buf)
        st.strip_dirs().sort_stats(key).print_stats(top)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats (3 instead of 7)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--profile", action="store_true", help="cProfile analyze on resnet152")
    p.add_argument("--models", nargs="+", default=list(MODELS), help=argparse.SUPPRESS)
    p.add_argument("--_big-child", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args._big_child is not None:
        big_child(args._big_child)
        return 0

    with contextlib.suppress(AttributeError, ValueError):
        sys.stdout.reconfigure(line_buffering=True)  # keep stdout in step with stderr progress
    torch.set_num_threads(1)
    load_fvcore()
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    repeats = 3 if args.quick else 7
    print(
        f"cnnviz {cnnviz.__version__}, torch {torch.__version__}, torchinfo "
        f"{getattr(torchinfo, '__version__', '?')}, python {platform.python_version()}, "
        f"{platform.machine()}; threads={torch.get_num_threads()}, input={INPUT}, "
        f"median of {repeats} after 1 warm-up"
    )
    if FlopCountAnalysis is None:
        print(f"note: fvcore not importable ({FVCORE_ERROR}); its columns are skipped")
    print()

    # The big-model child runs first, while this process is still small: on Linux a child's
    # ru_maxrss starts at the parent's peak (see big_child).
    sys.stdout.flush()
    print("  analyzing the 35B VGG in a subprocess ...", file=sys.stderr, flush=True)
    big = bench_big(3)

    rows = []
    for name in args.models:
        print(f"  timing {name} ...", file=sys.stderr, flush=True)
        rows.append(bench_model(name, repeats))
    print_table(rows)
    print_sanity(rows)

    print(f"\nVGG-16 with every width x{BIG_SCALE} on the meta device (fresh subprocess):")
    if "error" in big:
        print(f"  FAILED to run: {big['error']}")
    else:
        print(
            f"  parameters      {big['params']:,} ({big['params'] / 1e9:.1f} B); analyze says "
            f"{big['analyze_params']:,} params, {big['analyze_macs'] / 1e12:.2f} T MACs"
        )
        runs = ", ".join(f"{t:.3f}" for t in big["times_s"])
        print(f"  analyze         median {big['median_s']:.3f} s  (runs: {runs} s)")
        print(
            f"  ru_maxrss       {big['maxrss_before_mb']:.0f} MB before -> "
            f"{big['maxrss_after_mb']:.0f} MB after: rise {big['maxrss_rise_mb']:.0f} MB "
            "(Linux: starts at the parent's peak, so it can hide a rise)"
        )
        if big["hwm_rise_mb"] is not None:
            print(
                f"  VmRSS/VmHWM     {big['rss_before_mb']:.0f} MB resident before -> "
                f"{big['hwm_after_mb']:.0f} MB peak during the calls: rise "
                f"{big['hwm_rise_mb']:.0f} MB (used for the target)"
            )

    print("\nTargets:")
    targets = []
    r152 = next((r for r in rows if r["model"] == "resnet152"), None)
    if r152 is not None:
        ratio = r152["ms"]["analyze"] / r152["ms"]["torchinfo"]
        targets.append(
            (
                f"analyze <= {TARGET_RATIO_RESNET152:g}x torchinfo on resnet152",
                f"{ratio:.3f}x",
                ratio <= TARGET_RATIO_RESNET152,
            )
        )
    if "error" not in big:
        targets.append(
            (
                f"35B model analyzed in < {TARGET_BIG_SECONDS:g} s",
                f"{big['median_s']:.3f} s",
                big["median_s"] < TARGET_BIG_SECONDS,
            )
        )
        targets.append(
            (
                f"35B model peak-RSS rise < {TARGET_BIG_RSS_MB:g} MB",
                f"{big['rss_rise_mb']:.0f} MB",
                big["rss_rise_mb"] < TARGET_BIG_RSS_MB,
            )
        )
    else:
        targets.append(("35B model analyzed (time, RSS)", "did not run", False))
    for label, value, ok in targets:
        print(f"  [{verdict(ok)}] {label:<45} {value}")
    sane = all(r["sanity"]["macs_ok"] and r["sanity"]["params_ok"] for r in rows)
    print(f"  [{verdict(sane)}] {'MACs and params agree with FlopCounter/torchinfo':<45}")

    prof_text = None
    if args.profile:
        print("\ncProfile of 5x cnnviz.analyze(resnet152) (after a warm-up):")
        prof_text = profile_analyze()
        print(prof_text)

    if args.json:
        result = {
            "versions": {
                "cnnviz": cnnviz.__version__,
                "torch": torch.__version__,
                "torchinfo": getattr(torchinfo, "__version__", None),
                "python": platform.python_version(),
                "fvcore": FVCORE_ERROR is None,
            },
            "threads": 1,
            "input": INPUT,
            "repeats": repeats,
            "models": rows,
            "big_vgg16_x16": big,
            "targets": [{"target": t, "value": v, "pass": ok} for t, v, ok in targets],
            "sanity_ok": sane,
            "profile": prof_text,
        }
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2, default=str)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
