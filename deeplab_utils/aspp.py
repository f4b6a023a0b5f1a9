"""Atrous Spatial Pyramid Pooling (DeepLabv3 paper, Sec. 3.3; DeepLabv3+ paper, Sec. 3.1).

Five parallel branches look at the same backbone features at different scales: a 1x1 conv, three
dilated 3x3 convs and image-level pooling. Their outputs are concatenated and projected back to
``out_channels`` by a 1x1 conv.

With ``separable=False`` the structure and submodule names are identical to
``torchvision.models.segmentation.deeplabv3.ASPP``, so state dicts load into each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .separable import SeparableConv2d, _check_bool, _check_positive_int

# Atrous rates of the three 3x3 branches, per output stride. DeepLabv3+ paper, Sec. 4.1 and
# DeepLabv3 paper, Sec. 3.3: (6, 12, 18) at output stride 16, doubled at output stride 8.
ASPP_RATES: dict[int, tuple[int, int, int]] = {16: (6, 12, 18), 8: (12, 24, 36)}


def aspp_rates(output_stride: int) -> tuple[int, int, int]:
    """The paper's ASPP atrous rates for an output stride of 8 or 16. Taught in notebook 02.

    Raises:
        ValueError: if ``output_stride`` is not 8 or 16.
    """
    if isinstance(output_stride, bool) or output_stride not in ASPP_RATES:
        raise ValueError(f"output_stride must be 8 or 16, got {output_stride!r}")
    return ASPP_RATES[output_stride]


def check_rates(
    rates: Any, name: str = "rates", allowed: str = "a non-empty sequence of positive ints"
) -> tuple[int, ...]:
    """``rates`` as a tuple of atrous rates, or a ValueError saying ``{name} must be {allowed}``."""
    if not (
        isinstance(rates, tuple | list)
        and rates
        and all(isinstance(r, int) and not isinstance(r, bool) and r >= 1 for r in rates)
    ):
        raise ValueError(f"{name} must be {allowed}, got {rates!r}")
    return tuple(rates)


PAPER_CROP_SIZE = 513  # the training crops the paper's rates were chosen for (DeepLabv3+, Sec. 4)


def scaled_aspp_rates(output_stride: int, image_size: int) -> tuple[int, int, int]:
    """The paper's ASPP rates scaled to the feature map of ``image_size`` training images.

    On a feature map smaller than the paper's (33 x 33, from 513-pixel crops at output stride
    16), a large rate samples mostly padding, and a 3 x 3 atrous filter whose rate nears the
    map's size degenerates to its centre weight (DeepLabv3, Sec. 3.3 and Fig. 4). Scaling each
    rate by ``image_size / 513`` keeps the branches' fields of view in proportion to the image.
    Rates never exceed the paper's and are at least 1. Taught in notebook 02.

    Raises:
        ValueError: if ``output_stride`` is not 8 or 16, or ``image_size`` is not a positive int.
    """
    rates = aspp_rates(output_stride)
    _check_positive_int("image_size", image_size)
    # The feature map's side is proportional to the image's at either output stride.
    scale = min(1.0, image_size / PAPER_CROP_SIZE)
    return tuple(max(1, round(r * scale)) for r in rates)  # type: ignore[return-value]


class ASPPConv(nn.Sequential):
    """One atrous branch of ASPP: 3x3 conv with dilation ``dilation`` -> BN -> ReLU.

    ``(B, in_channels, H, W)`` -> ``(B, out_channels, H, W)``. With ``separable=True`` the conv is
    a :class:`SeparableConv2d` (DeepLabv3+ paper, Sec. 3.1). Taught in notebook 02.
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
    """Image-level branch of ASPP: global average pool -> 1x1 conv -> BN -> ReLU -> upsample.

    ``(B, in_channels, H, W)`` -> ``(B, out_channels, H, W)``, the same vector at every pixel
    (DeepLabv3 paper, Sec. 3.3: "image-level features"). Taught in notebook 02.

    Unlike torchvision's, it also trains on a batch of one image: with ``B == 1`` the pooled map
    has one value per channel and no batch statistics (torchvision raises "Expected more than 1
    value per channel when training"), so BN then normalises with its running statistics and
    leaves them unchanged. Every other case matches torchvision exactly.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W)`` -> ``(B, C_out, H, W)``."""
        size = x.shape[-2:]
        pool, conv, bn, relu = self
        y = conv(pool(x))  # (B, C_out, 1, 1)
        if self.training and y.shape[0] == 1:
            y = F.batch_norm(
                y, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False, eps=bn.eps
            )
        else:
            y = bn(y)
        y = relu(y)
        return F.interpolate(y, size=size, mode="bilinear", align_corners=False)  # (B, C_out, H, W)


class ASPP(nn.Module):
    """Atrous Spatial Pyramid Pooling: 1x1 branch, one atrous branch per rate, image pooling.

    ``(B, in_channels, H, W)`` -> ``(B, out_channels, H, W)``. Taught in notebook 02.

    Trains with any batch size, one image included (see :class:`ASPPPooling`), as long as the
    feature map has more than one pixel: a single 1x1 map (an input of at most 16x16 pixels at
    output stride 16) leaves every branch's BN one value per channel, which PyTorch rejects.

    Args:
        in_channels: channels of the backbone features (2048 for ResNet-50).
        out_channels: channels of every branch and of the output; 256 in the paper (Sec. 3.3).
        rates: atrous rates of the 3x3 branches; see :func:`aspp_rates`.
        separable: use atrous separable convolutions in the 3x3 branches (DeepLabv3+, Sec. 3.1).
        dropout: dropout probability after the projection: 0.5 by default, as torchvision's
            ASPP (so its weights and outputs match); the paper's official TensorFlow code uses
            ``keep_prob=0.9``, i.e. 0.1, which :class:`~deeplab_utils.DeepLabV3Plus` adopts.
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
        _check_positive_int("in_channels", in_channels)
        _check_positive_int("out_channels", out_channels)
        rates = check_rates(tuple(rates))
        _check_bool("separable", separable)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.in_channels = in_channels
        branches: list[nn.Module] = [
            nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            )
        ]
        branches += [ASPPConv(in_channels, out_channels, r, separable=separable) for r in rates]
        branches.append(ASPPPooling(in_channels, out_channels))
        self.convs = nn.ModuleList(branches)
        self.project = nn.Sequential(
            nn.Conv2d(len(self.convs) * out_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W)`` -> ``(B, out_channels, H, W)``."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected input of shape (B, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )
        branches = [conv(x) for conv in self.convs]  # each (B, out_channels, H, W)
        x = torch.cat(branches, dim=1)  # (B, len(convs) * out_channels, H, W)
        return self.project(x)
