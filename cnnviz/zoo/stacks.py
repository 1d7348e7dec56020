"""Stacks of small convolutions: the VGG argument in one call.

Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition"
(ICLR 2015), Section 2.3: n stacked k x k convs (stride 1) see the same
K = n(k - 1) + 1 window as one K x K conv, with n k^2 C^2 instead of K^2 C^2 weights and n
ReLUs instead of one. Two 3x3 vs one 5x5: 18 C^2 vs 25 C^2; three 3x3 vs one 7x7: 27 C^2 vs
49 C^2.

``conv_stack`` builds the real modules; :func:`cnnviz.labs.rf_lab` analyzes a stack beside
its single big kernel.
"""

from __future__ import annotations

from torch import nn

from .registry import Option, ZooError, register_model, resolve_options

PAPER = "Simonyan & Zisserman 2015, Very Deep Convolutional Networks (Sec. 2.3)"

STACK_OPTIONS = {
    "n": Option(2, int, "number of convs", check=lambda v: v >= 1, constraint="int >= 1"),
    "kernel_size": Option(
        3,
        int,
        "kernel size of every conv",
        check=lambda v: v >= 1 and v % 2 == 1,
        constraint="odd int >= 1",
    ),
    "channels": Option(
        64,
        int,
        "channels of every conv (in and out)",
        check=lambda v: v >= 1,
        constraint="int >= 1",
    ),
    "stride": Option(1, int, "stride of every conv", check=lambda v: v >= 1, constraint="int >= 1"),
    "dilation": Option(
        1, int, "dilation of every conv", check=lambda v: v >= 1, constraint="int >= 1"
    ),
    "activation": Option(True, bool, "a ReLU after every conv (the VGG habit)"),
}


class ConvStack(nn.Sequential):
    """An ``nn.Sequential`` of convs (each optionally followed by a ReLU) that can count itself.

    The counts are computed from the children, so slicing (``stack[:2]``) stays correct.
    """

    @property
    def num_convs(self) -> int:
        return sum(isinstance(m, nn.Conv2d) for m in self)

    @property
    def num_nonlinearities(self) -> int:
        """How many ReLUs: ``n`` with ``activation=True`` (one after each conv), else 0."""
        return sum(isinstance(m, nn.ReLU) for m in self)

    @property
    def receptive_field(self) -> int:
        """Side of the input window one output pixel sees: 1 + sum (k - 1) * d * jump."""
        rf, jump = 1, 1
        for m in self:
            if isinstance(m, nn.Conv2d):
                rf += (m.kernel_size[0] - 1) * m.dilation[0] * jump
                jump *= m.stride[0]
        return rf


def conv_stack(
    n: int,
    kernel_size: int = 3,
    channels: int = 64,
    in_channels: int | None = None,
    stride: int = 1,
    dilation: int = 1,
    activation: bool = True,
    bias: bool = False,
) -> ConvStack:
    """``n`` k x k convs, each with ``stride``/``dilation`` and "same" padding
    ``dilation * (k - 1) // 2``, and a ReLU after each conv when ``activation`` (VGG's habit,
    so ``n`` non-linearities; see ``ConvStack.num_nonlinearities``).

    Seed idea (Simonyan & Zisserman 2015, Sec. 2.3): stacked small kernels cover a big kernel's
    window with fewer weights and more non-linearities. The first conv takes ``in_channels``
    (default ``channels``). Children are named "0", "1", ... like any ``nn.Sequential``.
    """
    config = {
        "n": n,
        "kernel_size": kernel_size,
        "channels": channels,
        "stride": stride,
        "dilation": dilation,
        "activation": activation,
    }
    resolve_options("conv_stack", STACK_OPTIONS, config)  # same checks as get_model
    if in_channels is not None and (isinstance(in_channels, bool) or in_channels < 1):
        raise ZooError(f"conv_stack: bad in_channels {in_channels!r}; valid values: int >= 1")
    padding = dilation * (kernel_size - 1) // 2
    layers: list[nn.Module] = []
    c_in = channels if in_channels is None else in_channels
    for _ in range(n):
        layers.append(
            nn.Conv2d(c_in, channels, kernel_size, stride, padding, dilation=dilation, bias=bias)
        )
        if activation:
            layers.append(nn.ReLU(inplace=True))
        c_in = channels
    return ConvStack(*layers)


register_model(
    "conv_stack",
    family="stack",
    input_size=lambda cfg: (1, cfg["channels"], 32, 32),
    options=STACK_OPTIONS,
    paper=PAPER,
)(conv_stack)
