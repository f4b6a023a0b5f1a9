"""Self-checks for notebook 01 (atrous convolution): the convolution and the receptive fields."""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ..atrous import atrous_conv2d, receptive_field, receptive_fields
from ._common import Hint, compare, exercise_check, fail, passed, run


class _Convolutions(TorchFunctionMode):
    """Records PyTorch's convolutions with a kernel wider than 1x1 (a 1x1 one only mixes channels,
    as each tap of notebook 01's sum does), under every name a learner can reach (torch.*, F.*,
    torch._*, torch.ops.aten.*, torch._C._nn.*; a transposed one with its kernel flipped is one
    too), and F.unfold and its kernel im2col, which place the dilated taps."""

    def __init__(self) -> None:
        super().__init__()
        self.called: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "").split(".")[0]  # aten.conv2d.default: conv2d
        convolution = "conv" in name and not name.startswith("_convert")  # those only reformat
        if func is F.unfold or name == "im2col" or convolution:
            kernel = args[1] if len(args) > 1 else kwargs.get("weight", kwargs.get("kernel_size"))
            if isinstance(kernel, torch.Tensor):  # a convolution's weight, (C_out, C_in, *kernel)
                kernel = kernel.shape[2:]
            if name == "conv_tbc" or kernel is None:  # (kernel, C_in, C_out), or not found
                kernel = (2,)
            if torch.Size(kernel if isinstance(kernel, tuple | list) else (kernel,)).numel() > 1:
                self.called.append("F.unfold" if func is F.unfold else f"torch.{name}")
        return func(*args, **kwargs)


_SHAPE_HINT = Hint(
    "which output rows i keep every tap inside the padded input? Follow the last tap of the "
    "last row, then do the same for the columns with the kernel's own width (a kernel need not "
    "be square).",
    "a dilated kernel reaches dilation*(k - 1) pixels past its first tap: an output row exists "
    "for every padded input row that leaves room for that reach below it, and likewise for the "
    "columns, each dimension with its own k.",
)
_VALUE_HINT = Hint(
    "read the formula tap by tap: for a fixed (m, n), which window of the padded input does it "
    "read, and which of the weights mix that window's channels? The output is the sum over the "
    "taps, plus one bias per output channel.",
    "each window is as large as the output and starts dilation times the tap's index in, in "
    "each direction; try your function and F.conv2d on a one-channel input with a kernel that "
    "is 1 at a single tap, tap after tap, to see which window each should read.",
)


@exercise_check(atrous_conv2d)
def check_atrous_conv2d(fn: Callable[..., torch.Tensor]) -> None:
    """``fn(x, weight, bias=None, dilation=1, padding=0)`` against ``F.conv2d``, from scratch."""
    cases = [
        # (name, batch, c_in, c_out, size, (kH, kW), dilation, padding, bias)
        ("plain 3x3, rate 1, same padding", 2, 3, 4, (9, 9), (3, 3), 1, 1, True),
        ("rate 2, same padding, odd size 13x17", 2, 3, 4, (13, 17), (3, 3), 2, 2, True),
        ("rate 3, no padding, batch 1", 1, 2, 5, (15, 11), (3, 3), 3, 0, False),
        ("rate 2, padding 1 (not 'same')", 1, 3, 2, (10, 12), (3, 3), 2, 1, True),
        ("1x1 kernel, rate 3", 2, 4, 3, (7, 8), (1, 1), 3, 0, True),
        ("non-square 3x5 kernel, rate 2, padding 2", 2, 3, 4, (12, 14), (3, 5), 2, 2, True),
        ("non-square 1x3 kernel, rate 3, no padding", 1, 2, 3, (9, 13), (1, 3), 3, 0, False),
    ]
    for name, b, c_in, c_out, size, kernel, d, p, use_bias in cases:
        x = torch.randn(b, c_in, *size)
        w = torch.randn(c_out, c_in, *kernel)
        bias = torch.randn(c_out) if use_bias else None
        with _Convolutions() as convolutions:
            got = run(name, fn, x, w, bias, dilation=d, padding=p)
        if convolutions.called:
            message = f"your code calls {convolutions.called[0]}, PyTorch's own convolution (or "
            message += "its im2col, which places the dilated taps for you); write it from scratch"
            raise fail(name, message, _VALUE_HINT)
        expected = F.conv2d(x, w, bias, padding=p, dilation=d)
        compare(name, got, expected, hint=_VALUE_HINT, shape_hint=_SHAPE_HINT, atol=1e-4)
    passed(len(cases), "your atrous convolution equals F.conv2d(..., dilation=r).")


@exercise_check(receptive_fields, also_watch=(receptive_field,))
def check_receptive_fields(fn: Callable[[list[tuple[int, int, int]]], list[int]]) -> None:
    """``fn([(kernel, stride, dilation), ...])``: the receptive field after each layer."""
    cases = [
        ("one 3x3 conv", [(3, 1, 1)]),
        ("three 3x3 convs, rate 1", [(3, 1, 1)] * 3),
        ("rates 1, 2, 4", [(3, 1, 1), (3, 1, 2), (3, 1, 4)]),
        ("a stride-2 layer first", [(3, 2, 1), (3, 1, 1)]),
        ("ResNet stem: 7x7/2 then 3x3/2 pool", [(7, 2, 1), (3, 2, 1)]),
        ("stride then dilation", [(3, 2, 1), (3, 1, 2), (1, 1, 1)]),
        ("two strides, then rate 3 and a 5x5", [(3, 2, 1), (3, 2, 1), (3, 1, 3), (5, 1, 1)]),
    ]
    hint = Hint(
        "two numbers describe where a layer stands on the image: how many pixels its input "
        "already sees, and how many pixels apart its input's neighbours are. How does each "
        "layer change them, and in which order do its kernel and its stride act?",
        "a layer's kernel covers dilation*(kernel - 1) + 1 neighbouring positions of its input, "
        "each step between them worth as many image pixels as the strides *before* the layer "
        "multiply to (its own stride only spaces out the next layer's input): how many pixels "
        "does the layer add to what its input already sees?",
    )
    for name, layers in cases:
        got = run(name, fn, list(layers))
        try:
            got = [int(v) for v in got]
        except (TypeError, ValueError):
            message = f"expected a list of {len(layers)} ints (one receptive field per layer)"
            raise fail(name, f"{message}, got {got!r}") from None
        if got != (expected := receptive_fields(layers)):
            raise fail(name, f"{layers}: expected {expected}, got {got}", hint)
    passed(len(cases), "your recurrence matches the measured receptive fields.")
