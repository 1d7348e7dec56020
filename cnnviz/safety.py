"""Memory and work budgets for the few places that compute on real tensors (timing,
effective RF).

Running out of memory on the CPU kills the process instead of raising, so before allocating
we check the bytes that :func:`cnnviz.analyze` already knows against what the device has free
and against a cap (:func:`check`). An effective-RF measurement also holds the one compute lock
for as long as it runs, so its multiply-accumulates are checked against a cap too
(:func:`check_erf_work`).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from cnnviz.fmt import compact, nbytes
from cnnviz.result import Analysis

#: Default cap for one request on a shared server (CPU RAM or GPU memory), in bytes.
DEFAULT_CAP_BYTES = 4 * 1024**3


#: Work one effective-RF request may do on a shared server (multiply-accumulates, forward and
#: backward over all samples): about 15 s on 2 CPU cores, while it holds :data:`COMPUTE_LOCK`
#: that timing needs too.
ERF_MAX_MACS = 300 * 10**9

#: One real-compute job at a time per process (timing, per-layer timing, effective RF): on a
#: shared server, two users' jobs would otherwise slow each other and double the memory.
COMPUTE_LOCK = threading.Lock()
_QUEUE = threading.Condition()  # guards _WAITERS; notified whenever the queue moves
_WAITERS: list[object] = []  # jobs waiting for COMPUTE_LOCK, first come first served


def queue_length() -> int:
    """How many jobs wait for :data:`COMPUTE_LOCK` now (not counting the one holding it)."""
    with _QUEUE:
        return len(_WAITERS)


def queue_text(place: int) -> str:
    """What a job at ``place`` in the queue waits for (the running job and those before it).

    >>> queue_text(3)
    'waiting: 3 jobs are ahead of this one (place 3)'
    >>> queue_text(1)
    'waiting: 1 job is ahead of this one (place 1)'
    """
    ahead = "1 job is" if place == 1 else f"{place} jobs are"
    return f"waiting: {ahead} ahead of this one (place {place})"


@contextlib.contextmanager
def exclusive(waiting: Callable[[int], None] | None = None, poll: float = 0.5) -> Iterator[None]:
    """Hold :data:`COMPUTE_LOCK`, first come first served. While other jobs hold or wait for
    it, ``waiting(place)`` is called about every ``poll`` seconds with this job's place in the
    queue (1: next); an exception it raises (a page being stopped) leaves the queue.

    >>> with exclusive():
    ...     COMPUTE_LOCK.locked()
    True
    """
    ticket: object | None = object()
    with _QUEUE:
        if not _WAITERS and COMPUTE_LOCK.acquire(blocking=False):
            ticket = None
        else:
            _WAITERS.append(ticket)
    try:
        while ticket is not None:
            with _QUEUE:
                place = _WAITERS.index(ticket) + 1
            if waiting is not None:
                waiting(place)
            if place == 1 and COMPUTE_LOCK.acquire(timeout=poll):
                with _QUEUE:
                    _WAITERS.remove(ticket)
                    ticket = None
                    _QUEUE.notify_all()  # everyone moves up one place
            elif place > 1:
                with _QUEUE:
                    _QUEUE.wait(poll)
    except BaseException:
        with _QUEUE:
            if ticket in _WAITERS:
                _WAITERS.remove(ticket)
            _QUEUE.notify_all()
        raise
    try:
        yield
    finally:
        COMPUTE_LOCK.release()


class BudgetError(ValueError):
    """The request would need more memory than the cap or than the device has free."""


@dataclass(frozen=True)
class Budget:
    """Bytes a forward pass would need: parameters plus peak activations at this batch."""

    param_bytes: int
    activation_bytes: int

    @property
    def total(self) -> int:
        return self.param_bytes + self.activation_bytes


def estimate(
    a: Analysis, batch_size: int | None = None, dtype: torch.dtype | None = None
) -> Budget:
    """Scale an analysis to another batch size and dtype (activations grow with the batch).

    >>> import torch.nn as nn, cnnviz
    >>> a = cnnviz.analyze(nn.Conv2d(3, 8, 3, bias=False), (1, 3, 10, 10))
    >>> b = estimate(a, batch_size=4, dtype=torch.bfloat16)
    >>> b.param_bytes, b.activation_bytes  # 216 weights * 2 B; (300 + 512) * 4 * 2 B
    (432, 6496)
    """
    batch0 = a.input_shapes[0][0] if a.input_shapes and a.input_shapes[0] else 1
    scale_b = (batch_size or batch0) / batch0
    elem0 = torch.empty((), dtype=getattr(torch, a.dtype)).element_size()
    elem = torch.empty((), dtype=dtype).element_size() if dtype is not None else elem0
    param_bytes = a.total_params * elem if dtype is not None else a.param_bytes
    act = int(a.peak_activation_bytes * scale_b * elem / elem0)
    return Budget(param_bytes, act)


def free_bytes(device: torch.device | str) -> int:
    """Memory the device has free now: CUDA's own count, or the OS's available RAM."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def check(
    budget: Budget,
    device: torch.device | str,
    cap_bytes: int | None = DEFAULT_CAP_BYTES,
    headroom: float = 0.8,
    what: str = "this request",
) -> None:
    """Raise :class:`BudgetError` when ``budget`` exceeds the cap or 80 % of free memory.

    >>> check(Budget(10, 10), "cpu", cap_bytes=100)
    >>> check(Budget(100, 100), "cpu", cap_bytes=100)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cnnviz.safety.BudgetError: this request needs 200 B (params 100 B + ...), over the cap of 100 B
    """
    need = budget.total
    detail = (
        f"{nbytes(need)} (params {nbytes(budget.param_bytes)} + activations "
        f"{nbytes(budget.activation_bytes)})"
    )
    if cap_bytes is not None and need > cap_bytes:
        raise BudgetError(f"{what} needs {detail}, over the cap of {nbytes(cap_bytes)}")
    free = free_bytes(device)
    if need > headroom * free:
        raise BudgetError(
            f"{what} needs {detail}, but {torch.device(device)} has only {nbytes(free)} free"
        )


def erf_work(a: Analysis, n_samples: int) -> int:
    """Multiply-accumulates an effective-RF measurement of ``a``'s model does: a forward and a
    backward pass (about 3x the forward's MACs) per sample, at batch 1.

    >>> import torch.nn as nn, cnnviz
    >>> a = cnnviz.analyze(nn.Conv2d(3, 8, 3, bias=False), (2, 3, 10, 10))
    >>> a.total_macs, erf_work(a, 4)  # 2 * 8*8*8*27 per batch of 2; 3 * 4 * 13,824
    (27648, 165888)
    """
    batch = a.input_shapes[0][0] if a.input_shapes and a.input_shapes[0] else 1
    return 3 * n_samples * a.total_macs // max(1, batch)


def check_erf_work(a: Analysis, n_samples: int, cap_macs: int = ERF_MAX_MACS) -> int:
    """The work of measuring ``a``'s effective RF with ``n_samples`` (:func:`erf_work`); raise
    :class:`BudgetError` with both numbers when it is over ``cap_macs``.

    >>> import torch.nn as nn, cnnviz
    >>> a = cnnviz.analyze(nn.Conv2d(3, 8, 3, bias=False), (1, 3, 10, 10))
    >>> check_erf_work(a, 1)  # 3 * 13,824
    41472
    >>> check_erf_work(a, 16, cap_macs=10**5)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cnnviz.safety.BudgetError: measuring this effective RF (16 samples) takes about 663.6K ...
    """
    work = erf_work(a, n_samples)
    if work > cap_macs:
        raise BudgetError(
            f"measuring this effective RF ({n_samples} sample{'s' * (n_samples != 1)}) takes "
            f"about {compact(work)} multiply-accumulates, over the {compact(cap_macs)} one "
            "request may use: lower the samples or the input size"
        )
    return work
