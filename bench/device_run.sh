#!/usr/bin/env bash
# One prepared run for a lent GPU machine (torch 2.11 + torchvision + pandas there, no
# streamlit): the timing tests on CUDA (CUDA graphs), bench/gpu_check.py and
# bench/gpu_profile.py, about three minutes on an H200. With FULL=1 also the library's tests
# on that torch and the torchvision cross-check; those need the torchinfo and plotly wheels
# in .whl/ (see bench/README.md). Writes to $OUT.
set -uo pipefail
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuDNN', torch.backends.cudnn.version())" | tee -a "$OUT/gpu.txt"
echo "== timing tests on CUDA"
timeout 120 python3 -m pytest -q -p no:cacheprovider -o addopts="" tests/test_timing.py 2>&1 | tail -15 | tee "$OUT/pytest_timing.txt"
echo "== gpu check"
timeout 300 python3 bench/gpu_check.py --json "$OUT/gpu_check.json" 2>&1 | tee "$OUT/gpu_check.txt"
echo "== gpu profile"
timeout 150 python3 bench/gpu_profile.py --json "$OUT/gpu_profile.json" 2>&1 | grep -v USDT | tee "$OUT/gpu_profile.txt"
[ "${FULL:-0}" = 1 ] || exit 0
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl
export PYTHONPATH="$PWD:/tmp/site"
echo "== tests on this torch"
python3 -m pytest -q -p no:cacheprovider -n 12 -o addopts="" --doctest-modules \
  tests/test_analysis.py tests/test_zoo.py tests/test_receptive_oracle.py tests/test_golden.py \
  tests/test_cli.py tests/test_timing.py tests/test_spec.py tests/test_labs.py \
  tests/test_compare.py tests/test_plots.py tests/test_bench.py cnnviz 2>&1 | tail -15 | tee "$OUT/pytest.txt"
echo "== torchvision cross-check"
timeout 200 python3 bench/torchvision_check.py --json "$OUT/torchvision.json" 2>&1 | tee "$OUT/torchvision.txt"
echo "== cnnviz summary torchvision:resnet50 (CLI)"
python3 -m cnnviz.cli summary torchvision:resnet50 --max-depth 0 2>&1 | tail -12 | tee "$OUT/cli.txt"
