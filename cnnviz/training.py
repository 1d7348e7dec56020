"""One training step, measured on the meta device: MACs forward and backward, and memory.

``training_step`` runs the model's real forward (in train mode: batch statistics, dropout on)
on meta stand-ins for its parameters and buffers, then the backward of the sum of its outputs
and one optimizer step, and watches three things:

- every tensor autograd saves for the backward (``torch.autograd.graph.saved_tensors_hooks``),
  charged to the row that saved it, each storage once;
- the MACs of every backward kernel, counted with ``FlopCounterMode``'s own formulas (its
  FLOPs / 2) and charged to the row whose forward created the autograd node;
- the live storages at every moment (:class:`cnnviz.memory.LiveStorage`), whose high-water
  mark is the step's peak.

The rows are :func:`cnnviz.analyze`'s: the same tracer names them. Nothing is computed and the
model is borrowed, never changed: its parameters get no gradients, its buffers keep their
values (BatchNorm's running statistics are updated on the stand-ins), its train/eval flags and
hooks are restored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry

from cnnviz import analysis as _an
from cnnviz import fmt
from cnnviz.errors import AnalysisError
from cnnviz.memory import LiveStorage, storage_key
from cnnviz.rules import RULES
from cnnviz.trace import Tracer

if TYPE_CHECKING:
    import pandas as pd

Optimizer = Literal["sgd", "sgd_momentum", "adam", "adamw"]

#: Optimizer state kept per trainable parameter, in buffers of the parameter's size: SGD
#: none, SGD with momentum one (the momentum buffer), Adam/AdamW two (exp_avg, exp_avg_sq;
#: Kingma & Ba 2015, torch.optim.Adam).
STATE_BUFFERS: dict[str, int] = {"sgd": 0, "sgd_momentum": 1, "adam": 2, "adamw": 2}


def _make_optimizer(name: str, params: list[torch.Tensor]) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=0.01)
    if name == "sgd_momentum":
        return torch.optim.SGD(params, lr=0.01, momentum=0.9)
    if name == "adam":
        return torch.optim.Adam(params)
    return torch.optim.AdamW(params)


@dataclass(frozen=True)
class LayerStep:
    """One analyze row's share of the step."""

    name: str
    type: str
    forward_macs: int
    backward_macs: int
    saved_bytes: int  # tensors this row's ops keep for the backward, each storage once


@dataclass(frozen=True)
class TrainingStep:
    """What one training step costs, as plain data (see :func:`training_step`).

    Bytes: ``param_bytes`` (all parameters), ``grad_bytes`` (one gradient per trainable
    parameter), ``optimizer_bytes`` (the optimizer's state), ``saved_bytes`` (what autograd
    keeps from the forward for the backward, parameters and buffers excluded) and
    ``peak_bytes``, the most memory live at once over the forward, backward and optimizer
    step (parameters, buffers, gradients, optimizer state, saved tensors and the transients
    of each kernel). ``peak(batch) = batch_constant_bytes + batch * batch_linear_bytes``
    for the forward and backward, ``step_peak_bytes`` for the optimizer step: that is how
    :meth:`max_batch_size` extrapolates.
    """

    model_name: str
    input_shapes: tuple[tuple[int, ...], ...]
    batch_size: int
    dtype: str
    optimizer: str
    forward_macs: int
    backward_macs: int
    param_bytes: int
    buffer_bytes: int
    grad_bytes: int
    optimizer_bytes: int
    saved_bytes: int
    peak_bytes: int
    step_peak_bytes: int
    batch_constant_bytes: int
    batch_linear_bytes: int
    rows: tuple[LayerStep, ...]

    @property
    def layers(self) -> pd.DataFrame:
        """One row per :func:`cnnviz.analyze` row: name, type, forward and backward MACs and
        saved bytes."""
        import pandas as pd

        cols = list(LayerStep.__dataclass_fields__)
        return pd.DataFrame([[getattr(r, c) for c in cols] for r in self.rows], columns=cols)

    @property
    def total_macs(self) -> int:
        return self.forward_macs + self.backward_macs

    def peak_at(self, batch_size: int) -> int:
        """The step's peak at another batch size (the forward/backward part grows linearly).

        >>> import torch.nn as nn, cnnviz
        >>> s = cnnviz.training_step(nn.Conv2d(3, 8, 3), (2, 3, 16, 16))
        >>> s.peak_at(2) == s.peak_bytes
        True
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if batch_size == self.batch_size:
            return self.peak_bytes
        fb = self.batch_constant_bytes + batch_size * self.batch_linear_bytes
        return max(fb, self.step_peak_bytes)

    def fits(self, memory_bytes: int) -> bool:
        """True when this step's peak fits in ``memory_bytes``.

        >>> import torch.nn as nn, cnnviz
        >>> s = cnnviz.training_step(nn.Conv2d(3, 8, 3), (2, 3, 16, 16))
        >>> s.fits(2**30), s.fits(1000)
        (True, False)
        """
        return self.peak_bytes <= memory_bytes

    def max_batch_size(self, memory_bytes: int) -> int:
        """The largest batch whose step fits in ``memory_bytes`` (0 when not even one does),
        from the batch-constant and batch-linear parts of the peak.

        >>> import torch.nn as nn, cnnviz
        >>> s = cnnviz.training_step(nn.Conv2d(3, 8, 3), (2, 3, 16, 16))
        >>> b = s.max_batch_size(2**20)
        >>> s.peak_at(b) <= 2**20 < s.peak_at(b + 1)
        True
        """
        if self.step_peak_bytes > memory_bytes or self.batch_constant_bytes > memory_bytes:
            return 0
        if self.batch_linear_bytes <= 0:
            return 2**62  # nothing grows with the batch: any batch fits (say so, do not loop)
        return max(0, (memory_bytes - self.batch_constant_bytes) // self.batch_linear_bytes)

    def summary(self) -> list[tuple[str, str]]:
        """(label, value) lines for the CLI and the app."""
        return [
            ("batch", str(self.batch_size)),
            ("optimizer", self.optimizer),
            ("forward MACs", f"{self.forward_macs:,} ({fmt.compact(self.forward_macs)})"),
            ("backward MACs", f"{self.backward_macs:,} ({fmt.compact(self.backward_macs)})"),
            ("parameters", fmt.nbytes(self.param_bytes)),
            ("gradients", fmt.nbytes(self.grad_bytes)),
            ("optimizer state", fmt.nbytes(self.optimizer_bytes)),
            ("saved for backward", fmt.nbytes(self.saved_bytes)),
            ("peak memory", fmt.nbytes(self.peak_bytes)),
        ]

    def __str__(self) -> str:
        k = max(len(label) for label, _ in self.summary())
        head = (
            f"{self.model_name} training step ({self.dtype}, input {fmt.shapes(self.input_shapes)})"
        )
        return "\n".join([head] + [f"{a.ljust(k)}  {b}" for a, b in self.summary()])


class _BackwardMacs(TorchDispatchMode):
    """FlopCounterMode's formulas (FLOPs / 2) for each kernel, charged to ``self.row``."""

    def __init__(self) -> None:
        super().__init__()
        self.row: str | None = None
        self.flops = 0
        self.by_row: dict[str | None, int] = {}
        self.forward_done = False  # forward kernels count in ``flops`` only

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            n = formula(*args, **kwargs, out_val=out)
            self.flops += n
            if self.forward_done:
                self.by_row[self.row] = self.by_row.get(self.row, 0) + n
        return out


def _tensors(value: Any) -> list[torch.Tensor]:
    flat, _ = tree_flatten(value)
    return [v for v in flat if isinstance(v, torch.Tensor)]


@dataclass
class _Walk:
    """What one forward + backward + step on meta saw."""

    rows: list  # the tracer's LayerRecords
    saved: dict[str | None, dict[int, int]]  # row -> storage -> bytes
    backward: dict[str | None, int]  # row -> backward FLOPs
    backward_flops: int
    forward_backward_peak: int  # tracked bytes (inputs, activations, grads, transients)
    step_peak: int
    static_bytes: int  # parameters + buffers + optimizer state, there before the step
    optimizer_bytes: int


def training_step(
    model: nn.Module,
    input_size: Sequence[int] | Sequence[Sequence[int]] | None = None,
    optimizer: Optimizer = "adamw",
    dtype: torch.dtype | str = "float32",
    *,
    inputs: Any = None,
) -> TrainingStep:
    """Trace one training step of ``model`` on the meta device: forward and backward MACs,
    saved tensors, gradients, optimizer state and the peak memory, per row and in total.

    The step is: forward in train mode, ``loss = sum of every output's sum``, backward, one
    ``optimizer.step()`` with the optimizer's state already allocated (a step of a running
    training loop, not the first). ``optimizer`` is ``"sgd"`` (no state),
    ``"sgd_momentum"`` (one buffer per parameter), ``"adam"`` or ``"adamw"`` (two).
    ``dtype`` is the dtype the model would train in (parameters and inputs). The walk runs
    twice, at the batch given and at twice that, to split the peak into a batch-constant and
    a batch-linear part (:meth:`TrainingStep.max_batch_size`).

    >>> import cnnviz
    >>> resnet18 = cnnviz.zoo.get_model("resnet18", device="meta")
    >>> s = cnnviz.training_step(resnet18, (8, 3, 64, 64))
    >>> s.forward_macs, s.backward_macs  # backward: grad of input and weight per conv, ~2x
    (1188462592, 2299854848)
    >>> s.fits(8 * 2**30), s.max_batch_size(8 * 2**30) > 8
    (True, True)
    """
    if not isinstance(model, nn.Module):
        raise AnalysisError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if optimizer not in STATE_BUFFERS:
        raise AnalysisError(
            f"optimizer must be one of {', '.join(map(repr, STATE_BUFFERS))}, got {optimizer!r}"
        )
    if not any(p.requires_grad for p in model.parameters()):
        raise AnalysisError("the model has no trainable parameters: nothing to train")
    dt = _an._dtype(dtype)
    if not dt.is_floating_point:
        raise AnalysisError(f"training needs a floating dtype, got {dt}")
    args, kwargs = _an._meta_inputs(input_size, inputs, dt)
    sizes = [tuple(t.shape) for t in _tensors((args, kwargs))]
    batch = sizes[0][0] if sizes and sizes[0] else 1
    w1 = _walk(model, args, kwargs, dt, optimizer)
    doubled = _double_batch(args, kwargs, batch)
    w2 = _walk(model, *doubled, dt, optimizer)
    linear = max(0, (w2.forward_backward_peak - w1.forward_backward_peak) // batch)
    fb1 = w1.static_bytes + w1.forward_backward_peak
    const = fb1 - batch * linear

    row_saved: dict[str | None, int] = {}
    seen: set[int] = set()
    for key, storages in w1.saved.items():
        fresh = {k: n for k, n in storages.items() if k not in seen}
        seen.update(fresh)
        row_saved[key] = sum(fresh.values())
    rows = tuple(
        LayerStep(
            r.name,
            r.type,
            r.macs,
            w1.backward.get(r.name, 0) // 2,
            row_saved.get(r.name, 0),
        )
        for r in w1.rows
    )
    params = dict(model.named_parameters())
    elem = torch.empty((), dtype=dt).element_size()

    def as_dt(p: torch.Tensor) -> int:
        return p.numel() * (elem if p.is_floating_point() else p.element_size())

    param_bytes = sum(as_dt(p) for p in params.values())
    grad_bytes = sum(as_dt(p) for p in params.values() if p.requires_grad)
    return TrainingStep(
        model_name=getattr(model, "zoo_name", None)
        or getattr(model, "spec_name", None)
        or type(model).__name__,
        input_shapes=tuple(sizes),
        batch_size=batch,
        dtype=str(dt).removeprefix("torch."),
        optimizer=optimizer,
        forward_macs=sum(r.macs for r in w1.rows),
        backward_macs=w1.backward_flops // 2,
        param_bytes=param_bytes,
        buffer_bytes=sum(as_dt(b) for b in model.buffers()),
        grad_bytes=grad_bytes,
        optimizer_bytes=w1.optimizer_bytes,
        saved_bytes=sum(row_saved.values()),
        peak_bytes=w1.static_bytes + max(w1.forward_backward_peak, w1.step_peak),
        step_peak_bytes=w1.static_bytes + w1.step_peak,
        batch_constant_bytes=const,
        batch_linear_bytes=linear,
        rows=rows,
    )


def _double_batch(args: tuple, kwargs: dict, batch: int) -> tuple[tuple, dict]:
    """The same inputs at twice the batch (dim 0 of every tensor with that batch)."""

    def grow(t: Any) -> Any:
        if isinstance(t, torch.Tensor) and t.dim() and t.shape[0] == batch:
            return torch.empty((2 * batch, *t.shape[1:]), dtype=t.dtype, device="meta")
        return t

    from torch.utils._pytree import tree_map

    return tuple(tree_map(grow, list(args))), tree_map(grow, kwargs)


def _walk(model: nn.Module, args: tuple, kwargs: dict, dt: torch.dtype, optimizer: str) -> _Walk:
    """One forward, backward and optimizer step on meta stand-ins, watched."""

    def stand_in(t: torch.Tensor, grad: bool) -> torch.Tensor:
        d = dt if t.is_floating_point() else t.dtype
        x = torch.empty(t.shape, dtype=d, device="meta")
        return nn.Parameter(x, requires_grad=grad) if grad else x

    params = {n: stand_in(p, p.requires_grad) for n, p in model.named_parameters()}
    frozen = {n: nn.Parameter(p.detach(), requires_grad=False) for n, p in params.items()}
    params = {n: (p if p.requires_grad else frozen[n]) for n, p in params.items()}
    buffers = {n: stand_in(b, False) for n, b in model.named_buffers()}
    trainable = [p for p in params.values() if p.requires_grad]
    opt = _make_optimizer(optimizer, trainable)
    # A running loop's optimizer already holds its state: allocate it before watching.
    for p in trainable:
        p.grad = torch.zeros_like(p)
    opt.step()
    opt.zero_grad(set_to_none=True)
    state = [t for s in opt.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
    opt_bytes = sum(t.untyped_storage().nbytes() for t in state if t.dim())
    static = sum(t.untyped_storage().nbytes() for t in (*params.values(), *buffers.values()))
    static += sum(t.untyped_storage().nbytes() for t in state)
    own = {storage_key(t) for t in (*params.values(), *buffers.values(), *state)}

    live = LiveStorage()
    live.ignore([*params.values(), *buffers.values(), *state])
    counter = _BackwardMacs()
    pending: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = storage_key(t)
        if key not in own:
            pending[key] = t.untyped_storage().nbytes()
        return t

    with live, counter:
        a2, k2 = _fresh(args, kwargs)  # made while watched: the inputs count
        tracer = _an._seed(model, a2, k2, tracer_type=_StepTracer)
        tracer.counter_b, tracer.pending = counter, pending
        tracer.user_tensors.update(id(t) for t in (*params.values(), *buffers.values()))
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = _an._run(model, tracer, a2, k2, "train", {**params, **buffers})
        outs = [o for o in _tensors(out) if o.requires_grad]
        if not outs:
            raise AnalysisError("no output of the model depends on a trainable parameter")
        fwd_flops = counter.flops
        counter.forward_done = True
        counter.row = None
        loss = sum(o.sum() for o in outs)
        del out, outs, a2, k2
        loss.backward()
        del loss
        fb_peak = live.peak
        live.reset_peak()
        opt.step()
        step_peak = live.peak
        opt.zero_grad(set_to_none=True)
    return _Walk(
        rows=tracer.rows,
        saved=tracer.saved,
        backward={k: v for k, v in counter.by_row.items()},
        backward_flops=counter.flops - fwd_flops,
        forward_backward_peak=fb_peak,
        step_peak=step_peak,
        static_bytes=static,
        optimizer_bytes=opt_bytes,
    )


def _fresh(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """New meta inputs of the same shapes, made while the walk watches (they count)."""
    from torch.utils._pytree import tree_map

    def new(t: Any) -> Any:
        if isinstance(t, torch.Tensor):
            return torch.empty(t.shape, dtype=t.dtype, device="meta")
        return t

    return tuple(tree_map(new, list(args))), tree_map(new, kwargs)


class _StepTracer(Tracer):
    """The analyze tracer, but every op also runs for real on meta so that autograd
    records the graph; saved tensors and backward nodes are charged to the op's row."""

    def __init__(self, model: nn.Module, spatial: tuple[int, ...], **options: Any) -> None:
        super().__init__(model, spatial, **options)
        self.pending: dict[int, int] = {}
        self.saved: dict[str | None, dict[int, int]] = {}
        self.nodes: set = set()
        self.counter_b: _BackwardMacs | None = None

    def _key(self, n_rows: int) -> str | None:
        if len(self.rows) > n_rows:
            return self.rows[-1].name
        frame = self.frames[-1] if self.frames else None
        if frame is not None and frame.draft is not None:
            return frame.draft.name
        return None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        n_rows = len(self.rows)
        self.pending.clear()
        value = super().__torch_function__(func, types, args, kwargs)
        if func in RULES:  # the rule only shaped an empty tensor: now run the op
            real = func(*args, **kwargs)
            fake_flat, real_flat = tree_flatten(value)[0], tree_flatten(real)[0]
            for f, r in zip(fake_flat, real_flat, strict=False):
                if isinstance(f, torch.Tensor) and isinstance(r, torch.Tensor) and f is not r:
                    for attr in ("_cv_flow", "_cv_alloc"):
                        v = getattr(f, attr, None)
                        if v is not None and id(r) not in self.user_tensors:
                            setattr(r, attr, v)
            value = real
        key = self._key(n_rows)
        if self.pending:
            self.saved.setdefault(key, {}).update(self.pending)
            self.pending.clear()
        self._claim_nodes(value, key)
        return value

    def _claim_nodes(self, value: Any, key: str | None) -> None:
        counter = self.counter_b
        stack = [t.grad_fn for t in _tensors(value) if t.grad_fn is not None]
        while stack:
            node = stack.pop()
            if node is None or node in self.nodes:
                continue
            self.nodes.add(node)

            def enter(grad_outputs, key=key):
                counter.row = key

            node.register_prehook(enter)
            stack.extend(n for n, _ in node.next_functions)
