"""The ``cnnviz`` command line: output formats, model sources, exit codes and messages."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

import cnnviz
from cnnviz import zoo
from cnnviz.cli import main, parse_input


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_models_lists_the_zoo(capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0
    assert "resnet50" in out and "--shortcut" in out and "alexnet_paper" in out
    code, out, _ = run(capsys, "models", "--format", "json")
    assert {m["name"] for m in json.loads(out)} >= {"vgg16", "googlenet", "resnet_cifar"}


def test_summary_table_uses_model_default_input(capsys):
    code, out, _ = run(capsys, "summary", "resnet18")
    assert code == 0
    assert "11,689,512" in out and "1x3x224x224" in out  # REFERENCE.md section 2


def test_summary_zoo_options(capsys):
    # Shortcut A has no projection convs: resnet18 B - A = the three 1x1 projections + BN.
    _, out_a, _ = run(capsys, "summary", "resnet18", "--shortcut", "A", "--format", "json")
    _, out_b, _ = run(capsys, "summary", "resnet18", "--format", "json")
    proj = (64 * 128 + 2 * 128) + (128 * 256 + 2 * 256) + (256 * 512 + 2 * 512)
    assert json.loads(out_b)["total_params"] - json.loads(out_a)["total_params"] == proj
    code, out, _ = run(capsys, "summary", "vgg11", "--batch-norm", "--format", "json")
    assert code == 0 and json.loads(out)["total_params"] == 132_868_840  # vgg11_bn


def test_summary_formats(capsys, tmp_path):
    code, out, _ = run(capsys, "summary", "resnet20", "--format", "csv")
    assert code == 0
    (tmp_path / "r.csv").write_text(out)
    df = pd.read_csv(tmp_path / "r.csv")
    assert df["params"].sum() == 269_722  # resnet20, option A: equals the zoo's count
    code, out, _ = run(capsys, "summary", "resnet20", "--format", "markdown", "--max-depth", "1")
    assert code == 0 and out.startswith("| layer") and "layer1.0.conv1" not in out
    code, out, _ = run(capsys, "summary", "alexnet", "--input", "2x3x224x224", "--format", "json")
    assert json.loads(out)["input_shapes"] == [[2, 3, 224, 224]]


def test_user_file_factory(capsys, tmp_path):
    src = tmp_path / "mynet.py"
    src.write_text(
        textwrap.dedent("""
        import torch.nn as nn
        def build():
            return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU())
    """)
    )
    code, out, _ = run(capsys, "summary", f"{src}:build", "--input", "1x1x8x8")
    assert code == 0 and "40" in out  # 4*1*3*3 + 4 params
    code, _, err = run(capsys, "summary", f"{src}:missing", "--input", "1x1x8x8")
    assert code == 2 and "no 'missing'" in err and "build" in err
    code, _, err = run(capsys, "summary", f"{src}:build")
    assert code == 2 and "--input" in err


@pytest.mark.parametrize(
    ("argv", "code", "needle"),
    [
        (["summary", "resnet05"], 2, "resnet50"),  # close match suggested
        (["summary", "resnet18", "--shortcut", "D"], 2, "'none', 'A', 'B', 'C'"),
        (["summary", "resnet18", "--shortcuts", "A"], 2, "--shortcut"),
        (["summary", "resnet18", "--input", "1xAx224"], 2, "1x3x224x224"),
        (["summary", "resnet18", "--input", "224"], 2, "batch dimension"),
        (["summary", "alexnet", "--input", "1x3x32x32"], 1, "too small"),
        (["summary", "torchvision:resnet50"], 2, "torchvision"),
        (["summary", "nofile.py:build"], 2, "no such file"),
    ],
)
def test_errors_and_exit_codes(capsys, argv, code, needle):
    if argv[1].startswith("torchvision:") and importlib.util.find_spec("torchvision"):
        pytest.skip("torchvision is installed here")
    got, _, err = run(capsys, *argv)
    assert got == code
    assert needle in err and "Traceback" not in err


def test_parse_input():
    assert parse_input("1x3x224x224") == (1, 3, 224, 224)
    assert parse_input("2,3,32,32") == (2, 3, 32, 32)


def test_console_script_runs():
    out = subprocess.run(
        [sys.executable, "-m", "cnnviz.cli", "summary", "resnet20"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "269,722" in out


def test_python_dash_m_cnnviz_runs_the_cli():
    done = subprocess.run(
        [sys.executable, "-m", "cnnviz", "models"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and "resnet50" in done.stdout and "--shortcut" in done.stdout


def test_package_is_typed_and_described():
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    root = Path(cnnviz.__file__).parent
    assert (root / "py.typed").is_file()
    project = tomllib.loads((root.parent / "pyproject.toml").read_text())
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["cnnviz"]
    assert "Typing :: Typed" in project["project"]["classifiers"]
    assert "receptive-field" in project["project"]["keywords"]


def test_summary_says_which_parameters_are_unused(capsys):
    code, out, _ = run(capsys, "summary", "googlenet", "--aux-logits")
    assert code == 0 and "(aux1, aux2) are not used by this eval-mode forward pass" in out


def test_device_cpu_traces_a_data_dependent_model(capsys, tmp_path):
    src = tmp_path / "detector.py"
    src.write_text(
        textwrap.dedent("""
        import torch, torch.nn as nn

        class Detector(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 4, 3, padding=1)

            def forward(self, x):
                y = self.conv(x)
                return y[y > 0]  # how many survive depends on the values

        def build():
            return Detector()
    """)
    )
    code, _, err = run(capsys, "summary", f"{src}:build", "--input", "1x3x8x8")
    assert code == 1 and "device='cpu'" in err
    code, out, _ = run(capsys, "summary", f"{src}:build", "--input", "1x3x8x8", "--device", "cpu")
    assert code == 0 and "6,912 (6.9K)" in out  # total MACs, the conv: 8*8*4 * 3*3*3
    code, out, _ = run(capsys, "summary", "resnet20", "--device", "cpu", "--format", "json")
    assert code == 0 and json.loads(out)["total_params"] == 269_722  # built on the CPU


def test_spec_file(capsys, tmp_path):
    from cnnviz import spec

    path = tmp_path / "net.yaml"
    path.write_text(spec.examples()["tiny_resnet"])
    code, out, _ = run(capsys, "summary", str(path), "--format", "json")
    assert code == 0
    assert json.loads(out)["total_params"] == sum(
        p.numel() for p in spec.build(path.read_text()).parameters()
    )
    path.write_text("input: [1, 3, 8, 8]\nlayers:\n  - conv: {out: 4, kernel: 0}\n")
    code, _, err = run(capsys, "summary", str(path))
    assert code == 2 and "layers[0].conv.kernel" in err


def test_user_file_that_raises_is_one_line_with_its_place(capsys, tmp_path):
    src = tmp_path / "broken.py"
    src.write_text(
        textwrap.dedent("""
        import torch.nn as nn
        def needs_arg(width):
            return nn.Conv2d(1, width, 3)
        def boom():
            raise RuntimeError("no weights here")
    """)
    )
    code, _, err = run(capsys, "summary", f"{src}:boom", "--input", "1x1x8x8")
    assert code == 1 and "Traceback" not in err
    assert "boom() raised RuntimeError: no weights here" in err and f"{src}:6" in err
    code, _, err = run(capsys, "summary", f"{src}:needs_arg", "--input", "1x1x8x8")
    assert code == 1 and "needs_arg() raised TypeError" in err and "width" in err
    bad = tmp_path / "bad_import.py"
    bad.write_text("import torch\nraise ImportError('missing dependency')\n")
    code, _, err = run(capsys, "summary", f"{bad}:build", "--input", "1x1x8x8")
    assert code == 1 and "importing" in err and "missing dependency" in err and ":2)" in err


def test_negative_max_depth_is_a_usage_error(capsys):
    code, _, err = run(capsys, "summary", "resnet20", "--max-depth", "-1")
    assert code == 2 and "--max-depth -1" in err


def test_depth_is_the_cifar_models_option_not_the_tables(capsys):
    # resnet_cifar --depth 110 is ResNet-110 (He et al. report 1.7M params)
    code, out, _ = run(capsys, "summary", "resnet_cifar", "--depth", "110", "--format", "json")
    want = sum(p.numel() for p in zoo.get_model("resnet_cifar", depth=110).parameters())
    assert code == 0 and json.loads(out)["total_params"] == want
    assert 1.65e6 < want < 1.75e6
    code, _, err = run(capsys, "summary", "resnet50", "--depth", "1")
    assert code == 2 and "--max-depth" in err


def test_max_depth_folds_rows_into_their_parents(capsys):
    from cnnviz.render.table import rows

    a = cnnviz.analyze(zoo.get_model("resnet50", device="meta"), (1, 3, 224, 224))
    table = {r[0]: r for r in rows(a, 1)}
    assert list(table) == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3",
                           "layer4", "avgpool", "flatten", "fc"]  # fmt: skip
    # nothing vanishes: the folded rows' params sum to the total
    assert sum(int(r[3].replace(",", "")) for r in table.values()) == a.total_params
    assert table["layer4"][2] == "1x2048x7x7" and table["layer4"][5] == "427x427"  # REFERENCE 3
    code, out, _ = run(capsys, "summary", "resnet50", "--max-depth", "1")
    assert code == 0 and "layer3" in out and "layer1.0.conv1" not in out
    _, out, _ = run(capsys, "summary", "resnet20", "--max-depth", "0")
    body = [line for line in out.splitlines() if " rows  " in line]
    assert len(body) == 1 and "269,722" in body[0] and body[0].startswith("resnet20 ")


def test_plain_text_help_and_hints(capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0 and "``" not in out and ":class:" not in out
    code, _, err = run(capsys, "summary", "my_net.py")
    assert code == 2 and "my_net.py:build_model" in err
    with pytest.raises(SystemExit) as e:
        main(["summary", "resnet20", "--dtype", "int8"])
    assert e.value.code == 2


def test_max_depth_keeps_a_containers_own_ops_and_output(capsys):
    from cnnviz.render.table import rows

    # GoogLeNet: inception3a's output is its concat (256 channels), not its last branch's
    a = cnnviz.analyze(zoo.get_model("googlenet", device="meta"), (1, 3, 224, 224))
    table = {r[0]: r for r in rows(a, 1)}
    assert table["inception3a"][2] == "1x256x28x28" and "inception3a#2" not in table
    # a residual block's own add folds into it instead of splitting it in two
    a = cnnviz.analyze(zoo.get_model("resnet18", device="meta"), (1, 3, 224, 224))
    names = [r[0] for r in rows(a, 2)]
    assert "layer1.0" in names and "layer1.0#2" not in names and "layer1.0.add" not in names
    code, _, err = run(capsys, "summary", "resnet18", "--max-depth", "1", "--format", "csv")
    assert code == 2 and "every row" in err


def test_repeated_input_for_a_model_with_two_inputs(capsys, tmp_path):
    src = tmp_path / "two.py"
    src.write_text(
        textwrap.dedent("""
        import torch.nn as nn
        class Two(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(10, 4)
            def forward(self, image, meta):
                return self.conv(image).mean((2, 3)) + self.fc(meta)
        def build():
            return Two()
    """)
    )
    argv = ["summary", f"{src}:build", "--input", "1x3x8x8", "--input", "1x10", "--format", "json"]
    code, out, _ = run(capsys, *argv)
    assert code == 0 and json.loads(out)["input_shapes"] == [[1, 3, 8, 8], [1, 10]]


def test_container_called_twice_keeps_each_call():
    import torch.nn as nn

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.blk = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1))

        def forward(self, x):
            return self.blk(self.blk(x))

    a = cnnviz.analyze(Twice(), (1, 1, 16, 16))
    assert a.receptive_field("blk").size == (3, 3)  # the first call, as rows name it
    assert a.receptive_field("blk#2").size == (5, 5)


def test_summary_train_prints_the_step(capsys):
    code, out, _ = run(capsys, "summary", "resnet_cifar", "--depth", "20", "--train", "adamw")
    assert code == 0
    step = cnnviz.training_step(
        zoo.get_model("resnet_cifar", device="meta", depth=20), (1, 3, 32, 32)
    )
    assert f"backward MACs       {step.backward_macs:,}" in out
    for g in (8, 80):
        assert f"a {g} GiB GPU" in out and f"up to batch {step.max_batch_size(g * 2**30):,}" in out


def test_summary_train_batch_and_formats(capsys):
    code, out, _ = run(
        capsys, "summary", "resnet20", "--train", "sgd", "--batch", "4", "--format", "csv"
    )
    assert code == 0
    df = pd.read_csv(__import__("io").StringIO(out))
    assert list(df.columns) == ["name", "type", "forward_macs", "backward_macs", "saved_bytes"]
    code, out, _ = run(
        capsys, "summary", "resnet20", "--train", "sgd", "--batch", "4", "--format", "json"
    )
    d = json.loads(out)
    assert d["batch_size"] == 4 and d["optimizer"] == "sgd" and d["optimizer_bytes"] == 0
    assert d["input_shapes"] == [[4, 3, 32, 32]]
    code, _, err = run(capsys, "summary", "resnet20", "--batch", "0")
    assert code == 2 and "--batch 0" in err


def test_summary_marks_unproductive_layers(capsys):
    code, out, _ = run(capsys, "summary", "vgg16", "--input", "1x3x32x32")
    assert code == 0
    line = next(x for x in out.splitlines() if x.startswith("unproductive layers"))
    a = cnnviz.analyze(zoo.get_model("vgg16", device="meta"), (1, 3, 32, 32))
    assert f"{len(a.unproductive())} add no context here" in line and "`features.14`" in line


def test_graph_prints_dot_and_mermaid(capsys):
    code, out, _ = run(capsys, "graph", "resnet18", "--depth", "1")
    assert code == 0 and out.startswith('digraph "resnet18"')
    assert '"layer1" -> "layer2";' in out
    code, out, _ = run(capsys, "graph", "resnet20", "--format", "mermaid", "--color-by", "rf")
    assert code == 0 and out.startswith("flowchart TD")
    code, _, err = run(capsys, "graph", "resnet18", "--depth", "-1")
    assert code == 2 and "--depth -1" in err
    with pytest.raises(SystemExit) as e:  # argparse refuses the choice, exit 2
        main(["graph", "resnet18", "--color-by", "speed"])
    assert e.value.code == 2 and "invalid choice: 'speed'" in capsys.readouterr().err
