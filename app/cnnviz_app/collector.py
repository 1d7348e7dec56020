"""Python's full garbage collections, moved off the visitors' clicks.

With Python's default thresholds a full (generation 2) collection starts every few script
runs, in the middle of one, and holds the interpreter lock for as long as it walks the
server's objects: 70-78 ms in this app's server after the warm-up was frozen (its caches'
analyses, tables and figures), about 30 ms in a bare Streamlit app's, measured with
``gc.callbacks`` while bench/app_speed.py ran. Meanwhile no message leaves the server.

:func:`defer_full_collections` keeps the young collections (they are short, and free most
cycles) and stops the automatic full ones; :func:`idle_collector` runs them instead once the
server has been quiet for ``quiet_s`` seconds, and at the latest every ``at_most_s`` seconds,
so memory stays bounded under steady load. Quiet means no young collection ran: whatever the
server does in earnest (a page run, a fragment's, an upload) allocates enough to start one.
"""

from __future__ import annotations

import asyncio
import gc
import time

#: Full collections wait until the server has been quiet this long.
QUIET_S = 2.0
#: ... and at most this long after the last one (a server that is never quiet).
AT_MOST_S = 300.0
#: How often the collector looks.
EVERY_S = 0.5
#: gen-2 threshold that no count of young collections reaches.
NEVER = 1_000_000_000


def defer_full_collections() -> tuple[int, int, int]:
    """Stop automatic full collections (young ones go on as before); returns the old
    thresholds."""
    old = gc.get_threshold()
    gc.set_threshold(old[0], old[1], NEVER)
    return old


def young_collections() -> int:
    """How many young-generation collections have run: it moves whenever anything allocates
    in earnest (a page run, a fragment's, an upload), and stands still on an idle server."""
    return gc.get_stats()[0]["collections"]


def due(
    now: float,
    last_active: float,
    last_collect: float,
    quiet_s: float = QUIET_S,
    at_most_s: float = AT_MOST_S,
) -> bool:
    """Whether a full collection is due: something ran since the last one and the server has
    been quiet since, or too long has passed.

    >>> due(now=10.0, last_active=5.0, last_collect=0.0)  # quiet for 5 s, none since
    True
    >>> due(now=10.0, last_active=9.5, last_collect=9.0)  # active 0.5 s ago
    False
    >>> due(now=400.0, last_active=399.9, last_collect=50.0)  # busy, but 350 s since the last
    True
    >>> due(now=10.0, last_active=1.0, last_collect=9.0)  # quiet, and nothing ran since
    False
    """
    if now - last_collect >= at_most_s:
        return True
    return now - last_active >= quiet_s and last_active > last_collect


async def idle_collector(
    quiet_s: float = QUIET_S, at_most_s: float = AT_MOST_S, every_s: float = EVERY_S
) -> None:
    """Run a full collection whenever :func:`due` says so; runs until cancelled."""
    last_collect = last_active = time.monotonic()
    seen = young_collections()
    while True:
        await asyncio.sleep(every_s)
        now, count = time.monotonic(), young_collections()
        if count != seen:
            seen, last_active = count, now
        if due(now, last_active, last_collect, quiet_s, at_most_s):
            gc.collect()
            last_collect = time.monotonic()
            seen = young_collections()
