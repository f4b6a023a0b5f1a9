"""Atrous Spatial Pyramid Pooling (DeepLabv3 paper, Sec. 3.3; DeepLabv3+ paper, Sec. 3.1)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .separable import SeparableConv2d

# Atrous rates of the three 3x3 branches, per output stride. DeepLabv3+ paper, Sec. 4.1 and
# DeepLabv3 paper, Sec. 3.3: (6, 12, 18) at output stride 16, doubled at output stride 8.
ASPP_RATES: dict[int, tuple[int, int, int]] = {16: (6, 12, 18), 8: (12, 24, 36)}
PAPER_CROP_SIZE = 513  # the training crops the paper's rates were chosen for (DeepLabv3+, Sec. 4)


def aspp_rates(output_stride: int) -> tuple[int, int, int]:
    """The paper's ASPP atrous rates for an output stride of 8 or 16. Taught in notebook 02."""
    if isinstance(output_stride, bool) or output_stride not in ASPP_RATES:
        raise ValueError(f"output_stride must be 8 or 16, got {output_stride!r}")
    return ASPP_RATES[output_stride]


def check_rates(
    rates: object,
    name: str = "rates",
    allowed: str = "a non-empty sequence of positive ints",
    length: int | None = None,
) -> tuple[int, ...]:
    """``rates`` as a tuple, or a ValueError ``{name} must be {allowed}``: the one check of atrous
    rates, for configurations and the CLI."""
    positive = isinstance(rates, tuple | list) and all(type(r) is int and r >= 1 for r in rates)
    if not positive or not rates or (length is not None and len(rates) != length):
        raise ValueError(f"{name} must be {allowed}, got {rates!r}")
    return tuple(rates)


def scaled_aspp_rates(output_stride: int, image_size: int) -> tuple[int, int, int]:
    """The paper's ASPP rates scaled by ``image_size / 513``, at least 1 and at most the paper's.

    On a map smaller than the paper's (33 x 33 at output stride 16), a large rate samples mostly
    padding, and a 3 x 3 filter whose rate nears the map's size degenerates to its centre weight
    (DeepLabv3, Sec. 3.3, Fig. 4); scaled rates keep the view in proportion. Taught in notebook 02.
    """
    rates = aspp_rates(output_stride)
    scale = min(1.0, image_size / PAPER_CROP_SIZE)
    return tuple(max(1, round(r * scale)) for r in rates)  # type: ignore[return-value]


def _conv1x1_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """1x1 conv -> BN -> ReLU: how ASPP and the decoder mix and reduce channels."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ASPPConv(nn.Sequential):
    """3x3 conv at rate ``dilation`` (a :class:`SeparableConv2d` if ``separable``) -> BN -> ReLU,
    ``(B, in_channels, H, W)`` -> ``(B, out_channels, H, W)``: an atrous branch of ASPP and, at
    rate 1, the decoder's refining unit, as in the paper's official code. Taught in notebook 02.
    """

    def __init__(
        self, in_channels: int, out_channels: int, dilation: int, *, separable: bool = False
    ) -> None:
        conv: nn.Module
        if separable:
            conv = SeparableConv2d(in_channels, out_channels, 3, dilation=dilation)
        else:
            conv = nn.Conv2d(
                in_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False
            )
        super().__init__(conv, nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class ASPPPooling(nn.Sequential):
    """Image-level branch of ASPP (DeepLabv3, Sec. 3.3): global average pool -> 1x1 conv -> BN ->
    ReLU -> upsample, one vector at every pixel. It is torchvision's, except that it trains on one
    image too, whose pooled map has no batch statistics: BN then uses and keeps its running
    statistics. Taught in notebook 02.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), *_conv1x1_bn_relu(in_channels, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W)`` -> ``(B, out_channels, H, W)``."""
        pool, conv, bn, relu = self
        y = conv(pool(x))  # (B, C_out, 1, 1)
        if self.training and y.shape[0] == 1:
            y = F.batch_norm(
                y, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False, eps=bn.eps
            )
        else:
            y = bn(y)
        return F.interpolate(relu(y), size=x.shape[-2:], mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """ASPP: a 1x1 branch, one atrous branch per rate and image pooling, concatenated and
    projected by a 1x1 conv. Without ``separable``, torchvision's ``ASPP`` (same names, and its
    dropout, 0.5, where the paper's code has 0.1). It trains on one image (:class:`ASPPPooling`)
    unless the feature map is 1x1. Taught in notebook 02.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 256,
        rates: Sequence[int] = (6, 12, 18),
        separable: bool = False,
        *,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        one_by_one = _conv1x1_bn_relu(in_channels, out_channels)
        atrous = [ASPPConv(in_channels, out_channels, r, separable=separable) for r in rates]
        self.convs = nn.ModuleList([one_by_one, *atrous, ASPPPooling(in_channels, out_channels)])
        projection = _conv1x1_bn_relu(len(self.convs) * out_channels, out_channels)
        self.project = nn.Sequential(*projection, nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W)`` -> ``(B, out_channels, H, W)``."""
        branches = [conv(x) for conv in self.convs]  # each (B, out_channels, H, W)
        x = torch.cat(branches, dim=1)  # (B, len(convs) * out_channels, H, W)
        return self.project(x)
