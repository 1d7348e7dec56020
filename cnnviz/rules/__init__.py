"""Per-op rules: one small function per op family, keyed by the torch function object.

The registry's core (:class:`Rule`, :data:`RULES`, :func:`register_rule`, the helpers) is in
:mod:`cnnviz.rules.registry`; each family module registers its rules there on import:

- :mod:`~cnnviz.rules.conv`: convolutions, transposed convolutions, linear layers;
- :mod:`~cnnviz.rules.einsum`: einsums that mix channels and leave space alone;
- :mod:`~cnnviz.rules.elementwise`: activations, dropout, normalisation, binary arithmetic;
- :mod:`~cnnviz.rules.casts`: dtype casts, copies and memory-layout changes;
- :mod:`~cnnviz.rules.pool`: pooling and reductions;
- :mod:`~cnnviz.rules.shape`: reshapes, indexing, padding, concat and split;
- :mod:`~cnnviz.rules.resample`: ``F.interpolate``.
"""

from cnnviz.rules import casts, conv, einsum, elementwise, pool, resample, shape
from cnnviz.rules.registry import (
    KINDS,
    RULES,
    Ctx,
    Kind,
    Out,
    Rule,
    RuleError,
    RuleHandle,
    dim_index,
    ntuple,
    op_name,
    positive,
    probe_dtype,
    register,
    register_rule,
    unregister_rule,
)

__all__ = [
    "KINDS",
    "RULES",
    "Ctx",
    "Kind",
    "Out",
    "Rule",
    "RuleError",
    "RuleHandle",
    "casts",
    "conv",
    "dim_index",
    "einsum",
    "elementwise",
    "ntuple",
    "op_name",
    "pool",
    "positive",
    "probe_dtype",
    "register",
    "register_rule",
    "resample",
    "shape",
    "unregister_rule",
]
