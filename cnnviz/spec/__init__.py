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

Layer types and options (``*`` = required; ``dims`` = an int, or a list with one int per
spatial dim; conv/pool/bn pick their 1-d/2-d/3-d module from the input rank):

=================== ============================================================================
conv                out*, kernel* (1-31), stride 1, padding 0 (dims, ``same`` or ``valid``),
                    dilation 1, groups 1, bias true
conv_transpose      out*, kernel*, stride 1, padding 0, output_padding 0, dilation 1, groups 1,
                    bias true
maxpool             kernel*, stride (= kernel), padding 0 (<= kernel // 2), dilation 1,
                    ceil_mode false
avgpool             kernel*, stride (= kernel), padding 0, ceil_mode false,
                    count_include_pad true
adaptive_avgpool    size 1 (dims); also adaptive_maxpool
bn                  eps 1e-5, momentum 0.1, affine true (BatchNorm1d/2d/3d; 1d after flatten)
groupnorm           groups*, eps 1e-5, affine true
layernorm           eps 1e-5, affine true (over all dims but the batch)
lrn                 size 5, alpha 1e-4, beta 0.75, k 1.0 (local response norm)
leaky_relu          negative_slope 0.01
gelu                approximate none (or tanh)
dropout             p 0.5
linear              out*, bias true (needs a flat input: put flatten before it)
relu, relu6, silu, sigmoid, tanh, flatten, identity: no options
residual            body* (layers), shortcut (layers, default: identity)
concat              branches* (2 or more lists of layers)
=================== ============================================================================

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
from cnnviz.spec._core import CATALOG, LIMITS, Layer, Limits, Spec, SpecError, validate
from cnnviz.spec._text import (
    TABLE_COLUMNS,
    canonical,
    dumps,
    examples,
    from_table,
    from_url,
    parse,
    to_table,
    to_url,
)

__all__ = [
    "CATALOG",
    "LIMITS",
    "TABLE_COLUMNS",
    "Concat",
    "Layer",
    "Limits",
    "Residual",
    "Spec",
    "SpecError",
    "SpecModel",
    "build",
    "canonical",
    "dumps",
    "examples",
    "from_table",
    "from_url",
    "parse",
    "to_table",
    "to_url",
    "validate",
]
