"""Live-storage accounting: which tensors exist at each moment of a real (or meta) run.

:class:`LiveStorage` is a dispatch mode that sees every tensor an aten op returns and keeps,
per storage, how many Python tensors still refer to it; a storage counts from its first tensor
to the death of its last. The same walk runs on meta tensors (no memory, the estimate) and on
real CPU tensors (the oracle the tests compare against), which is why both agree exactly when
the same ops run.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


def storage_key(t: torch.Tensor) -> int:
    """An id for ``t``'s storage, shared by its views."""
    return t.untyped_storage()._cdata


class LiveStorage(TorchDispatchMode):
    """Tracks bytes of live storages created while active; ``peak`` is the high-water mark.

    Storages that existed before (parameters, inputs) are not counted: add them yourself.

    >>> import torch
    >>> with LiveStorage() as live:
    ...     a = torch.ones(1000)  # 4000 B
    ...     b = a * 2  # 4000 B more
    ...     del a
    >>> live.peak, live.current
    (8000, 4000)
    """

    def __init__(self) -> None:
        super().__init__()
        self.current = 0
        self.peak = 0
        self._bytes: dict[int, int] = {}
        self._refs: dict[int, int] = {}
        self._known: set[int] = set()  # storages that existed before: never counted

    def ignore(self, tensors: Any) -> None:
        """Never count these tensors' storages (parameters and buffers made elsewhere)."""
        self._known.update(storage_key(t) for t in _flat_tensors(tensors))

    def reset_peak(self) -> None:
        self.peak = self.current

    def _free(self, key: int) -> None:
        self._refs[key] -= 1
        if self._refs[key] == 0:
            self.current -= self._bytes.pop(key)
            del self._refs[key]

    def track(self, t: torch.Tensor) -> None:
        key = storage_key(t)
        if key in self._known:
            return
        if key in self._refs:
            self._refs[key] += 1
        else:
            n = t.untyped_storage().nbytes()
            self._bytes[key], self._refs[key] = n, 1
            self.current += n
            self.peak = max(self.peak, self.current)
        weakref.finalize(t, self._free, key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in _flat_tensors(out):
            self.track(t)
        return out


def _flat_tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    flat, _ = tree_flatten(value)
    return [v for v in flat if isinstance(v, torch.Tensor)]
