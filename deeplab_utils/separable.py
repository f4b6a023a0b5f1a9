"""Atrous depthwise separable convolution (DeepLabv3+ paper, Sec. 3.1, Fig. 3).

A 3x3 convolution from ``C_in`` to ``C_out`` channels costs ``C_in * C_out * 9`` multiply-adds per
pixel. Splitting it into a per-channel (depthwise) 3x3 convolution and a 1x1 (pointwise)
convolution costs ``C_in * 9 + C_in * C_out``: about 8-9 times fewer for 256 channels, with the
same receptive field when the depthwise part is dilated.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn


def _check_positive_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_bool(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")


class SeparableConv2d(nn.Sequential):
    """Atrous separable convolution: depthwise conv -> BN -> ReLU -> pointwise 1x1 conv.

    ``(B, in_channels, H, W)`` -> ``(B, out_channels, H, W)`` ("same" padding). The inner
    BN + ReLU follows the paper's official code (``_split_separable_conv2d``, which its ASPP and
    decoder use; Sec. 3.2 puts the same after every depthwise conv of its Xception). The BN +
    ReLU after the pointwise conv is left to the caller, so this is a drop-in replacement for
    ``nn.Conv2d(in_channels, out_channels, kernel_size, bias=False)``. Taught in notebook 02.

    Args:
        kernel_size: odd size of the depthwise kernel.
        dilation: atrous rate of the depthwise kernel.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, *, dilation: int = 1
    ) -> None:
        _check_positive_int("in_channels", in_channels)
        _check_positive_int("out_channels", out_channels)
        _check_positive_int("kernel_size", kernel_size)
        _check_positive_int("dilation", dilation)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (for 'same' padding), got {kernel_size}")
        # "Same" padding of a dilated kernel: its effective size is dilation * (k - 1) + 1.
        padding = dilation * (kernel_size - 1) // 2
        super().__init__(
            OrderedDict(
                depthwise=nn.Conv2d(
                    in_channels,
                    in_channels,
                    kernel_size,
                    padding=padding,
                    dilation=dilation,
                    groups=in_channels,
                    bias=False,
                ),
                bn=nn.BatchNorm2d(in_channels),
                relu=nn.ReLU(inplace=True),
                pointwise=nn.Conv2d(in_channels, out_channels, 1, bias=False),
            )
        )
