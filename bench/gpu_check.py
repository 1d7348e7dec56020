#!/usr/bin/env python
"""GPU check for cnnviz.timing: AlexNet, VGG16, GoogLeNet and ResNet-50 at batch 1 and 64 in
float32 and bfloat16, each median compared with torch.utils.benchmark on the same
configuration: they should agree within 3 %, or within the reference's own round-to-round
change (``tb noise``) where that is larger.

Method: paired and interleaved. For each configuration one reference copy of the model and one
input are built; then ``--rounds`` rounds each make one full ``cnnviz.timing.benchmark`` call
(its own copy, warm-up and timing) and one ``torch.utils.benchmark`` measurement of the
reference, the order flipping every round. The check is the median over rounds of the paired
ratio cnnviz / reference: host speed that drifts over seconds (seen on a shared GPU machine,
where the same launch-bound configuration moved by up to 2x between runs) moves both halves of
a pair alike. ``tb noise`` is the reference against itself, the median change from one round
to the next: the noise floor of the comparison on this machine. The ``bound`` column says
which configurations are host-bound (the GPU waits on Python and kernel launches), where that
drift lives; ``graph ms`` is cnnviz's latency of the same forward captured as a CUDA graph
(``cuda_graph=True``; ``--no-graphs`` leaves it out), the GPU's own time on those rows.

Needs only a CUDA build of PyTorch (plus pandas); run from the repository root:

    python bench/gpu_check.py [--time 0.3] [--rounds 4] [--json out.json]
    python bench/gpu_check.py --device cpu --models resnet20 --batches 1 --dtypes float32

The second line is a dry run of the script itself on the CPU. On a GPU it finishes in about
four minutes and exits 1 when a configuration disagrees by more than the tolerance. CI never
runs it on a GPU.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from torch.utils import benchmark as tb

from cnnviz import timing, zoo

MODELS = ("alexnet", "vgg16", "googlenet", "resnet50")


class Reference:
    """An independent copy of the model and one input, timed by torch.utils.benchmark."""

    def __init__(self, name: str, batch: int, dtype: str, device: str) -> None:
        torch.manual_seed(0)
        dt = getattr(torch, dtype)
        self.model = zoo.get_model(name, device=device).to(dt).eval()
        size = self.model.default_input_size
        self.x = torch.randn((batch, *size[1:]), device=device, dtype=dt)
        for _ in range(3):
            self.run()

    def run(self):
        with torch.inference_mode():
            return self.model(self.x)

    def median_ms(self, min_run_time: float) -> float:
        # The same threads as cnnviz.timing uses (Timer's default is one).
        timer = tb.Timer(
            stmt="run()", globals={"run": self.run}, num_threads=torch.get_num_threads()
        )
        return timer.blocked_autorange(min_run_time=min_run_time).median * 1e3


def check_one(name: str, batch: int, dtype: str, args) -> dict:
    """Paired rounds for one configuration; the result row with its verdict."""

    def ours() -> dict:
        df = timing.benchmark(
            name,
            device=args.device,
            batch_sizes=(batch,),
            dtypes=(dtype,),
            min_run_time=args.time,
            cuda_graph=args.graphs and args.device == "cuda",
        )
        return df.iloc[0].to_dict()

    first = ours()  # before the reference exists, and it tells whether this runs at all
    if first["status"] != "ok":
        return {**first, "verdict": first["status"]}
    ref = Reference(name, batch, dtype, args.device)
    # Round 1: cnnviz (above), then the reference; later rounds alternate which goes first.
    rows, refs = [first], [ref.median_ms(args.time)]
    for r in range(1, args.rounds):
        if r % 2:
            refs.append(ref.median_ms(args.time))
            rows.append(ours())
        else:
            rows.append(ours())
            refs.append(ref.median_ms(args.time))
    ref = None
    if args.device == "cuda":
        torch.cuda.empty_cache()
    if any(row["status"] != "ok" for row in rows):
        bad = next(row for row in rows if row["status"] != "ok")
        return {**bad, "verdict": bad["status"]}
    ratios = [row["latency_ms"] / r for row, r in zip(rows, refs, strict=True)]
    row = sorted(rows, key=lambda r: r["latency_ms"])[len(rows) // 2]
    diff = statistics.median(ratios) - 1
    # The reference against itself, round to round: the noise floor of this comparison here.
    steps = [abs(b / a - 1) for a, b in itertools.pairwise(refs)]
    noise = statistics.median(steps) if steps else float("nan")
    graphs = [g for g in (r.get("graph_ms") for r in rows) if g is not None and g == g]
    return {
        **row,
        "cnnviz_ms_rounds": [r["latency_ms"] for r in rows],
        "reference_ms_rounds": refs,
        "reference_ms": statistics.median(refs),
        "graph_ms": statistics.median(graphs) if graphs else None,
        "diff": diff,
        "ref_noise": noise,
        "verdict": "ok" if within(diff, noise, args.tolerance) else "DIFFERS",
    }


def within(diff: float, noise: float, tolerance: float) -> bool:
    """The check: within ``tolerance`` of the reference, or within its own noise if larger.

    >>> within(0.02, 0.001, 0.03), within(0.05, 0.06, 0.03), within(-0.05, 0.01, 0.03)
    (True, True, False)
    """
    return abs(diff) <= max(tolerance, noise if noise == noise else 0.0)


def fmt_row(r: dict) -> str:
    head = f"{r['model']:10} {r['batch_size']:>5} {r['dtype']:9}"
    if r.get("diff") is None:
        return f"{head} {r['verdict']}: {r.get('note', '')}"
    peak = r.get("peak_tflops")
    share = f"{r['tflops'] / peak:.1%}" if peak and peak == peak else "-"
    mem = r.get("peak_memory_bytes")
    mem = f"{mem / 2**20:.0f}Mi" if mem is not None and mem == mem else "-"
    host = r.get("host_ms")
    host = f"{host:.3f}" if host is not None and host == host else "-"
    graph = r.get("graph_ms")
    graph = f"{graph:.3f}" if graph is not None and graph == graph else "-"
    return (
        f"{head} {r['latency_ms']:>10.3f} {r['reference_ms']:>9.3f} {r['diff']:>+7.1%} "
        f"{r['ref_noise']:>8.1%} {host:>8} {r.get('bound') or '-':>6} {graph:>8} "
        f"{r['throughput']:>9.0f} {r['tflops']:>8.2f} {share:>7} {mem:>8}  {r['verdict']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 64])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--time", type=float, default=0.3, help="seconds per side per round")
    parser.add_argument("--rounds", type=int, default=4, help="paired rounds per configuration")
    parser.add_argument("--tolerance", type=float, default=0.03)
    parser.add_argument(
        "--no-graphs", dest="graphs", action="store_false", help="no CUDA graph column"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing to check (--device cpu dry-runs the script)")
        return 0
    if args.device == "cuda":
        torch.backends.cudnn.benchmark = True
        what = f"{torch.cuda.get_device_name()} | cuDNN {torch.backends.cudnn.version()}"
    else:
        what = timing.device_name(torch.device("cpu"))
    print(
        f"{what} | torch {torch.__version__} | Python {sys.version.split()[0]} | "
        f"{args.rounds} paired rounds of {args.time} s a side\n"
    )
    header = (
        f"{'model':10} {'batch':>5} {'dtype':9} {'cnnviz ms':>10} {'tb ms':>9} {'diff':>7} "
        f"{'tb noise':>8} {'host ms':>8} {'bound':>6} {'graph ms':>8} {'img/s':>9} {'TFLOP/s':>8} "
        f"{'of peak':>7} {'peak mem':>8}  check"
    )
    print(header)
    print("-" * len(header))
    t0 = time.perf_counter()
    results = []
    for name in args.models:
        for dtype in args.dtypes:
            for batch in args.batches:
                r = check_one(name, batch, dtype, args)
                results.append(r)
                print(fmt_row(r), flush=True)
    checked = [r for r in results if r.get("diff") is not None]
    print(
        f"\n{sum(r['verdict'] == 'ok' for r in checked)} of {len(checked)} configurations "
        f"within {args.tolerance:.0%} (or the reference's noise) of torch.utils.benchmark "
        f"({time.perf_counter() - t0:.0f} s)"
    )
    if checked:
        worst = max(checked, key=lambda r: abs(r["diff"]))
        print(
            f"worst: {worst['model']} b{worst['batch_size']} {worst['dtype']} "
            f"{worst['diff']:+.1%}; median |diff| "
            f"{statistics.median(abs(r['diff']) for r in checked):.1%}; the reference against "
            f"itself, round to round: worst {max(r['ref_noise'] for r in checked):.1%}, median "
            f"{statistics.median(r['ref_noise'] for r in checked):.1%}"
        )
        for bound in ("host", "device"):
            group = [r for r in checked if r.get("bound") == bound]
            if group:
                print(
                    f"{bound}-bound: {len(group)} configurations, worst |diff| "
                    f"{max(abs(r['diff']) for r in group):.1%}, worst reference noise "
                    f"{max(r['ref_noise'] for r in group):.1%}"
                )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    failed = [r for r in results if r["verdict"] not in ("ok", "skipped")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
