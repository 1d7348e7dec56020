#!/usr/bin/env bash
# Build the real Dockerfile without a Docker engine or an image registry, then check the image:
# its own command serves the app on a loopback port, one page renders in headless Chromium, its
# HEALTHCHECK passes (and fails against a dead port), it runs as uid 10001, it is at most 2 GB,
# and no pip configuration or local wheel got into it. Called by .ci/run; needs root, Debian
# bookworm (apt-get) and /usr/bin/chromium. Exits non-zero on any failure.
#
#   bash docker/test_image.sh
#
# How:
# - buildah (chroot isolation, vfs storage in $CACHE/storage) builds the Dockerfile unchanged,
#   with --pull=never and docker.io blocked: nothing is ever pulled.
# - No registry is reachable, so FROM's python:3.11-slim is a stand-in made here: a debootstrap'd
#   bookworm minbase with Debian's python3 (3.11, like the pinned wheels), python3-venv,
#   python3-pip, python-is-python3 and ca-certificates, without Debian's EXTERNALLY-MANAGED
#   marker (the official image has none). It is cached as $CACHE/base-<key>.tar and as an image
#   in $CACHE/storage; the key is the recipe plus today's date (UTC), so it is rebuilt daily.
# - pip in the build uses this machine's pip setup: `pip config list` (config files and PIP_*
#   variables) merged into one user config, its local folders (find-links, file:// indexes)
#   and files (constraints, cert) handed in by read-only build-time mounts under /root, which
#   exists in the image, so no mount point is left behind either (checked after the build).
# - --build-arg TORCH_INDEX= (empty): the Dockerfile's default, PyTorch's CPU index, is not
#   reachable here, and the local torch 2.13.0 wheel is already the CPU build.
#
# Environment: CNNVIZ_IMAGE_CACHE (default /var/cache/cnnviz-image-test), DEBIAN_MIRROR
# (default http://deb.debian.org/debian), PYTHON (the host python whose pip setup is handed in,
# default python3), MAX_IMAGE_GB (default 2), HEALTH_TIMEOUT (seconds, default 120).
# Logs and a screenshot go to test-artifacts/docker/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export DEBIAN_FRONTEND=noninteractive

CACHE=${CNNVIZ_IMAGE_CACHE:-/var/cache/cnnviz-image-test}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PYTHON=${PYTHON:-python3}
MAX_IMAGE_GB=${MAX_IMAGE_GB:-2}
HEALTH_TIMEOUT=${HEALTH_TIMEOUT:-120}
IMAGE=localhost/cnnviz:image-test
BASE_PKGS=python3,python3-venv,python3-pip,python-is-python3,ca-certificates
ART=$ROOT/test-artifacts/docker
CHROMIUM=/usr/bin/chromium

t_start=$(date +%s)
step_name=""
step_t0=$t_start
step() {
  local now
  now=$(date +%s)
  [ -z "$step_name" ] || echo "  (took $((now - step_t0)) s)"
  step_name=$1
  step_t0=$now
  echo "+ $1"
}
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# Everything this script starts is undone on exit, whatever happens.
B=(buildah)
containers=()
server_pid=""
stage=""
cleanup() {
  local rc=$?
  set +e
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM -- "-$server_pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
  fi
  for c in "${containers[@]}"; do "${B[@]}" rm "$c" >/dev/null 2>&1; done
  [ -z "$stage" ] || rm -rf --one-file-system "$stage"
  if [ "$rc" -eq 0 ]; then
    echo "+ image check passed in $(($(date +%s) - t_start)) s"
  else
    echo "+ image check FAILED (exit $rc) after $(($(date +%s) - t_start)) s; logs: $ART" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$CACHE" "$ART"
[ "$(id -u)" -eq 0 ] || fail "run as root (buildah with chroot isolation, debootstrap)"

step "tools: buildah and debootstrap from Debian"
missing=()
command -v buildah >/dev/null || missing+=(buildah)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
buildah --version
test -x "$CHROMIUM" || fail "$CHROMIUM is missing (.ci/run installs it)"

# A private storage (vfs: no overlay mounts needed) and a registry setup that refuses to pull.
cat >"$CACHE/registries.conf" <<'EOF'
unqualified-search-registries = []
short-name-mode = "permissive"
[[registry]]
location = "docker.io"
blocked = true
EOF
export CONTAINERS_REGISTRIES_CONF=$CACHE/registries.conf
export BUILDAH_ISOLATION=chroot
B=(buildah --root "$CACHE/storage" --runroot "$CACHE/run" --storage-driver vfs)
# Leftovers of an interrupted run in this private storage.
"${B[@]}" rm --all >/dev/null 2>&1 || true

# FROM's name, as buildah resolves a short name (docker.io/library/...).
base_name=$(awk 'toupper($1) == "FROM" {print $2; exit}' Dockerfile)
case "$base_name" in
  python:3.11-slim) base_ref=docker.io/library/$base_name ;;
  *) fail "the stand-in base is bookworm's python 3.11; the Dockerfile says FROM $base_name" ;;
esac
key=$(printf '%s\n' v1 bookworm minbase "$BASE_PKGS" "$MIRROR" "$(date -u +%F)" |
  sha256sum | cut -c1-16)
base_tar=$CACHE/base-$key.tar

step "stand-in base image $base_ref (key $key)"
have_key=$("${B[@]}" inspect --type image \
  --format '{{index .OCIv1.Config.Labels "cnnviz.stand-in"}}' "$base_ref" 2>/dev/null || true)
if [ "$have_key" = "$key" ]; then
  echo "cached image in $CACHE/storage"
else
  if [ -f "$base_tar" ]; then
    echo "cached root in $base_tar"
  else
    echo "debootstrap --variant=minbase bookworm ($MIRROR); log: $ART/debootstrap.log"
    rootfs=$CACHE/rootfs.tmp
    unmount_under() { awk -v d="$1" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r |
      while read -r m; do umount -l "$m"; done; }
    if [ -e "$rootfs" ]; then unmount_under "$rootfs"; rm -rf --one-file-system "$rootfs"; fi
    if ! debootstrap --variant=minbase --include="$BASE_PKGS" bookworm "$rootfs" "$MIRROR" \
      >"$ART/debootstrap.log" 2>&1; then
      tail -n 30 "$ART/debootstrap.log" >&2
      unmount_under "$rootfs"
      fail "debootstrap"
    fi
    unmount_under "$rootfs"
    # Like the official image: pip may install system-wide, no apt caches or lists.
    rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
    rm -rf "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
      "$rootfs"/var/lib/apt/lists/*
    chroot "$rootfs" python3 --version
    tar --numeric-owner -cpf "$base_tar.tmp" -C "$rootfs" \
      --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' .
    mv "$base_tar.tmp" "$base_tar"
    rm -rf --one-file-system "$rootfs"
    find "$CACHE" -maxdepth 1 -name 'base-*.tar' ! -name "base-$key.tar" -delete
  fi
  "${B[@]}" rmi -f "$base_ref" >/dev/null 2>&1 || true
  ctr=$("${B[@]}" from scratch)
  containers+=("$ctr")
  mnt=$("${B[@]}" mount "$ctr")
  tar --numeric-owner -xpf "$base_tar" -C "$mnt"
  "${B[@]}" umount "$ctr" >/dev/null
  "${B[@]}" config --os linux --arch amd64 --cmd python3 \
    --env PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 \
    --label cnnviz.stand-in="$key" "$ctr"
  "${B[@]}" commit --quiet --format docker --rm "$ctr" "$base_ref" >/dev/null
  containers=()
  "${B[@]}" rmi --prune >/dev/null 2>&1 || true
fi
"${B[@]}" images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$base_ref"

step "pip setup handed in: merged config, local folders (read-only mounts)"
stage=$(mktemp -d "$CACHE/pip-stage.XXXXXX")
"$PYTHON" - "$PYTHON" "$stage" >"$stage.mounts" <<'EOF'
"""Write <stage>/.config/pip/pip.conf (this machine's effective pip setup: `pip config list`,
PIP_* variables on top) with local paths moved under /root/pip-data/; print the mounts."""
import ast
import configparser
import os
import shutil
import subprocess
import sys
from urllib.parse import unquote, urlsplit

python, stage = sys.argv[1], sys.argv[2]
listing = subprocess.run(
    [python, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True
).stdout
sections: dict[str, dict[str, str]] = {}
for line in listing.splitlines():
    key, _, value = line.partition("=")
    section, _, name = key.rpartition(".")
    sections.setdefault(section, {})[name] = ast.literal_eval(value)
env = sections.pop(":env:", {})
env.pop("config-file", None)
sections.setdefault("global", {})
merged = {s: {**values, **env} for s, values in sections.items()}

mounts: dict[str, str] = {}  # host path -> path in the build
data = os.path.join(stage, "pip-data")
os.makedirs(data)


def hand_in(path: str) -> str:
    """Where a host file or folder appears in the build: folders are mounted, files copied."""
    if path not in mounts:
        n = len(mounts)
        if os.path.isdir(path):
            os.mkdir(os.path.join(data, str(n)))  # the mount point, inside the /root mount
            mounts[path] = f"/root/pip-data/{n}"
        else:
            name = f"{n}-{os.path.basename(path)}"
            shutil.copy(path, os.path.join(data, name))
            mounts[path] = f"/root/pip-data/{name}"
    return mounts[path]


def translate(name: str, token: str) -> str:
    if token.startswith("file:"):
        path = unquote(urlsplit(token).path).rstrip("/")
        if name.endswith("index-url"):  # an index links to its files relatively (../../files)
            parent, leaf = os.path.split(path)
            return f"file://{hand_in(parent)}/{leaf}"
        return f"file://{hand_in(path)}" if os.path.exists(path) else token
    if token.startswith("/") and os.path.exists(token):
        return hand_in(token)
    return token


config = configparser.RawConfigParser()
for section, values in merged.items():
    config[section] = {
        name: " ".join(translate(name, t) for t in value.split()) for name, value in values.items()
    }
os.makedirs(os.path.join(stage, ".config", "pip"))
with open(os.path.join(stage, ".config", "pip", "pip.conf"), "w") as f:
    config.write(f)
for host, ctr in mounts.items():
    if os.path.isdir(host):
        print(f"{host}:{ctr}:ro")
EOF
mapfile -t pip_mounts <"$stage.mounts"
rm "$stage.mounts"
sed 's/^/  /' "$stage/.config/pip/pip.conf"
printf '  mount %s\n' "${pip_mounts[@]}"
mount_args=()
for m in "${pip_mounts[@]}"; do mount_args+=(-v "$m"); done
mount_args+=(-v "$stage:/root:ro")

step "build the Dockerfile (buildah bud, TORCH_INDEX empty); log: $ART/build.log"
"${B[@]}" rmi -f "$IMAGE" >/dev/null 2>&1 || true
if ! "${B[@]}" bud --isolation chroot --pull=never --format docker --layers=false \
  --build-arg TORCH_INDEX= "${mount_args[@]}" -t "$IMAGE" -f Dockerfile . \
  >"$ART/build.log" 2>&1; then
  tail -n 40 "$ART/build.log" >&2
  fail "buildah bud"
fi
grep -E '^(STEP|COMMIT|Successfully)' "$ART/build.log" | sed 's/^/  /'
"${B[@]}" rmi --prune >/dev/null 2>&1 || true

step "image size (at most $MAX_IMAGE_GB GB)"
size=$("${B[@]}" images --format '{{.Size}}' "$IMAGE")
echo "$IMAGE: $size (on the stand-in base of $("${B[@]}" images --format '{{.Size}}' "$base_ref"))"
"$PYTHON" - "$size" "$MAX_IMAGE_GB" <<'EOF' || fail "the image is $size, over $MAX_IMAGE_GB GB"
import sys
number, unit = sys.argv[1].split()
scale = {"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}[unit]
sys.exit(float(number) * scale > float(sys.argv[2]) * 1e9)
EOF

step "nothing of the build machine in the image (pip config, wheels, mount points, .git, .venv)"
ctr=$("${B[@]}" from --pull=never "$IMAGE")
containers+=("$ctr")
mnt=$("${B[@]}" mount "$ctr")
leaks=$(find "$mnt" -xdev \( -name pip.conf -o -name pip-data -o -name constraints.txt \
  -o \( -name '*.whl' ! -path "$mnt/usr/share/python-wheels/*" ! -path '*/ensurepip/*' \) \) \
  -printf '/%P\n')
opt=$(find "$mnt/opt" -mindepth 1 -maxdepth 1 -printf '%f ')
[ -z "$opt" ] || leaks+=$'\n'"/opt: $opt"
for p in .git .venv .pytest_cache .ruff_cache .hypothesis test-artifacts tests bench; do
  [ ! -e "$mnt/app/$p" ] || leaks+=$'\n'"/app/$p"
done
[ -z "$leaks" ] || fail "found in the image:$leaks"
echo "/app holds: $(find "$mnt/app" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort | tr '\n' ' ')"
"${B[@]}" umount "$ctr" >/dev/null

# The image's own settings: user, working dir, command, health check, environment.
"${B[@]}" inspect --type image "$IMAGE" >"$ART/image-inspect.json"
read_config() {
  "$PYTHON" - "$ART/image-inspect.json" "$1" <<'EOF'
import json
import sys

config = json.load(open(sys.argv[1]))["Docker"]["config"]
what = sys.argv[2]
if what == "user":
    print(config.get("User") or "")
elif what == "cmd":  # NUL-separated words
    print("\0".join((config.get("Entrypoint") or []) + (config.get("Cmd") or [])), end="")
elif what == "healthcheck":
    test = (config.get("Healthcheck") or {}).get("Test") or []
    if test[:1] == ["CMD"]:
        print("\0".join(test[1:]), end="")
elif what == "pip-env":
    print(" ".join(e for e in config.get("Env") or [] if e.startswith("PIP_")))
EOF
}
user=$(read_config user)
read_config cmd >"$ART/cmd"
read_config healthcheck >"$ART/healthcheck"
mapfile -d '' -t cmd <"$ART/cmd"
mapfile -d '' -t healthcheck <"$ART/healthcheck"
[ "${#cmd[@]}" -gt 0 ] || fail "the image has no command"
[ "${#healthcheck[@]}" -gt 0 ] || fail "the image has no exec-form HEALTHCHECK"
echo "USER $user; CMD ${cmd[*]}; PIP_* in ENV: $(read_config pip-env)"
case "$user" in "" | 0 | root | 0:* | root:*) fail "the image runs as root ('$user')" ;; esac
case "$(read_config pip-env)" in *INDEX* | *FIND_LINKS* | *CONSTRAINT* | *CERT*)
  fail "pip settings baked into the image's environment" ;;
esac

step "run the image's command as user $user on a loopback port"
port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port
setsid "${B[@]}" run --isolation chroot --user "$user" --env PORT="$port" \
  --env ADDRESS=127.0.0.1 "$ctr" -- "${cmd[@]}" >"$ART/server.log" 2>&1 &
server_pid=$!
health() {
  "$PYTHON" -c 'import sys, urllib.request
try:
    sys.exit(urllib.request.urlopen(sys.argv[1] + "/_stcore/health", timeout=2).read() != b"ok")
except OSError:
    sys.exit(1)' "$url"
}
deadline=$(($(date +%s) + HEALTH_TIMEOUT))
until health; do
  kill -0 "$server_pid" 2>/dev/null || { tail -n 30 "$ART/server.log" >&2; fail "the server exited"; }
  [ "$(date +%s)" -lt "$deadline" ] ||
    { tail -n 30 "$ART/server.log" >&2; fail "no health at $url after $HEALTH_TIMEOUT s"; }
  sleep 0.5
done
echo "$url/_stcore/health: ok"

step "the server runs as uid 10001"
# /proc/net/tcp*: local address, state 0A (LISTEN), the owner's uid (chroot shares the network).
uids=$(awk -v p="$(printf ':%04X' "$port")" \
  'substr($2, length($2) - 4) == p && $4 == "0A" {print $8}' /proc/net/tcp /proc/net/tcp6 |
  sort -u)
echo "listening socket on port $port owned by uid: ${uids:-none}"
[ "$uids" = 10001 ] || fail "expected uid 10001, got '${uids:-none}'"

step "the image's HEALTHCHECK inside the container"
"${B[@]}" run --isolation chroot --user "$user" --env PORT="$port" "$ctr" -- "${healthcheck[@]}" ||
  fail "HEALTHCHECK failed against a healthy server"
echo "passes against the server"
dead=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
if "${B[@]}" run --isolation chroot --user "$user" --env PORT="$dead" "$ctr" -- \
  "${healthcheck[@]}" >/dev/null 2>&1; then
  fail "HEALTHCHECK passed against a dead port"
fi
echo "fails against a dead port"

step "render the app in headless Chromium"
if [ -x .venv/bin/python ] && .venv/bin/python -c 'import playwright.sync_api' 2>/dev/null; then
  .venv/bin/python - "$url" "$CHROMIUM" "$ART/app.png" <<'EOF'
"""The first page as a visitor sees it: title, heading, a finished run without an exception."""
import sys

from playwright.sync_api import expect, sync_playwright

url, chromium, screenshot = sys.argv[1:]
expect.set_options(timeout=90_000)
with sync_playwright() as p:
    browser = p.chromium.launch(
        executable_path=chromium, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
    )
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(url)
        expect(page).to_have_title("cnnviz")
        expect(page.locator("h1")).to_have_text("Compare architectures")
        app = page.locator('[data-testid="stApp"]')
        expect(app).to_have_attribute("data-test-script-state", "notRunning")
        expect(page.locator('[data-testid="stStatusWidget"]')).to_have_count(0)
        expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    finally:
        page.screenshot(path=screenshot, full_page=True)
        browser.close()
print(f"Playwright: title 'cnnviz', h1 'Compare architectures', no exception ({screenshot})")
EOF
else
  echo "(no Playwright in .venv: chromium --dump-dom)"
  timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --virtual-time-budget=60000 --dump-dom "$url" >"$ART/app.html" 2>"$ART/chromium.log" ||
    fail "chromium --dump-dom"
  grep -q '<title>cnnviz</title>' "$ART/app.html" || fail "no <title>cnnviz</title> in the page"
  grep -q 'Compare architectures' "$ART/app.html" || fail "no 'Compare architectures' in the page"
  echo "chromium --dump-dom: title 'cnnviz', 'Compare architectures' ($ART/app.html)"
fi
step "clean up"
