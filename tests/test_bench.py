"""bench/gpu_check.py runs end to end (on the CPU here), so a lent GPU's minutes are not spent
finding a bug in the script. What it measures is not asserted: timing belongs to benchmarks."""

from __future__ import annotations

import importlib.util
import json
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
        assert r["verdict"] == ("ok" if abs(r["diff"]) <= 0.05 else "DIFFERS")
    assert rc == (0 if all(r["verdict"] == "ok" for r in rows) else 1)
    assert "configurations within 5% of torch.utils.benchmark" in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_gpu_check_without_a_gpu_says_so(gpu_check, capsys):
    assert gpu_check.main([]) == 0
    assert "no CUDA device" in capsys.readouterr().out
