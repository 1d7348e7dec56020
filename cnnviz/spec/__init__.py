"""Declarative network specs: define a CNN as JSON/YAML text or a flat table, build and analyze it.

Spec text is parsed as data only (``json.loads`` or a YAML safe loader without tags or
aliases); nothing in it is ever evaluated. Every error is a :class:`SpecError` whose ``path``
names the field (``layers[3].conv.kernel``) and whose message says why, with the shapes
involved. :data:`LIMITS` bounds text size, layer count, nesting, channels, kernels, input size
and the parameter count (computed arithmetically before anything is built).

Format::

    name: tiny_resnet           # optional, default "custom"
    input: [1, 3, 32, 32]       # [batch, channels, *spatial]: 0 to 3 spatial dims
    layers:
      - conv: {name: stem, out: 16, kernel: 3, padding: same, bias: false}
      - bn                      # a bare type = no options (same as `- bn: {}`)
      - relu
      - residual:               # out = body(x) + shortcut(x); no shortcut = identity
          body:
            - conv: {out: 16, kernel: 3, padding: 1}
            - bn
          shortcut: []          # optional list of layers
      - relu
      - concat:                 # torch.cat of the branch outputs on the channel dim
          branches:
            - [{conv: {out: 8, kernel: 1}}]
            - [{conv: {out: 8, kernel: 3, padding: 1}}]
            - []                # an empty branch passes the input through
      - maxpool: {kernel: 2}
      - adaptive_avgpool: {size: 1}
      - flatten
      - linear: {out: 10}

Layer types and options (``*`` = required, else the default; ``dims`` = an int, or a list
with one int per spatial dim; conv/pool/bn pick their 1-d/2-d/3-d module from the input rank).
This table is written from :data:`TYPES`, the one entry per type that validation, building and
the docs all read (``cnnviz/spec/_types.py``):

<layer table>

Every layer also takes ``name`` (an identifier, unique among its siblings): its module name,
instead of its index. :func:`build`'s model names top-level layers ``layers.0``,
``layers.<name>``; a residual's children are ``body.*`` and ``shortcut`` (the add runs in
forward, so :func:`cnnviz.analyze` shows a ``<residual>.add`` row); a concat's are
``branches.0``, ``branches.1`` ... (and a ``<concat>.cat`` row).

>>> import cnnviz
>>> from cnnviz import spec
>>> model = spec.build(spec.examples()["tiny_resnet"])
>>> a = cnnviz.analyze(model, model.default_input_size)
>>> a.total_params, a.layers[-1].output_shape
(78042, (1, 10))
"""

from cnnviz.spec._build import Concat, Residual, SpecModel, build
from cnnviz.spec._core import LIMITS, TYPES, Layer, LayerType, Limits, Spec, SpecError, validate
from cnnviz.spec._text import (
    TABLE_COLUMNS,
    canonical,
    decode,
    dumps,
    examples,
    from_table,
    from_url,
    parse,
    to_table,
    to_url,
)
from cnnviz.spec._types import CATALOG, doc_table

__doc__ = __doc__.replace("<layer table>", doc_table())  # the table's one source: TYPES

__all__ = [
    "CATALOG",
    "LIMITS",
    "TABLE_COLUMNS",
    "TYPES",
    "Concat",
    "Layer",
    "LayerType",
    "Limits",
    "Residual",
    "Spec",
    "SpecError",
    "SpecModel",
    "build",
    "canonical",
    "decode",
    "dumps",
    "examples",
    "from_table",
    "from_url",
    "parse",
    "to_table",
    "to_url",
    "validate",
]
