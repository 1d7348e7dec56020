#!/bin/sh
# The image's start command (production settings), also run by CI outside Docker.
# PORT defaults to 8501; STREAMLIT (optional) names the streamlit executable.
set -eu
cd "$(dirname "$0")/.."
# Page runs 10 nice steps below the event loop that answers every socket (health included):
# with 20 visitors on 2 cores, health probes stayed under 0.5 s (bench/app_load.py). Set it
# to 0 on a machine shared with other work, which niced page runs would also yield to.
export CNNVIZ_PAGE_NICE="${CNNVIZ_PAGE_NICE:-10}"
# app/serve.py wraps app/streamlit_app.py: imports done before serving, security headers.
exec "${STREAMLIT:-streamlit}" run app/serve.py \
  --server.port="${PORT:-8501}" \
  --server.address="${ADDRESS:-0.0.0.0}" \
  --server.headless=true \
  --server.fileWatcherType=none \
  --server.runOnSave=false \
  --server.maxUploadSize=240 \
  --runner.postScriptGC=false \
  --browser.gatherUsageStats=false \
  --client.showErrorDetails=none \
  --client.toolbarMode=viewer
