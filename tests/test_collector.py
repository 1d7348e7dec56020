"""app/cnnviz_app/collector.py: Python's full collections run when the server is quiet, not in
the middle of a visitor's rerun; and app/serve.py starts it."""

from __future__ import annotations

import asyncio
import doctest
import gc
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_in_own_loop(coro) -> None:
    """asyncio.run in a thread of its own: the browser tests' Playwright keeps an event loop
    running in this one for the session."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coro).result(timeout=60)


@pytest.fixture
def collector(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "app"))
    from cnnviz_app import collector

    return collector


def test_due_doctests(collector):
    assert doctest.testmod(collector).failed == 0


def test_full_collections_are_deferred_and_young_ones_kept(collector):
    old = gc.get_threshold()
    try:
        assert collector.defer_full_collections() == old
        assert gc.get_threshold() == (old[0], old[1], collector.NEVER)
    finally:
        gc.set_threshold(*old)


class Server:
    """A stand-in for the server's activity: busy while ``busy`` is set (the young
    collections count moves at every look), and every full collection noted."""

    def __init__(self, collector, monkeypatch) -> None:
        self.busy = True
        self.looks = 0
        self.collections = 0
        self.collected = asyncio.Event()
        monkeypatch.setattr(collector, "young_collections", self._young)
        monkeypatch.setattr(gc, "collect", self._collect)

    def _young(self) -> int:
        self.looks += 1
        return self.looks if self.busy else 0

    def _collect(self, *args) -> int:
        self.collections += 1
        self.collected.set()
        return 0


def test_collects_once_the_server_is_quiet_and_not_while_busy(collector, monkeypatch):
    async def run() -> None:
        server = Server(collector, monkeypatch)
        task = asyncio.create_task(collector.idle_collector(quiet_s=0.05, every_s=0.001))
        try:
            while server.looks < 50:  # busy at every look: never quiet for 0.05 s
                await asyncio.sleep(0.001)
            assert server.collections == 0
            server.busy = False
            await asyncio.wait_for(server.collected.wait(), 10)
            # quiet from then on: nothing ran since, so no second collection comes
            looks = server.looks
            while server.looks < looks + 50:
                await asyncio.sleep(0.001)
            assert server.collections == 1
        finally:
            task.cancel()

    run_in_own_loop(run())


def test_collects_under_steady_load_at_the_latest_after_at_most_s(collector, monkeypatch):
    async def run() -> None:
        server = Server(collector, monkeypatch)  # busy throughout
        task = asyncio.create_task(
            collector.idle_collector(quiet_s=60.0, at_most_s=0.05, every_s=0.001)
        )
        try:
            await asyncio.wait_for(server.collected.wait(), 10)
        finally:
            task.cancel()

    run_in_own_loop(run())


def test_server_defers_full_collections_and_runs_the_collector():
    # app/serve.py's lifespan, with the warm-up (torch's imports) left out: inside it the
    # automatic full collections are off and the collector runs; after it, it has stopped.
    code = """
import asyncio, gc, importlib.util, sys
sys.path.insert(0, "app")
spec = importlib.util.spec_from_file_location("serve", "app/serve.py")
serve = importlib.util.module_from_spec(spec)
spec.loader.exec_module(serve)
serve.warm = lambda: 0.0

def collectors():
    return [t for t in asyncio.all_tasks() if "idle_collector" in repr(t.get_coro())]

async def main():
    async with serve._lifespan(None):
        print(gc.get_threshold()[2], len(collectors()))
    await asyncio.sleep(0)
    print(sum(not t.done() for t in collectors()))

asyncio.run(main())
"""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    inside, after = out.stdout.strip().splitlines()[-2:]
    assert inside.split() == ["1000000000", "1"]
    assert after == "0"
