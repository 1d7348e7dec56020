"""Facts about a user's module that several walkers share: what a leaf is, and the lock that
keeps one model's analysis and the copies taken of it from overlapping."""

from __future__ import annotations

import copy
import threading
import weakref

from torch import nn

_locks: weakref.WeakKeyDictionary[nn.Module, threading.Lock] = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


def is_leaf(m: nn.Module) -> bool:
    """True when ``m`` has no child module. An empty slot (``self._modules["a"] = None``,
    as ``register_module("downsample", None)`` leaves) is not a child.

    >>> is_leaf(nn.Conv2d(1, 1, 1)), is_leaf(nn.Sequential(nn.ReLU()))
    (True, False)
    """
    return all(child is None for child in m._modules.values())


def model_lock(model: nn.Module) -> threading.Lock:
    """The lock an analysis of ``model`` holds while its train/eval flags are changed: two
    analyses of one model take turns, and a copy taken under it carries the user's flags.

    >>> model_lock(nn.ReLU()).locked()
    False
    """
    with _locks_guard:
        lock = _locks.get(model)
        if lock is None:
            lock = _locks[model] = threading.Lock()
        return lock


def copy_model(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` taken while no analysis of it is running, so it carries the
    user's own train/eval flags and hooks and nothing an analysis set for its pass."""
    with model_lock(model):
        return copy.deepcopy(model)
