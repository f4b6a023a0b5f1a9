"""Self-checks for notebook 01 (atrous convolution): the convolution and the receptive field."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._common import CheckFailed, _compare, _passed, _run


def check_atrous_conv2d(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``fn(x, weight, bias=None, dilation=1, padding=0)`` against ``F.conv2d``.

    Cases: rates 1, 2 and 3, odd spatial sizes, batch 1 and 2, 1x1 and 3x3 kernels,
    with and without bias, with "same" padding and with none.
    """
    import torch.nn.functional as F

    check = "check_atrous_conv2d"
    gen = torch.Generator().manual_seed(0)
    cases = [
        # (name, batch, c_in, c_out, size, kernel, dilation, padding, bias)
        ("plain 3x3, rate 1, same padding", 2, 3, 4, (9, 9), 3, 1, 1, True),
        ("rate 2, same padding, odd size 13x17", 2, 3, 4, (13, 17), 3, 2, 2, True),
        ("rate 3, no padding, batch 1", 1, 2, 5, (15, 11), 3, 3, 0, False),
        ("rate 2, padding 1 (not 'same')", 1, 3, 2, (10, 12), 3, 2, 1, True),
        ("1x1 kernel, rate 3", 2, 4, 3, (7, 8), 1, 3, 0, True),
    ]
    hints = {
        "shape": "output size is H + 2*padding - dilation*(k - 1); did you pad, and space the "
        "taps `dilation` pixels apart?",
        "values": "each tap (m, n) should read the input at (i + m*dilation, j + n*dilation) of "
        "the padded input.",
    }
    for name, b, c_in, c_out, size, k, d, p, use_bias in cases:
        x = torch.randn(b, c_in, *size, generator=gen)
        w = torch.randn(c_out, c_in, k, k, generator=gen)
        bias = torch.randn(c_out, generator=gen) if use_bias else None
        expected = F.conv2d(x, w, bias, padding=p, dilation=d)
        got = _run(check, name, fn, x, w, bias, dilation=d, padding=p)
        hint = hints["shape"] if getattr(got, "shape", None) != expected.shape else hints["values"]
        _compare(check, name, got, expected, hint=hint, atol=1e-4)
    _passed(check, len(cases), "your atrous convolution equals F.conv2d(..., dilation=r).")


def check_receptive_field(fn: Callable[[list[tuple[int, int, int]]], int]) -> None:
    """Check ``fn(layers) -> int`` (layers = [(kernel, stride, dilation), ...]).

    The expected values come from back-propagating one output pixel through convolutions of
    ones and measuring which input pixels get a gradient: an independent oracle.
    """
    import torch.nn.functional as F

    check = "check_receptive_field"
    cases = [
        ("one 3x3 conv", [(3, 1, 1)]),
        ("three 3x3 convs, rate 1", [(3, 1, 1)] * 3),
        ("rates 1, 2, 4", [(3, 1, 1), (3, 1, 2), (3, 1, 4)]),
        ("a stride-2 layer first", [(3, 2, 1), (3, 1, 1)]),
        ("ResNet stem: 7x7/2 then 3x3/2 pool", [(7, 2, 1), (3, 2, 1)]),
        ("stride then dilation", [(3, 2, 1), (3, 1, 2), (1, 1, 1)]),
    ]
    for name, layers in cases:
        x = torch.zeros(1, 1, 96, 96, requires_grad=True)
        y = x
        for k, s, d in layers:
            y = F.conv2d(y, torch.ones(1, 1, k, k), stride=s, dilation=d)
        y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
        rows = x.grad[0, 0].abs().sum(dim=1).nonzero()
        expected = int(rows.max() - rows.min() + 1)
        got = _run(check, name, fn, layers)
        if got != expected:
            raise CheckFailed(
                f"{check}: case '{name}' {layers}: expected {expected}, got {got!r}. Hint: a "
                "layer adds dilation*(kernel - 1)*J, where J is the product of the strides "
                "of the layers before it (not including its own)."
            )
    _passed(check, len(cases), "your recurrence matches the measured receptive fields.")
