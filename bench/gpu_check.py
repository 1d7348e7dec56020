#!/usr/bin/env python
"""GPU check for cnnviz.timing: AlexNet, VGG16, GoogLeNet and ResNet-50 at batch 1 and 64 in
float32 and bfloat16, each median compared with torch.utils.benchmark on the same
configuration (they should agree within 5 %). Each configuration is measured --repeats times
on both sides, alternating, and the medians are compared.

Needs only a CUDA build of PyTorch (plus pandas); run from the repository root:

    python bench/gpu_check.py [--time 1.0] [--json out.json]

It finishes in a few minutes and exits 1 when a configuration disagrees by more than the
tolerance. CI never runs it (there is no GPU there).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from torch.utils import benchmark as tb

from cnnviz import timing, zoo

MODELS = ("alexnet", "vgg16", "googlenet", "resnet50")


def reference_ms(name: str, batch: int, dtype: str, min_run_time: float) -> float:
    """Median latency from torch.utils.benchmark on an independent copy of the model."""
    torch.manual_seed(0)
    model = zoo.get_model(name, device="cuda").to(getattr(torch, dtype)).eval()
    size = model.default_input_size
    x = torch.randn((batch, *size[1:]), device="cuda", dtype=getattr(torch, dtype))

    def run():
        with torch.inference_mode():
            return model(x)

    for _ in range(3):
        run()
    timer = tb.Timer(stmt="run()", globals={"run": run})
    m = timer.blocked_autorange(min_run_time=min_run_time)
    model = x = None  # free before the next configuration
    torch.cuda.empty_cache()
    return m.median * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time", type=float, default=1.0, help="seconds of timed runs each")
    parser.add_argument("--tolerance", type=float, default=0.05)
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="alternating measurements of each side per configuration",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 0
    torch.backends.cudnn.benchmark = True
    print(
        f"{torch.cuda.get_device_name()} | torch {torch.__version__} | "
        f"cuDNN {torch.backends.cudnn.version()}\n"
    )
    header = (
        f"{'model':10} {'batch':>5} {'dtype':9} {'cnnviz ms':>10} {'tb ms':>9} "
        f"{'diff':>7} {'img/s':>9} {'TFLOP/s':>8} {'of peak':>8} {'peak mem':>9}  check"
    )
    print(header)
    print("-" * len(header))
    results, worst = [], 0.0
    for name in MODELS:
        for dtype in ("float32", "bfloat16"):
            for batch in (1, 64):
                # One configuration at a time, alternating cnnviz and the reference
                # `--repeats` times: drift and host-side jitter hit both sides alike, and
                # the medians of the repeats are compared.
                ours, refs = [], []
                for _ in range(args.repeats):
                    df = timing.benchmark(
                        name,
                        device="cuda",
                        batch_sizes=(batch,),
                        dtypes=(dtype,),
                        min_run_time=args.time,
                    )
                    row = df.iloc[0].to_dict()
                    if row["status"] != "ok":
                        break
                    ours.append(row)
                    refs.append(reference_ms(name, batch, dtype, args.time))
                if row["status"] != "ok":
                    print(f"{name:10} {batch:>5} {dtype:9} {row['status']}: {row['note']}")
                    results.append({**row, "reference_ms": None, "diff": None})
                    continue
                row = sorted(ours, key=lambda r: r["latency_ms"])[len(ours) // 2]
                ref = statistics.median(refs)
                diff = row["latency_ms"] / ref - 1
                worst = max(worst, abs(diff))
                peak = row.get("peak_tflops")
                share = f"{row['tflops'] / peak:7.1%}" if peak else "      -"
                ok = "ok" if abs(diff) <= args.tolerance else "DIFFERS"
                print(
                    f"{name:10} {batch:>5} {dtype:9} {row['latency_ms']:>10.3f} {ref:>9.3f} "
                    f"{diff:>+7.1%} {row['throughput']:>9.0f} {row['tflops']:>8.1f} "
                    f"{share:>8} {row['peak_memory_bytes'] / 2**20:>7.0f}Mi  {ok}"
                )
                results.append({**row, "reference_ms": ref, "diff": diff})
    print(
        f"\nworst disagreement with torch.utils.benchmark: {worst:.1%} "
        f"(tolerance {args.tolerance:.0%})"
    )
    meds = [r["diff"] for r in results if r["diff"] is not None]
    if meds:
        print(f"median disagreement: {statistics.median(abs(d) for d in meds):.1%}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0 if worst <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
