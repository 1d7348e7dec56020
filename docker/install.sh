#!/bin/sh
# The image's install step, also run by CI outside Docker (there is no Docker engine there).
#   sh docker/install.sh [deps|package]    (no argument: both)
# TORCH_INDEX (optional): an extra package index holding CPU builds of torch, to keep the
# image small; without it pip takes torch from the default index.
set -eu
cd "$(dirname "$0")/.."
PIP="${PIP:-python -m pip}"
what="${1:-all}"
if [ "$what" != "package" ]; then
  if [ -n "${TORCH_INDEX:-}" ]; then
    $PIP install --no-cache-dir --extra-index-url "$TORCH_INDEX" -r requirements.txt
  else
    $PIP install --no-cache-dir -r requirements.txt
  fi
fi
if [ "$what" != "deps" ]; then
  $PIP install --no-cache-dir --no-deps .
fi
