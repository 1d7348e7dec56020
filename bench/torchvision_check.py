#!/usr/bin/env python
"""Cross-check cnnviz.analyze on torchvision's own models, where torchvision is installed.

For each model (built with weights=None on the meta device): analyze's MACs against
FlopCounterMode FLOPs / 2, its parameter count against sum(p.numel()), the ops it had no rule
for, and the final receptive field. For the models cnnviz's zoo re-creates, also compares the
state_dict keys and shapes of both. torchvision cannot be installed beside the CPU build of
torch that CI uses, so this runs where it can (e.g. a GPU machine):

    python bench/torchvision_check.py [--models resnet50,mobilenet_v2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from torch.utils.flop_counter import FlopCounterMode

import cnnviz
from cnnviz import zoo

DEFAULT = [
    "alexnet",
    "vgg16",
    "vgg16_bn",
    "googlenet",
    "resnet18",
    "resnet50",
    "resnet152",
    "resnext50_32x4d",
    "wide_resnet50_2",
    "densenet121",
    "squeezenet1_0",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "shufflenet_v2_x1_0",
    "mnasnet1_0",
    "efficientnet_b0",
    "regnet_y_400mf",
    "convnext_tiny",
    "inception_v3",
    "vit_b_16",
    "swin_t",
    "maxvit_t",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(DEFAULT))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    try:
        import torchvision
    except Exception as e:  # not installed, or broken beside this torch
        print(f"torchvision unavailable ({e}); nothing to check")
        return 0
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}\n")
    print(
        f"{'model':22} {'params':>12} {'MACs (cnnviz)':>15} {'FlopCounter/2':>15} {'match':>5} "
        f"{'keys':>5} {'RF':>10} {'ms':>6}  uncounted"
    )
    failures, results = 0, []
    for name in args.models.split(","):
        size = (1, 3, 299, 299) if name == "inception_v3" else (1, 3, 224, 224)
        kw = (
            {"aux_logits": False, "init_weights": False}
            if name in ("googlenet", "inception_v3")
            else {}
        )
        try:
            with torch.device("meta"):
                m = torchvision.models.get_model(name, weights=None, **kw).eval()
        except Exception:  # some builders compute sizes with tensors: build on the CPU
            m = torchvision.models.get_model(name, weights=None, **kw).eval()
        t = time.perf_counter()
        try:
            a = cnnviz.analyze(m, size)
        except Exception as e:
            print(f"{name:22} analyze failed: {e}")
            failures += 1
            continue
        ms = (time.perf_counter() - t) * 1e3
        dev = next(m.parameters()).device
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            m(torch.empty(size, device=dev))
        ref = fc.get_total_flops() // 2
        params = sum(p.numel() for p in m.parameters())
        keys = "-"
        if name in zoo.list_models():
            ours = zoo.get_model(name, device="meta").state_dict()
            theirs = m.state_dict()
            same = [(k, tuple(v.shape)) for k, v in ours.items()] == [
                (k, tuple(v.shape)) for k, v in theirs.items()
            ]
            keys = "same" if same else "DIFF"
            failures += not same
        ok = a.total_macs == ref and a.total_params == params
        failures += not ok
        rf = a.receptive_field()
        rf_text = "x".join(map(str, rf.size)) if rf.size else "?"
        unc = ", ".join(f"{u.name}x{u.count}" for u in a.fallback_ops)
        print(
            f"{name:22} {a.total_params:>12,} {a.total_macs:>15,} {ref:>15,} "
            f"{'ok' if ok else 'NO':>5} {keys:>5} {rf_text:>10} {ms:>6.0f}  {unc}"
        )
        results.append(
            {
                "model": name,
                "params": a.total_params,
                "macs": a.total_macs,
                "flopcounter_macs": ref,
                "match": ok,
                "keys": keys,
                "rf": rf_text,
                "analyze_ms": ms,
                "uncounted": unc,
            }
        )
    print(f"\n{len(results)} models, {failures} mismatches")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
