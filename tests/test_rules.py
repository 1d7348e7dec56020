"""The per-op rules: the registry's structure, its public extension API, and op defects.

Expected values come from an independent oracle: a real CPU forward for shapes (whatever torch
returns or raises), the gradient oracle in tests/oracles.py for receptive fields, or
FlopCounterMode for MACs. Where a literal stands beside them it is the same number worked by
hand with Araujo et al.'s formulas (Distill 2019): r += (k'-1) S, S *= s, P += p S.
"""

from __future__ import annotations

import ast
import importlib
import typing
from pathlib import Path

import pytest
import torch
from oracles import oracle_rf_grow
from torch import nn

import cnnviz
from cnnviz import geometry, receptive
from cnnviz.rules import Out, registry
from cnnviz.rules import conv as rules_conv
from cnnviz.rules import pool as rules_pool


class Fn(nn.Module):
    """``fn(x)`` inside a container, so that every op is a row of its own."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.unused = nn.Identity()

    def forward(self, x):
        return self.fn(x)


def fallback_names(a) -> list[str]:
    """Names of the ops that ran without a rule (``Analysis.fallback_ops``, formerly
    ``uncounted``)."""
    ops = getattr(a, "fallback_ops", None)
    return [u.name for u in (ops if ops is not None else a.uncounted)]


def rf_tuple(rf) -> tuple:
    return rf.size, rf.stride, rf.padding


def matches_oracle(model: nn.Module, channels: int, start: int = 12):
    """analyze's RF of the model's output == the gradient oracle's, on the oracle's input."""
    o, shape = oracle_rf_grow(model, lambda n: (1, channels, n, n), start)
    rf = cnnviz.analyze(model, shape).receptive_field("")
    assert rf_tuple(rf) == (o.size, o.stride, o.padding), (shape, rf, o)
    assert rf.window(o.unit) == o.boxes[0]
    return rf


# --------------------------------------------------------------------------- structure

FAMILIES = ["casts", "conv", "elementwise", "pool", "resample", "shape"]


@pytest.mark.parametrize("family", FAMILIES)
def test_families_import_the_registry_core_never_the_package_or_each_other(family):
    tree = ast.parse(Path(importlib.import_module(f"cnnviz.rules.{family}").__file__).read_text())
    sources = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    rules = {m for m in sources if m and m.startswith("cnnviz.rules")}
    assert "cnnviz.rules.registry" in rules
    assert rules <= {"cnnviz.rules.registry", "cnnviz.rules.binary"}, rules


def test_the_package_hands_the_core_on():
    from cnnviz.rules import RULES, RuleError, op_name  # what the tracer imports

    assert RULES is registry.RULES and Out is registry.Out and RuleError is registry.RuleError
    assert op_name is registry.op_name


def test_shared_geometry_has_one_home():
    from cnnviz.spec import _core

    assert _core.out_len is geometry.out_len
    assert rules_conv.out_len is geometry.out_len  # imported, not defined again
    assert rules_pool.adaptive_window is geometry.adaptive_window
    assert receptive.each_group is not None and not hasattr(receptive, "_each_group")


def test_casts_live_in_their_own_family():
    for f in (torch.Tensor.to, torch.Tensor.contiguous, torch.Tensor.float, torch.Tensor.clone):
        assert registry.RULES[f].fn.__module__ == "cnnviz.rules.casts", f


def test_kinds_are_a_closed_set():
    assert set(typing.get_args(registry.Kind)) == registry.KINDS
    used = {rule.kind for rule in registry.RULES.values()}
    assert used <= registry.KINDS
    assert used | {"other"} == registry.KINDS  # every kind but "other" has a built-in rule
    with pytest.raises(ValueError, match="unknown rule kind 'activations'"):
        registry.register(torch.roll, kind="activations")  # type: ignore[arg-type]
    assert torch.roll not in registry.RULES
