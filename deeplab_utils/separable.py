"""Atrous depthwise separable convolution (DeepLabv3+ paper, Sec. 3.1, Fig. 3)."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn


class SeparableConv2d(nn.Sequential):
    """Atrous separable convolution: depthwise conv -> BN -> ReLU -> pointwise 1x1 conv.

    ``(B, in_channels, H, W)`` -> ``(B, out_channels, H, W)`` ("same" padding), for
    ``C_in * k^2 + C_in * C_out`` multiply-adds per pixel instead of ``C_in * C_out * k^2``: 8-9
    times fewer at 256 channels, with the same receptive field. The inner BN + ReLU is the
    official code's (``_split_separable_conv2d``); the outer ones are the caller's, as after
    ``nn.Conv2d(in_channels, out_channels, kernel_size, bias=False)``. Taught in notebook 02.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, *, dilation: int = 1
    ) -> None:
        if kernel_size % 2 == 0:  # no "same" padding: the output would shrink by a pixel
            raise ValueError(f"kernel_size must be odd (for 'same' padding), got {kernel_size}")
        # "Same" padding of a dilated kernel: its effective size is dilation * (k - 1) + 1.
        padding = dilation * (kernel_size - 1) // 2
        depthwise = nn.Conv2d(
            in_channels, in_channels, kernel_size, padding=padding, dilation=dilation,
            groups=in_channels, bias=False,
        )  # fmt: skip
        super().__init__(
            OrderedDict(
                depthwise=depthwise,
                bn=nn.BatchNorm2d(in_channels),
                relu=nn.ReLU(inplace=True),
                pointwise=nn.Conv2d(in_channels, out_channels, 1, bias=False),
            )
        )
