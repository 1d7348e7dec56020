"""Page runs below the server's own thread in the CPU scheduler.

Streamlit runs each page in a thread of its own beside the event loop that answers every
socket (WebSocket messages, ``/_stcore/health``). On a machine with fewer cores than busy
page runs, the event loop queues for the CPU behind them. Where :data:`ENV` is set (README,
"Deploying"), every page run lowers its own thread's priority by that many nice steps;
threads it starts (torch's workers) inherit it. Raising a nice value needs no privilege, so
this works as the image's non-root user. docker/start.sh (the image's command) sets 10; a plain
``streamlit run`` leaves it off, as on a machine shared with other work niced page runs also
yield to that work.
"""

from __future__ import annotations

import os
import threading

#: Environment variable: nice steps a page run's thread takes (unset or 0: none).
ENV = "CNNVIZ_PAGE_NICE"

_done = threading.local()


def lower_this_thread() -> int:
    """Lower the calling thread's CPU priority by ``$CNNVIZ_PAGE_NICE`` steps, once per thread;
    returns the thread's nice value afterwards (unchanged where unsupported).

    >>> import os, threading
    >>> seen = []
    >>> os.environ[ENV] = "3"
    >>> base = os.getpriority(os.PRIO_PROCESS, 0)
    >>> t = threading.Thread(target=lambda: seen.append(lower_this_thread()))
    >>> t.start(); t.join()
    >>> seen == [min(base + 3, 19)], os.getpriority(os.PRIO_PROCESS, 0) == base
    (True, True)
    >>> del os.environ[ENV]
    """
    tid = threading.get_native_id()
    try:
        steps = int(os.environ.get(ENV, "0") or 0)
        current = os.getpriority(os.PRIO_PROCESS, tid)
    except (ValueError, AttributeError, OSError):  # not Linux-like, or a bad value
        return 0
    if steps <= 0 or getattr(_done, "tid", None) == tid:
        return current
    _done.tid = tid
    target = min(current + steps, 19)
    try:
        # PRIO_PROCESS with a thread id: on Linux this thread only, not the whole process
        os.setpriority(os.PRIO_PROCESS, tid, target)
    except OSError:
        return current
    return os.getpriority(os.PRIO_PROCESS, tid)
