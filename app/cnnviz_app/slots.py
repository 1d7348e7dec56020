"""At most :data:`SLOTS` page runs execute Python at once; the others wait for a slot.

Every page run is Python (tracing, figures, tables) under the one interpreter lock. Each
running script thread may hold that lock for a switch interval at a time, and the event loop
that answers every request (health checks, static files, WebSocket messages) gives it up at
each socket call and then waits behind them: under 20 visitors a request waited seconds
(bench/app_load.py; py-spy showed the loop thread waiting for the lock most of the time). A
run waiting for a slot blocks on a semaphore, without the lock; with as many slots as cores,
the pages together go as fast as before and the loop waits behind at most that many threads.

Real compute (timing, effective RF) runs outside a slot (:func:`released`): torch's kernels do
not need the lock, and a job queued for the compute lock must not keep visitors waiting.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

SLOTS = max(1, os.cpu_count() or 1)
_SLOTS = threading.BoundedSemaphore(SLOTS)
_HELD = threading.local()  # whether this script thread holds a slot now


@contextlib.contextmanager
def slot() -> Iterator[None]:
    """Hold a slot for a page run (the router wraps the page in it).

    >>> with slot():
    ...     _HELD.on
    True
    """
    _SLOTS.acquire()
    _HELD.on = True
    try:
        yield
    finally:
        if getattr(_HELD, "on", False):
            _HELD.on = False
            _SLOTS.release()


@contextlib.contextmanager
def released() -> Iterator[None]:
    """Give this thread's slot up while real compute runs (nothing if it holds none)."""
    held = getattr(_HELD, "on", False)
    if held:
        _HELD.on = False
        _SLOTS.release()
    try:
        yield
    finally:
        if held:
            _SLOTS.acquire()
            _HELD.on = True
