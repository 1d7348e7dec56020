"""cnnviz.spec: parse, validate (shape inference), build, round-trips, limits and safety.

Sources of the expected numbers: parameter counts are written out as arithmetic; shapes come
from a real CPU forward of the built model (hooks on every module) on small inputs.
"""

from __future__ import annotations

import dataclasses
import zlib

import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnnviz
from cnnviz import spec as S
from cnnviz.spec import LIMITS, SpecError


def spec_of(layers, input=(1, 3, 8, 8), **extra) -> dict:
    return {"input": list(input), "layers": layers, **extra}


def cpu_shapes(spec) -> tuple[dict[str, tuple[int, ...]], tuple[int, ...], int]:
    """Build on CPU, run a real forward: {module name: output shape}, the output shape and
    sum(p.numel())."""
    s = S.validate(spec)
    model = S.build(s, device="cpu").eval()
    shapes: dict[str, tuple[int, ...]] = {}

    def hook(name):
        def record(module, args, output):
            shapes[name] = tuple(output.shape)  # returns None: the output is left as it is

        return record

    for name, mod in model.named_modules():
        mod.register_forward_hook(hook(name))
    torch.manual_seed(0)
    with torch.no_grad():
        out = model(torch.randn(s.input))
    return shapes, tuple(out.shape), sum(p.numel() for p in model.parameters())


def assert_shapes_match(spec) -> S.Spec:
    """validate's inferred shapes equal a real CPU forward, layer by layer (nested too)."""
    s = S.validate(spec)
    shapes, out, _ = cpu_shapes(s)
    for layer in s.walk():
        assert tuple(shapes[layer.module]) == layer.out_shape, layer.path
    assert out == s.output_shape
    return s


def error(spec_or_text, fn=None) -> SpecError:
    with pytest.raises(SpecError) as info:
        if fn is not None:
            fn(spec_or_text)
        elif isinstance(spec_or_text, str):
            S.build(spec_or_text)
        else:
            S.validate(spec_or_text)
    return info.value


# --------------------------------------------------------------------- every layer type
# (id, layers, input, params by arithmetic)
CASES = [
    ("conv", [{"conv": {"out": 16, "kernel": 3}}], (1, 3, 8, 8), 16 * 3 * 3 * 3 + 16),
    (
        "conv_same_dilated_nobias",
        [{"conv": {"out": 8, "kernel": 3, "padding": "same", "dilation": 2, "bias": False}}],
        (1, 3, 8, 8),
        8 * 3 * 3 * 3,
    ),
    (
        "conv_groups",
        [{"conv": {"out": 8, "kernel": 3, "groups": 2, "padding": 1}}],
        (1, 4, 8, 8),
        8 * (4 // 2) * 3 * 3 + 8,
    ),
    (
        "conv_per_dim",
        [{"conv": {"out": 4, "kernel": [1, 3], "stride": [1, 2], "padding": "valid"}}],
        (1, 3, 8, 9),
        4 * 3 * 1 * 3 + 4,
    ),
    ("conv1d", [{"conv": {"out": 4, "kernel": 5}}], (1, 3, 16), 4 * 3 * 5 + 4),
    ("conv3d", [{"conv": {"out": 4, "kernel": 3, "padding": 1}}], (1, 2, 4, 6, 6), 4 * 2 * 27 + 4),
    (
        "conv_transpose",
        [{"conv_transpose": {"out": 4, "kernel": 4, "stride": 2, "padding": 1}}],
        (1, 3, 8, 8),
        3 * 4 * 4 * 4 + 4,
    ),
    (
        "conv_transpose_groups_outpad",
        [
            {
                "conv_transpose": {
                    "out": 6,
                    "kernel": 3,
                    "stride": 2,
                    "output_padding": 1,
                    "groups": 2,
                }
            }
        ],
        (1, 4, 5, 5),
        4 * (6 // 2) * 3 * 3 + 6,
    ),
    (
        "maxpool_ceil",
        [{"maxpool": {"kernel": 3, "stride": 2, "padding": 1, "ceil_mode": True}}],
        (1, 3, 10, 10),
        0,
    ),
    ("maxpool_dilated", [{"maxpool": {"kernel": 2, "dilation": 2}}], (1, 3, 9, 9), 0),
    ("maxpool1d", [{"maxpool": {"kernel": 2}}], (1, 3, 9), 0),
    (
        "avgpool",
        [
            {
                "avgpool": {
                    "kernel": 3,
                    "stride": 2,
                    "padding": 1,
                    "ceil_mode": True,
                    "count_include_pad": False,
                }
            }
        ],
        (1, 3, 10, 10),
        0,
    ),
    ("adaptive_avgpool", [{"adaptive_avgpool": {"size": [2, 3]}}], (1, 3, 8, 8), 0),
    ("adaptive_maxpool", [{"adaptive_maxpool": {"size": 3}}], (1, 3, 8, 8), 0),
    ("bn", ["bn"], (1, 3, 8, 8), 2 * 3),
    ("bn_no_affine", [{"bn": {"affine": False, "eps": 1e-3, "momentum": 0.01}}], (1, 3, 8, 8), 0),
    ("bn1d_flat", ["flatten", "bn"], (1, 3, 4, 4), 2 * 3 * 4 * 4),
    ("bn1d", ["bn"], (1, 3, 16), 2 * 3),
    ("bn3d", ["bn"], (1, 2, 4, 4, 4), 2 * 2),
    ("groupnorm", [{"groupnorm": {"groups": 2}}], (1, 4, 8, 8), 2 * 4),
    ("layernorm", ["layernorm"], (1, 3, 4, 4), 2 * 3 * 4 * 4),
    ("lrn", [{"lrn": {"size": 3, "alpha": 1e-3, "beta": 0.5, "k": 2}}], (1, 6, 8, 8), 0),
    ("relu", ["relu"], (1, 3, 8, 8), 0),
    ("relu6", [{"relu6": {}}], (1, 3, 8, 8), 0),
    ("leaky_relu", [{"leaky_relu": {"negative_slope": 0.2}}], (1, 3, 8, 8), 0),
    ("gelu", [{"gelu": {"approximate": "tanh"}}], (1, 3, 8, 8), 0),
    ("silu", ["silu"], (1, 3, 8, 8), 0),
    ("sigmoid", ["sigmoid"], (1, 3, 8, 8), 0),
    ("tanh", [{"tanh": None}], (1, 3, 8, 8), 0),
    ("dropout", [{"dropout": {"p": 0.1}}], (1, 3, 8, 8), 0),
    ("identity", ["identity"], (1, 3, 8, 8), 0),
    ("flatten", ["flatten"], (1, 3, 4, 4), 0),
    ("linear", ["flatten", {"linear": {"out": 10}}], (1, 3, 4, 4), 48 * 10 + 10),
    ("linear_flat_input", [{"linear": {"out": 5, "bias": False}}], (2, 7), 7 * 5),
    (
        "residual_identity",
        [{"residual": {"body": [{"conv": {"out": 3, "kernel": 3, "padding": 1}}, "bn"]}}],
        (1, 3, 8, 8),
        3 * 3 * 9 + 3 + 2 * 3,
    ),
    (
        "residual_projection",
        [
            {
                "residual": {
                    "body": [{"conv": {"out": 8, "kernel": 3, "stride": 2, "padding": 1}}],
                    "shortcut": [{"conv": {"out": 8, "kernel": 1, "stride": 2, "bias": False}}],
                }
            }
        ],
        (1, 3, 8, 8),
        (8 * 3 * 9 + 8) + 8 * 3,
    ),
    (
        "concat",
        [
            {
                "concat": {
                    "branches": [
                        [{"conv": {"out": 4, "kernel": 1}}],
                        [],
                        [{"maxpool": {"kernel": 3, "stride": 1, "padding": 1}}],
                    ]
                }
            }
        ],
        (1, 3, 8, 8),
        4 * 3 + 4,
    ),
]


@pytest.mark.parametrize(
    ("layers", "input", "params"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_layer_type_builds_with_arithmetic_params(layers, input, params):
    spec = spec_of(layers, input)
    s = assert_shapes_match(spec)
    _, _, numel = cpu_shapes(spec)
    assert s.num_params == numel == params
    m = S.build(spec)  # meta
    assert all(p.device.type == "meta" for p in m.parameters())
    a = cnnviz.analyze(m, m.default_input_size)
    assert a.total_params == params
    assert a.output_shapes == (s.output_shape,)


def test_every_catalog_type_has_a_case():
    used = {layer.type for c in CASES for layer in S.validate(spec_of(c[1], c[2])).walk()}
    assert used == set(S.CATALOG)


def test_the_layer_table_is_the_one_source():
    # CATALOG and the docstring's table are read from TYPES; a type is registered once
    assert set(S.CATALOG) == set(S.TYPES)
    assert all(dict(S.CATALOG[n]) == dict(t.params) for n, t in S.TYPES.items())
    table = S.__doc__.split("Layer types and options")[1].split("Every layer also")[0]
    assert all(name in table for name in S.TYPES)
    assert "stride (= kernel)" in table and "padding 0 (or same, valid)" in table
    with pytest.raises(ValueError, match="registered twice"):
        S._core.register(S.TYPES["relu"])


# --------------------------------------------------------------------- examples
EXAMPLE_PARAMS = {
    # conv 3->64, 64->64, 64->128, 128->128 (3x3, bias), linear 128->10
    "vgg_block": (64 * 3 * 9 + 64)
    + (64 * 64 * 9 + 64)
    + (128 * 64 * 9 + 128)
    + (128 * 128 * 9 + 128)
    + (128 * 10 + 10),
    # stem 16*3*9 + bn; stage1 2 convs 16*16*9 + 2 bn; stage2 32*16*9 + 32*32*9 + 2 bn, 1x1
    # 32*16 + bn; stage3 64*32*9 + 64*64*9 + 2 bn, 1x1 64*32 + bn; fc 64*10 + 10
    "tiny_resnet": 16 * 27
    + 32
    + 2 * (16 * 16 * 9 + 32)
    + (32 * 16 * 9 + 32 * 32 * 9 + 128)
    + (32 * 16 + 64)
    + (64 * 32 * 9 + 64 * 64 * 9 + 256)
    + (64 * 32 + 128)
    + (64 * 10 + 10),
    # 1x1 64; 1x1 96 -> 3x3 128; 1x1 16 -> 5x5 32; pool -> 1x1 32 (all with bias)
    "inception_block": (192 * 64 + 64)
    + (192 * 96 + 96)
    + (96 * 128 * 9 + 128)
    + (192 * 16 + 16)
    + (16 * 32 * 25 + 32)
    + (192 * 32 + 32),
    "two_3x3_vs_5x5": 2 * (64 * 64 * 9 + 64) + (64 * 64 * 25 + 64),
}


def test_examples_are_shipped():
    assert set(S.examples()) == set(EXAMPLE_PARAMS)


@pytest.mark.parametrize("name", sorted(EXAMPLE_PARAMS))
def test_example_shapes_params_and_analysis(name):
    text = S.examples()[name]
    s = assert_shapes_match(S.parse(text))
    _, _, numel = cpu_shapes(S.parse(text))
    m = S.build(text)
    a = cnnviz.analyze(m, m.default_input_size)
    assert a.total_params == numel == s.num_params == EXAMPLE_PARAMS[name]
    assert m.spec_name == name and m.default_input_size == s.input
    assert not a.fallback_ops


def test_example_inception_output_and_two_3x3_receptive_fields():
    s = S.validate(S.parse(S.examples()["inception_block"]))
    assert s.output_shape == (1, 64 + 128 + 32 + 32, 28, 28)
    m = S.build(S.examples()["two_3x3_vs_5x5"])
    a = cnnviz.analyze(m, m.default_input_size)
    rf = {r.name: r.rf_size for r in a.layers}
    assert rf["layers.0.branches.0.first_3x3"] == (3, 3)
    assert rf["layers.0.branches.0.second_3x3"] == (5, 5)  # 1 + 2 + 2
    assert rf["layers.0.branches.1.single_5x5"] == (5, 5)


CONV_1X1 = {"conv": {"out": 4, "kernel": 1}}


def test_residual_and_concat_naming_in_analysis():
    spec = spec_of(
        [
            {"conv": {"out": 8, "kernel": 3, "padding": 1}},
            "bn",
            {"relu": {"name": "act"}},
            {"residual": {"body": [{"conv": {"out": 8, "kernel": 3, "padding": 1}}]}},
            {"concat": {"name": "mix", "branches": [["identity"], [CONV_1X1]]}},
        ]
    )
    a = cnnviz.analyze(S.build(spec), (1, 3, 8, 8))
    rows = {r.name: r for r in a.layers}
    assert "layers.act" in rows and "layers.3.body.0" in rows and "layers.3.shortcut" in rows
    assert rows["layers.3.add"].type == "add"
    assert rows["layers.mix.cat"].type == "cat" and rows["layers.mix.cat"].output_shape == (
        1,
        12,
        8,
        8,
    )
    assert "layers.mix.branches.1.0" in rows
    s = S.validate(spec)
    assert [x.module for x in s.layers[3].walk()] == ["layers.3", "layers.3.body.0"]


def test_build_defaults():
    m = S.build(spec_of(["relu"]))
    assert m.default_input_size == (1, 3, 8, 8) and m.spec_name == "custom"
    assert (
        S.build(spec_of([{"conv": {"out": 2, "kernel": 1}}]), device="cpu")
        .layers[0]
        .weight.device.type
        == "cpu"
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        LIMITS.kernel = 99  # type: ignore[misc]


# --------------------------------------------------------------------- errors
def test_bad_yaml_names_the_line():
    text = "input: [1, 3, 8, 8]\nlayers:\n  - conv: {out: 4, kernel: 3]\n"
    e = error(text)
    assert e.path == "" and "line 3" in str(e)


def test_bad_json_names_line_and_column():
    e = error('{"input": [1, 3, 8, 8],\n "layers": [}', lambda t: S.parse(t, "json"))
    assert "invalid JSON at line 2, column" in str(e)


@pytest.mark.parametrize("text", ["- relu\n- bn\n", "[1, 2]", "42", "", "just text"])
def test_top_level_must_be_a_mapping(text):
    e = error(text, S.parse)
    assert e.path == "" and ("mapping" in str(e) or "empty" in str(e))


def test_unknown_type_suggests_a_close_match():
    e = error(spec_of(["relu", {"rlu": {}}]))
    assert e.path == "layers[1]"
    assert "unknown layer type 'rlu'; did you mean 'relu'?" in str(e) and "maxpool" in str(e)


def test_unknown_key_lists_valid_keys_and_a_close_match():
    e = error(spec_of([{"conv": {"out": 4, "kernal": 3}}]))
    assert e.path == "layers[0].conv.kernal"
    assert "did you mean 'kernel'?" in str(e) and "valid keys: out, kernel, stride" in str(e)
    e = error({"input": [1, 3, 8, 8], "layrs": []})
    assert e.path == "layrs" and "did you mean 'layers'?" in str(e)


@pytest.mark.parametrize(
    ("layer", "path", "fragment"),
    [
        (
            {"conv": {"out": 4, "kernel": -1}},
            "layers[0].conv.kernel",
            "must be an int from 1 to 31, got -1",
        ),
        ({"conv": {"out": 4, "kernel": 0}}, "layers[0].conv.kernel", "got 0"),
        ({"conv": {"out": 4, "kernel": 32}}, "layers[0].conv.kernel", "from 1 to 31, got 32"),
        ({"conv": {"out": 4, "kernel": [3, 3, 3]}}, "layers[0].conv.kernel", "a list of 2 ints"),
        ({"conv": {"out": 4, "kernel": True}}, "layers[0].conv.kernel", "got True"),
        ({"conv": {"out": 0, "kernel": 3}}, "layers[0].conv.out", "from 1 to 16384, got 0"),
        ({"conv": {"out": 16385, "kernel": 3}}, "layers[0].conv.out", "got 16385"),
        ({"conv": {"out": 3.5, "kernel": 3}}, "layers[0].conv.out", "got 3.5"),
        ({"conv": {"kernel": 3}}, "layers[0].conv.out", "required (output channels)"),
        ({"conv": {"out": 4, "kernel": 3, "stride": 0}}, "layers[0].conv.stride", "got 0"),
        ({"conv": {"out": 4, "kernel": 3, "padding": -1}}, "layers[0].conv.padding", "'same'"),
        ({"conv": {"out": 4, "kernel": 3, "padding": "full"}}, "layers[0].conv.padding", "full"),
        ({"conv": {"out": 4, "kernel": 3, "groups": 2}}, "layers[0].conv.groups", "must divide"),
        (
            {"conv": {"out": 4, "kernel": 3, "stride": 2, "padding": "same"}},
            "layers[0].conv.padding",
            "'same' needs stride 1",
        ),
        ({"conv": {"out": 4, "kernel": 3, "bias": "yes"}}, "layers[0].conv.bias", "true or false"),
        ({"dropout": {"p": 1.5}}, "layers[0].dropout.p", "from 0 to 1, got 1.5"),
        ({"bn": {"eps": 0}}, "layers[0].bn.eps", "got 0"),
        ({"dropout": {"p": float("nan")}}, "layers[0].dropout.p", "got nan"),
        ({"dropout": {"p": 10**400}}, "layers[0].dropout.p", "from 0 to 1"),
        ({"gelu": {"approximate": "fast"}}, "layers[0].gelu.approximate", "none, tanh"),
        ({"maxpool": {"kernel": 3, "padding": 2}}, "layers[0].maxpool.padding", "at most half"),
        (
            {"conv_transpose": {"out": 4, "kernel": 3, "output_padding": 1}},
            "layers[0].conv_transpose.output_padding",
            "smaller than the stride",
        ),
        ({"linear": {"out": 4}}, "layers[0].linear", "add flatten before it"),
        ({"groupnorm": {"groups": 2}}, "layers[0].groupnorm.groups", "must divide the 3"),
        ({"conv": [1, 2]}, "layers[0].conv", "options must be a mapping"),
        ({"conv": {"out": 4, "kernel": 3}, "bn": {}}, "layers[0]", "one key (its type)"),
        (7, "layers[0]", "a layer is a type name"),
        ({"relu": {"name": "1st"}}, "layers[0].relu.name", "identifier"),
        ({"relu": {"name": "forward"}}, "layers[0].relu.name", "reserved"),
    ],
)
def test_bad_values_name_the_field(layer, path, fragment):
    e = error(spec_of([layer]))
    assert e.path == path and str(e).startswith(path + ": ")
    assert fragment in str(e)


@pytest.mark.parametrize(
    ("input", "path"),
    [
        ([0, 3, 8, 8], "input[0]"),
        ([65, 3, 8, 8], "input[0]"),
        ([1, 0, 8, 8], "input[1]"),
        ([1, 3, 5000, 8], "input[2]"),
        ([1, 3, 8, -8], "input[3]"),
        ([1, 3, 2, 2, 2, 2], "input"),
        ([1], "input"),
        ("1x3x8x8", "input"),
    ],
)
def test_bad_inputs(input, path):
    assert error({"input": input, "layers": ["relu"]}).path == path


def test_missing_and_empty_top_level_fields():
    assert error({"layers": ["relu"]}).path == "input"
    assert error({"input": [1, 3, 8, 8], "layers": []}).path == "layers"
    assert error({"input": [1, 3, 8, 8], "layers": ["relu"], "name": ""}).path == "name"


def test_duplicate_names_among_siblings():
    e = error(spec_of([{"relu": {"name": "a"}}, {"bn": {"name": "a"}}]))
    assert e.path == "layers[1].bn.name" and "used twice" in str(e)
    # the same name in different lists is fine
    S.validate(
        spec_of([{"relu": {"name": "a"}}, {"residual": {"body": [{"relu": {"name": "a"}}]}}])
    )


def test_residual_channel_mismatch():
    spec = spec_of(["relu", {"residual": {"body": [{"conv": {"out": 32, "kernel": 1}}]}}])
    e = error(spec)
    assert e.path == "layers[1].residual"
    assert str(e) == (
        "layers[1].residual: body outputs 32 channels but the identity shortcut gives 3; "
        "add a shortcut (e.g. a 1x1 conv) or change the body"
    )
    spec["layers"][1]["residual"]["shortcut"] = [{"conv": {"out": 16, "kernel": 1}}]
    assert "body outputs 32 channels but the shortcut gives 16" in str(error(spec))


def test_residual_spatial_mismatch():
    body = [{"conv": {"out": 3, "kernel": 3, "stride": 2, "padding": 1}}]
    e = error(spec_of([{"residual": {"body": body}}]))
    assert "body outputs 3 channels at 4x4 but the identity shortcut gives 3 channels at 8x8" in (
        str(e)
    )


def test_concat_spatial_mismatch():
    branches = [
        [{"conv": {"out": 4, "kernel": 3, "padding": 1}}],
        [{"conv": {"out": 4, "kernel": 3}}],
    ]
    e = error(spec_of(["relu", "relu", {"concat": {"branches": branches}}]))
    assert e.path == "layers[2].concat"
    assert "branch 1 outputs 6x6 but branch 0 outputs 8x8" in str(e)
    assert "at least 2" in str(error(spec_of([{"concat": {"branches": [["relu"]]}}])))


def test_input_too_small():
    layers = ["relu", {"maxpool": {"kernel": 2}}] * 4  # 8 -> 4 -> 2 -> 1 -> 0
    e = error(spec_of(layers))
    assert str(e) == (
        "layers[7].maxpool: kernel 2 would output 0x0 from 1x1 (input 1x3x8x8 is too small)"
    )
    e = error(spec_of([{"conv": {"out": 4, "kernel": 5}}], (1, 3, 3, 8)))
    assert str(e).endswith("kernel 5 would output 0x4 from 3x8 (input 1x3x3x8 is too small)")


def test_output_size_limit():
    up = {"conv_transpose": {"out": 4, "kernel": 31, "stride": 31}}  # (200 - 1) * 31 + 31
    e = error(spec_of([up], (1, 3, 200, 8)))
    assert e.path == "layers[0].conv_transpose"
    assert "would output 6200x248, more than the limit of 4096" in str(e)


def test_spatial_layers_need_spatial_input():
    e = error(spec_of(["flatten", {"conv": {"out": 4, "kernel": 1}}]))
    assert e.path == "layers[1].conv" and "got 1x192; move it before flatten" in str(e)


def _nested(depth: int) -> dict:
    layer: object = "relu"
    for _ in range(depth):
        layer = {"residual": {"body": [layer]}}
    return spec_of([layer])


def test_nesting_depth_limit():
    S.validate(_nested(LIMITS.depth))
    e = error(_nested(LIMITS.depth + 1))
    assert f"nested more than {LIMITS.depth} deep" in str(e)
    assert e.path.count("residual") == LIMITS.depth + 1


def test_layer_count_limit_counts_nested_layers():
    S.validate(spec_of(["relu"] * LIMITS.layers))
    e = error(spec_of(["relu"] * (LIMITS.layers + 1)))
    assert e.path == f"layers[{LIMITS.layers}]" and "more than 500 layers" in str(e)
    nested = [{"residual": {"body": ["relu"] * 9}}] * 50  # 50 * (1 + 9) = 500
    S.validate(spec_of(nested))
    assert "more than 500" in str(error(spec_of([*nested, "relu"])))


def test_text_size_limit():
    text = "input: [1, 3, 8, 8]\nlayers: [relu]\n"
    S.parse(text + "#" * (LIMITS.text_bytes - len(text)))
    e = error(text + "#" * (LIMITS.text_bytes - len(text) + 1), S.parse)
    assert "65,537 bytes, more than the limit of 65,536" in str(e)


def test_param_cap_is_checked_arithmetically_before_building():
    # flatten: 4096 * 64 * 64 features; linear: 4096*64*64 * 16384 + 16384 > 2e9
    spec = spec_of(["flatten", {"linear": {"out": 16384}}], (1, 4096, 64, 64))
    e = error(spec)
    assert e.path == "layers[1].linear"
    assert f"{4096 * 64 * 64 * 16384 + 16384:,} in it" in str(e) and "2,000,000,000" in str(e)


def test_yaml_never_evaluates(monkeypatch):
    import os

    calls = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a))
    for text in [
        'input: [1, 3, 8, 8]\nlayers:\n  - !!python/object/apply:os.system ["echo hi"]\n',
        "!!python/object/apply:os.system [echo hi]\n",
        "input: !!python/name:os.system\nlayers: [relu]\n",
        "input: [1, 3, 8, 8]\nlayers: [!!python/tuple [relu]]\n",
    ]:
        e = error(text, S.parse)
        assert "tags like !!python/... are not allowed" in str(e) and "line" in str(e)
    assert calls == []


@pytest.mark.parametrize("text", ["[" * 30000, "a:\n" + "- " * 20000 + "x"])
def test_deeply_nested_text_is_an_error_not_a_crash(text):
    assert "nested too deeply" in str(error(text, S.parse))


def test_yaml_aliases_are_rejected():
    text = "input: &i [1, 3, 8, 8]\nlayers: [relu]\nname: *i\n"
    assert "aliases" in str(error(text, S.parse))


# --------------------------------------------------------------------- URL tokens
def test_url_round_trip_for_examples():
    for text in S.examples().values():
        token = S.to_url(S.parse(text))
        assert all(c.isalnum() or c in "-_" for c in token)
        assert S.validate(S.from_url(token)) == S.validate(S.parse(text))


@pytest.mark.parametrize(
    ("token", "fragment"),
    [
        ("abc!def", "may only hold"),
        ("A", "bad base64"),
        ("AAAA", "not zlib data"),
        ("", "may only hold"),
    ],
)
def test_corrupt_url_token(token, fragment):
    e = error(token, S.from_url)
    assert e.path == "token" and fragment in str(e)


def test_truncated_and_non_json_tokens():
    token = S.to_url(S.parse(S.examples()["vgg_block"]))
    e = error(token[: len(token) // 2], S.from_url)
    assert "corrupt token" in str(e)
    import base64

    raw = base64.urlsafe_b64encode(zlib.compress(b"- not\n- json")).rstrip(b"=").decode()
    assert "invalid JSON" in str(error(raw, S.from_url))


def test_zip_bomb_token_is_rejected_without_decompressing_it_all(monkeypatch):
    import base64

    bomb = zlib.compress(b" " * 10_000_000, 9)  # 10 MB of spaces
    token = base64.urlsafe_b64encode(bomb).rstrip(b"=").decode()
    assert len(token) <= LIMITS.url_chars
    produced = []
    real = zlib.decompressobj

    class Spy:
        def __init__(self):
            self.d = real()

        def decompress(self, data, max_length=0):
            out = self.d.decompress(data, max_length)
            produced.append(len(out))
            return out

        def __getattr__(self, name):
            return getattr(self.d, name)

    monkeypatch.setattr(S._text.zlib, "decompressobj", Spy)
    e = error(token, S.from_url)
    assert "decompresses to more than 65,536 bytes" in str(e)
    assert sum(produced) <= LIMITS.text_bytes + 1


def test_token_length_limit():
    assert "too long" in str(error("A" * (LIMITS.url_chars + 1), S.from_url))


# --------------------------------------------------------------------- text round-trips
ALL_SPECS = [spec_of(c[1], c[2]) for c in CASES]


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_dumps_round_trips(fmt):
    specs = ALL_SPECS + [S.parse(t) for t in S.examples().values()]
    for spec in specs:
        text = S.dumps(spec, fmt)
        again = S.parse(text, fmt)
        assert S.validate(again) == S.validate(spec)
        assert S.dumps(again, fmt) == text  # canonical: a fixed point


def test_dumps_is_canonical_across_spellings():
    a = spec_of([{"maxpool": {"kernel": 2, "stride": 2, "padding": [0, 0]}}, {"relu": {}}])
    b = spec_of([{"maxpool": {"kernel": [2, 2]}}, "relu"])
    assert S.validate(a) == S.validate(b)
    assert S.dumps(a) == S.dumps(b)
    assert S.dumps(a, "json") == S.dumps(b, "json")


def test_table_round_trip_with_pandas_cells():
    flat = [
        c
        for c in ALL_SPECS
        if not any(isinstance(x, dict) and set(x) & {"residual", "concat"} for x in c["layers"])
    ]
    flat.append(S.parse(S.examples()["vgg_block"]))
    for spec in flat:
        s = S.validate(spec)
        rows = S.to_table(s)
        assert all(set(r) == set(S.TABLE_COLUMNS) for r in rows)
        assert S.validate(S.from_table(rows, s.input, s.name)) == s
        # a DataFrame turns empty int cells into NaN and ints into floats (numpy scalars)
        records = pd.DataFrame(rows).to_dict("records")
        assert S.validate(S.from_table(records, s.input, s.name)) == s


def test_table_cells_and_errors():
    rows = [
        {"type": "conv", "out": 8.0, "kernel": "[1, 3]", "padding": "same", "bias": False},
        {"type": "leaky_relu", "other": "negative_slope: 0.2"},
        {"type": "maxpool", "kernel": 2, "name": " pool "},
    ]
    s = S.validate(S.from_table(rows, [1, 3, 8, 8]))
    assert s.layers[0].params["kernel"] == (1, 3) and s.layers[1].params["negative_slope"] == 0.2
    assert s.layers[2].name == "pool" and s.output_shape == (1, 8, 4, 4)
    assert error([{}], lambda r: S.from_table(r, [1, 3, 8, 8])).path == "rows[0]"
    assert "did you mean 'kernel'" in str(
        error([{"type": "conv", "kernal": 3}], lambda r: S.from_table(r, [1, 3, 8, 8]))
    )
    e = error(
        S.from_table([{"type": "relu"}, {"type": "conv", "out": 4, "kernel": 99}], [1, 3, 8, 8])
    )
    assert e.path == "layers[1].conv.kernel"  # row 1 is layers[1]
    e = error(S.examples()["tiny_resnet"], lambda t: S.to_table(S.parse(t)))
    assert e.path == "layers[3]" and "use the text editor" in str(e)


# --------------------------------------------------------------------- hypothesis
ACTS = ["relu", "relu6", "silu", "sigmoid", "tanh", "identity", "gelu"]


@st.composite
def flat_layers(draw, spatial: bool):
    if not spatial:
        return draw(
            st.sampled_from(
                [
                    {"linear": {"out": draw(st.integers(1, 8)), "bias": draw(st.booleans())}},
                    "bn",
                    "layernorm",
                    {"dropout": {"p": 0.25}},
                    {"leaky_relu": {"negative_slope": 0.1}},
                    *ACTS,
                ]
            )
        )
    k = draw(st.integers(1, 3))
    s = draw(st.integers(1, 2))
    conv = {
        "out": draw(st.integers(1, 6)),
        "kernel": k,
        "stride": s,
        "padding": draw(st.integers(0, k // 2)),
        "dilation": draw(st.integers(1, 2)),
        "bias": draw(st.booleans()),
    }
    return draw(
        st.sampled_from(
            [
                {"conv": conv},
                {"conv": {"out": draw(st.integers(1, 6)), "kernel": k, "padding": "same"}},
                {
                    "conv_transpose": {
                        "out": draw(st.integers(1, 6)),
                        "kernel": k,
                        "stride": s,
                        "output_padding": draw(st.integers(0, s - 1)),
                    }
                },
                {
                    "maxpool": {
                        "kernel": k,
                        "stride": s,
                        "padding": draw(st.integers(0, k // 2)),
                        "ceil_mode": draw(st.booleans()),
                    }
                },
                {"avgpool": {"kernel": k, "ceil_mode": draw(st.booleans())}},
                {"adaptive_avgpool": {"size": draw(st.integers(1, 3))}},
                {"adaptive_maxpool": {"size": 2}},
                {"lrn": {"size": 2}},
                "bn",
                {"groupnorm": {"groups": 1}},
                "flatten",
                *ACTS,
            ]
        )
    )


@st.composite
def flat_specs(draw):
    nsp = draw(st.integers(1, 3))
    input = [draw(st.integers(1, 2)), draw(st.integers(1, 4))]
    input += [draw(st.integers(3, 9 if nsp < 3 else 5)) for _ in range(nsp)]
    spec = {"name": "h", "input": input, "layers": []}
    shape = tuple(input)
    for i in range(draw(st.integers(1, 6))):
        layer = draw(flat_layers(len(shape) > 2))
        if draw(st.booleans()):
            t = layer if isinstance(layer, str) else next(iter(layer))
            opts = {} if isinstance(layer, str) else dict(layer[t])
            layer = {t: {**opts, "name": f"l{i}"}}
        try:  # keep layers that fit the current shape (the strategy can't know every size)
            shape = S.validate({**spec, "layers": [*spec["layers"], layer]}).output_shape
        except SpecError:
            continue
        spec["layers"].append(layer)
    if not spec["layers"]:
        spec["layers"].append("identity")
    return spec


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flat_specs())
def test_random_flat_specs_round_trip_and_build(spec):
    s = S.validate(spec)
    for fmt in ("yaml", "json"):
        assert S.validate(S.parse(S.dumps(s, fmt), fmt)) == s
    assert S.validate(S.from_url(S.to_url(s))) == s
    assert S.validate(S.from_table(S.to_table(s), s.input, s.name)) == s
    shapes, out, numel = cpu_shapes(s)
    assert out == s.output_shape and numel == s.num_params
    for layer in s.layers:
        assert tuple(shapes[layer.module]) == layer.out_shape


def test_3d_pool_larger_than_its_input_is_refused_like_pytorch():
    text = (
        "input: [1, 1, 3, 3, 3]\nlayers:\n  - conv: {out: 1, kernel: 2, dilation: 2}\n"
        "  - avgpool: {kernel: 2, ceil_mode: true}\n"
    )
    with pytest.raises(RuntimeError, match="smaller than kernel size"):  # the oracle
        torch.nn.AvgPool3d(2, ceil_mode=True)(torch.zeros(1, 1, 1, 1, 1))
    with pytest.raises(SpecError, match=r"larger than its input 1x1x1") as e:
        S.validate(S.parse(text))
    assert e.value.path == "layers[1].avgpool"


def test_text_that_opens_like_json_gets_the_json_error():
    with pytest.raises(SpecError, match="invalid JSON at line 1, column 42"):
        S.parse('{"input": [1, 3, 8, 8], "layers": ["relu"')  # unclosed: both parsers fail
    with pytest.raises(SpecError, match="invalid YAML"):
        S.parse("input: [1, 3\nlayers: x\n")


def test_3d_maxpool_counts_its_padding_as_pytorch_does():
    # PyTorch runs MaxPool3d(3, 1, 1) on a 2x7x7 input (padding counts); only avg_pool3d
    # refuses an unpadded input under the kernel. Oracle: the real modules on the CPU.
    pool = {"kernel": 3, "stride": 1, "padding": 1}
    s = S.validate({"input": [1, 2, 2, 7, 7], "layers": [{"maxpool": pool}]})
    assert s.output_shape == tuple(torch.nn.MaxPool3d(3, 1, 1)(torch.zeros(1, 2, 2, 7, 7)).shape)
    with pytest.raises(RuntimeError):
        torch.nn.AvgPool3d(3, 1, 1)(torch.zeros(1, 2, 2, 7, 7))
    with pytest.raises(SpecError, match="larger than its input"):
        S.validate({"input": [1, 2, 2, 7, 7], "layers": [{"avgpool": pool}]})
