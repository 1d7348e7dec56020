#!/bin/sh
# The image's install step, also run by CI outside Docker (there is no Docker engine there).
#   sh docker/install.sh [deps|package]    (no argument: both)
# TORCH_INDEX (optional): an extra package index for torch (the Dockerfile defaults it to
# PyTorch's CPU index, to keep the image small); without it pip takes torch from the default
# index(es). With a CPU index, the install fails if CUDA runtime wheels (nvidia-*) came in anyway,
# e.g. because that index lacks the pinned torch and pip fell back to PyPI's CUDA build.
set -eu
cd "$(dirname "$0")/.."
PIP="${PIP:-python -m pip}"
what="${1:-all}"
if [ "$what" != "package" ]; then
  if [ -n "${TORCH_INDEX:-}" ]; then
    $PIP install --no-cache-dir --extra-index-url "$TORCH_INDEX" -r requirements.txt
    case "$TORCH_INDEX" in
      */cpu | */cpu/)
        $PIP list --format=freeze | { ! grep -i '^nvidia-'; } || {
          echo "install.sh: CUDA wheels installed although TORCH_INDEX=$TORCH_INDEX" >&2
          exit 1
        } ;;
    esac
  else
    $PIP install --no-cache-dir -r requirements.txt
  fi
fi
if [ "$what" != "deps" ]; then
  $PIP install --no-cache-dir --no-deps .
fi
