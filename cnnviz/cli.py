"""The ``cnnviz`` command line.

    cnnviz models
    cnnviz summary resnet50 --shortcut A --input 1x3x224x224 --format table
    cnnviz summary torchvision:resnet50          (when torchvision is installed)
    cnnviz summary my_net.yaml                   (a declarative spec, as in the app)
    cnnviz summary path/to/net.py:build_model    (imports and runs YOUR file: your own code only)
    cnnviz summary torchvision:fasterrcnn_resnet50_fpn --device cpu
                                                 (real CPU tensors, for data-dependent models)

Exit codes: 0 success, 1 the model could not be analyzed (or your file raised), 2 bad command
line or model name.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from cnnviz import spec as spec_mod
from cnnviz import zoo
from cnnviz.analysis import analyze
from cnnviz.errors import AnalysisError
from cnnviz.render.graph import COLOR_BY
from cnnviz.render.table import render_markdown, render_text
from cnnviz.training import training_step


class UsageError(Exception):
    """A command-line mistake: printed with exit code 2."""


class UserCodeError(Exception):
    """The user's own file raised: printed with where it raised, exit code 1."""


def _user_code_error(what: str, path: Path, e: BaseException) -> UserCodeError:
    """One line: what raised, and the innermost line of the user's file it came from."""
    where = ""
    tb = e.__traceback__
    while tb is not None:
        if Path(tb.tb_frame.f_code.co_filename).resolve() == path.resolve():
            where = f" (at {path}:{tb.tb_lineno})"
        tb = tb.tb_next
    return UserCodeError(f"{what} raised {type(e).__name__}: {e}{where}")


def parse_input(text: str) -> tuple[int, ...]:
    """``"1x3x224x224"`` -> ``(1, 3, 224, 224)`` (the batch dimension included).

    >>> parse_input("1x3x224x224")
    (1, 3, 224, 224)
    """
    parts = text.lower().replace(",", "x").split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise UsageError(
            f"--input {text!r}: expected sizes joined by 'x', e.g. 1x3x224x224"
        ) from None
    if len(shape) < 2:
        raise UsageError(f"--input {text!r}: include the batch dimension, e.g. 1x3x224x224")
    return shape


def _import_file(spec: str) -> nn.Module:
    path_text, _, factory = spec.rpartition(":")
    path = Path(path_text)
    if not path.is_file():
        raise UsageError(f"{path_text}: no such file (expected path/to/file.py:factory)")
    modspec = importlib.util.spec_from_file_location(path.stem, path)
    if modspec is None or modspec.loader is None:
        raise UsageError(f"{path_text}: cannot be imported as a Python file")
    module = importlib.util.module_from_spec(modspec)
    sys.path.insert(0, str(path.parent.resolve()))
    try:
        modspec.loader.exec_module(module)  # the user's own code, on the user's machine
    except Exception as e:
        raise _user_code_error(f"importing {path_text}", path, e) from e
    finally:
        sys.path.pop(0)
    fn = getattr(module, factory, None)
    if fn is None:
        names = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
        raise UsageError(f"{path_text} has no {factory!r}; callables there: {', '.join(names)}")
    try:
        model = fn() if callable(fn) and not isinstance(fn, nn.Module) else fn
    except Exception as e:
        raise _user_code_error(f"{factory}()", path, e) from e
    if not isinstance(model, nn.Module):
        raise UsageError(f"{spec} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def _external(prefix: str, name: str, device: str = "meta") -> nn.Module:
    try:
        lib = importlib.import_module(prefix)
    except Exception as e:  # ImportError, or a broken install
        raise UsageError(
            f"{prefix}: cannot import it ({e}); install it to use {prefix}:NAME"
        ) from e
    try:
        with torch.device(device):
            if prefix == "torchvision":
                return lib.models.get_model(name, weights=None)
            return lib.create_model(name, pretrained=False)
    except Exception as e:  # an unknown name, or arguments the model does not take
        raise UsageError(f"{prefix}:{name}: {type(e).__name__}: {e}") from e


def load_model(
    name: str, options: Sequence[str], device: str = "meta"
) -> tuple[nn.Module, tuple[int, ...] | None]:
    """Build the model named on the command line on ``device`` (meta: no memory; cpu: real
    weights, for ``analyze(..., device="cpu")``); returns it and its default input size.
    A file's factory builds its model where it likes."""
    prefix, sep, rest = name.partition(":")
    external = sep and prefix in ("torchvision", "timm")
    is_file = sep and name.rpartition(":")[0].endswith(".py")
    is_spec = name.lower().endswith((".yaml", ".yml", ".json"))
    if options and (external or is_file or is_spec):
        raise UsageError(f"options {' '.join(options)} only apply to zoo models")
    if external:  # torchvision / timm classifiers take ImageNet-size inputs by default
        return _external(prefix, rest, device), (1, 3, 299, 299) if "inception" in rest else (
            1,
            3,
            224,
            224,
        )
    if is_file:
        model = _import_file(name)
        return model, getattr(model, "default_input_size", None)
    if is_spec:  # a declarative spec, the same files the app takes
        path = Path(name)
        if not path.is_file():
            raise UsageError(f"{name}: no such spec file")
        try:
            with path.open("rb") as f:  # one byte over the limit is enough to refuse it
                text = spec_mod.decode(f.read(spec_mod.LIMITS.text_bytes + 1))
            model = spec_mod.build(text, device=device)
        except spec_mod.SpecError as e:
            raise UsageError(f"{name}: {e}") from None
        except OSError as e:
            raise UsageError(f"{name}: cannot read it ({e.strerror or e})") from None
        return model, tuple(model.default_input_size)
    if name.endswith(".py"):
        raise UsageError(f"{name}: name the function that builds the model: {name}:build_model")
    info = zoo.model_info(name)  # ZooError with close matches for unknown names
    texts = _option_texts(name, info, options)
    config = info.parse_options(texts)
    model = zoo.get_model(name, device=device, **config)
    return model, tuple(model.default_input_size)


def _option_texts(name: str, info, options: Sequence[str]) -> dict[str, str]:
    texts: dict[str, str] = {}
    it = iter(options)
    valid = ", ".join(f"--{k.replace('_', '-')}" for k in info.options) or "none"
    for tok in it:
        if not tok.startswith("--"):
            raise UsageError(f"unexpected argument {tok!r}; {name} options: {valid}")
        key, eq, value = tok[2:].partition("=")
        key = key.replace("-", "_")
        if key.startswith("no_") and key[3:] in info.options and not eq:
            texts[key[3:]] = "false"
            continue
        if key not in info.options:
            hint = "; to fold nested rows, use --max-depth" if key == "depth" else ""
            raise UsageError(
                f"{name} has no option --{key.replace('_', '-')}; options: {valid}{hint}"
            )
        if not eq:
            if info.options[key].type is bool:
                value = "true"
            else:
                value = next(it, None)
                if value is None:
                    raise UsageError(f"--{key.replace('_', '-')} needs a value")
        texts[key] = value
    return texts


def _cmd_models(args) -> int:
    rows = []
    for name in zoo.list_models():
        info = zoo.model_info(name)
        opts = " ".join(f"--{k.replace('_', '-')}" for k in info.options)
        rows.append((name, "x".join(map(str, info.input_size)), info.description, opts))
    if args.format == "json":
        print(
            json.dumps(
                [
                    dict(zip(("name", "input", "description", "options"), r, strict=True))
                    for r in rows
                ],
                indent=2,
            )
        )
        return 0
    w = [max(len(r[i]) for r in rows) for i in range(2)]
    for name, size, desc, opts in rows:
        print(f"{name.ljust(w[0])}  {size.ljust(w[1])}  {desc}" + (f"  [{opts}]" if opts else ""))
    return 0


def _model_and_size(args, extra: Sequence[str]):
    """The model and its input size(s) from MODEL, its options, --input and --batch."""
    model, default = load_model(args.model, extra, getattr(args, "device", "meta"))
    sizes = [parse_input(text) for text in args.input or ()]
    size = (sizes[0] if len(sizes) == 1 else tuple(sizes)) if sizes else default
    if size is None:
        raise UsageError(f"{args.model}: give --input, e.g. --input 1x3x224x224")
    if args.batch is not None:
        if args.batch < 1:
            raise UsageError(f"--batch {args.batch}: give 1 or more")
        nested = bool(size) and isinstance(size[0], (tuple, list))
        first = tuple(size[0]) if nested else tuple(size)
        first = (args.batch, *first[1:])
        size = (first, *size[1:]) if nested else first
    return model, size


#: Memory sizes the training summary answers "fits up to batch M" for (common GPUs, GiB).
GPU_SIZES_GIB = (8, 16, 24, 40, 80)


def _cmd_train(args, model, size) -> int:
    step = training_step(model, size, optimizer=args.train, dtype=args.dtype)
    if args.format == "csv":
        sys.stdout.write(step.layers.to_csv(index=False))
        return 0
    if args.format == "json":
        d = dataclasses.asdict(step)
        d["fits_up_to_batch"] = {f"{g} GiB": step.max_batch_size(g * 2**30) for g in GPU_SIZES_GIB}
        print(json.dumps(d, indent=2, default=str))
        return 0
    print(step)
    for g in GPU_SIZES_GIB:
        m = step.max_batch_size(g * 2**30)
        said = "does not fit at batch 1" if m == 0 else f"fits up to batch {m:,}"
        print(f"a {g} GiB GPU".ljust(19) + f"  {said}")
    return 0


def _cmd_summary(args, extra: Sequence[str]) -> int:
    if args.max_depth is not None and args.max_depth < 0:
        raise UsageError(f"--max-depth {args.max_depth}: give 0 (one row) or more")
    if args.max_depth is not None and args.format in ("csv", "json"):
        raise UsageError(
            f"--max-depth folds the table and markdown views; {args.format} has every row"
        )
    if args.train is not None and args.device != "meta":
        raise UsageError("--train traces on the meta device; leave out --device")
    model, size = _model_and_size(args, extra)
    if args.train is not None:
        return _cmd_train(args, model, size)
    a = analyze(model, size, dtype=args.dtype, mode=args.mode, device=args.device)
    if args.format == "csv":
        sys.stdout.write(a.to_pandas().to_csv(index=False))
    elif args.format == "json":
        print(json.dumps(a.to_dict(), indent=2, default=str))
    elif args.format == "markdown":
        print(render_markdown(a, args.max_depth))
    else:
        print(render_text(a, args.max_depth))
    return 0


def _cmd_graph(args, extra: Sequence[str]) -> int:
    if args.depth is not None and args.depth < 0:
        raise UsageError(f"--depth {args.depth}: give 0 (one node) or more")
    model, size = _model_and_size(args, extra)
    a = analyze(model, size, dtype=args.dtype)
    if args.format == "mermaid":
        print(a.to_mermaid(args.depth, args.color_by))
    else:
        print(a.to_dot(args.depth, args.color_by))
    return 0


def _model_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("model")
    s.add_argument(
        "--input",
        action="append",
        help="input size with batch, e.g. 1x3x224x224 (default: the model's own); repeat it "
        "for a model with several inputs",
    )
    s.add_argument(
        "--batch", type=int, default=None, metavar="N", help="the batch size (first input)"
    )
    s.add_argument(
        "--dtype", default="float32", choices=("float32", "float16", "bfloat16", "float64")
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cnnviz",
        description="See why CNN architectures look the way they do: per-layer shapes, "
        "params, MACs and receptive fields of real PyTorch models.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("models", help="list the model zoo")
    m.add_argument("--format", choices=("table", "json"), default="table")
    s = sub.add_parser(
        "summary",
        help="per-layer shapes, params, MACs and receptive fields",
        description="MODEL is a zoo name (options follow it: resnet50 --shortcut A), "
        "a spec file (.yaml/.json), torchvision:NAME, timm:NAME, or path/to/file.py:factory "
        "(imports your file).",
    )
    _model_arguments(s)
    s.add_argument("--format", choices=("table", "csv", "json", "markdown"), default="table")
    s.add_argument(
        "--max-depth",
        type=int,
        default=None,
        metavar="N",
        help="fold rows nested deeper than N into their parent (1: conv1, layer1, ..., fc)",
    )
    s.add_argument("--mode", choices=("eval", "train"), default="eval")
    s.add_argument(
        "--device",
        choices=("meta", "cpu"),
        default="meta",
        help="meta (default): shapes only, nothing computed; cpu: one forward pass on real "
        "CPU tensors, for models whose shapes depend on values (detectors)",
    )
    s.add_argument(
        "--train",
        choices=("sgd", "sgd_momentum", "adam", "adamw"),
        default=None,
        help="instead of the layer table, one training step with this optimizer: forward and "
        "backward MACs, gradients, optimizer state, saved tensors, peak memory, and the "
        "largest batch that fits common GPU memory sizes",
    )
    g = sub.add_parser(
        "graph",
        help="the data-flow graph as Graphviz DOT or Mermaid text",
        description="MODEL as for summary. Pipe DOT into `dot -Tsvg` (Graphviz) or paste "
        "Mermaid into Markdown.",
    )
    _model_arguments(g)
    g.add_argument("--format", choices=("dot", "mermaid"), default="dot")
    g.add_argument(
        "--depth",
        type=int,
        default=None,
        metavar="N",
        help="one node per container at depth N (1: conv1, layer1, ..., fc)",
    )
    g.add_argument("--color-by", choices=COLOR_BY, default="macs")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cnnviz`` console script; returns the exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    try:
        if args.command == "models":
            if extra:
                raise UsageError(f"unexpected arguments: {' '.join(extra)}")
            return _cmd_models(args)
        if args.command == "graph":
            return _cmd_graph(args, extra)
        return _cmd_summary(args, extra)
    except (UsageError, zoo.ZooError) as e:
        print(f"cnnviz: error: {e}", file=sys.stderr)
        return 2
    except AnalysisError as e:
        print(f"cnnviz: cannot analyze {args.model}: {e}", file=sys.stderr)
        return 1
    except UserCodeError as e:
        print(f"cnnviz: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
