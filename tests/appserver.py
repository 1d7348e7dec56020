"""Start the app the way the Docker image does (docker/start.sh) on a free local port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health(url: str) -> str | None:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
            return r.read().decode()
    except OSError:
        return None


@contextlib.contextmanager
def running_app(timeout: float = 90) -> Iterator[str]:
    """Yield the base URL of a live server; stop it afterwards, whatever happens."""
    port = free_port()
    env = dict(
        os.environ,
        PORT=str(port),
        ADDRESS="127.0.0.1",
        STREAMLIT=str(Path(sys.executable).parent / "streamlit"),
    )
    # The tests share the machine with other work (CI's busy loops, a laptop's jobs): page
    # runs at start.sh's nice 10 would yield to all of it, as README says for such machines.
    env.setdefault("CNNVIZ_PAGE_NICE", "0")
    proc = subprocess.Popen(
        ["sh", str(ROOT / "docker" / "start.sh")],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while health(url) != "ok":
            if proc.poll() is not None:
                out = proc.stdout.read().decode() if proc.stdout else ""
                raise RuntimeError(f"the app exited with {proc.returncode}:\n{out}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no healthy server at {url} after {timeout} s")
            time.sleep(0.3)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
