"""DeepLabv3+ decoder (DeepLabv3+ paper, Sec. 3.1, Fig. 2; design choices in Sec. 4.1).

The ASPP output at 1/16 of the input is coarse. The decoder upsamples it to 1/4 and fuses it with
low-level backbone features of that size, which carry sharp object boundaries.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .separable import SeparableConv2d, _check_bool, _check_positive_int

LOW_LEVEL_CHANNELS = 48  # paper, Table 1: reducing low-level features to 48 channels is best
DECODER_CHANNELS = 256  # paper, Table 2: two 3x3 convs with 256 filters refine best


def _conv_bn_relu(in_channels: int, out_channels: int, *, separable: bool) -> nn.Sequential:
    conv: nn.Module
    if separable:
        conv = SeparableConv2d(in_channels, out_channels, 3)
    else:
        conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class Decoder(nn.Module):
    """DeepLabv3+ decoder: reduce low-level features, upsample ASPP output, concat, refine.

    ``forward(aspp_out, low_level)`` takes ``(B, aspp_channels, H/16, W/16)`` (or ``H/8``) and
    ``(B, low_level_channels, H/4, W/4)`` and returns logits ``(B, num_classes, H/4, W/4)``.
    Taught in notebook 04.

    Args:
        low_level_channels: channels of the low-level features (256 for ResNet-50's layer1).
        aspp_channels: channels of the ASPP output (256).
        separable: use atrous separable convolutions in the two 3x3 convs (paper, Sec. 3.1).
    """

    def __init__(
        self,
        num_classes: int,
        *,
        low_level_channels: int = 256,
        aspp_channels: int = 256,
        separable: bool = False,
    ) -> None:
        super().__init__()
        _check_positive_int("num_classes", num_classes)
        _check_positive_int("low_level_channels", low_level_channels)
        _check_positive_int("aspp_channels", aspp_channels)
        _check_bool("separable", separable)
        self.low_level_channels = low_level_channels
        self.aspp_channels = aspp_channels
        # Few channels, so the many low-level channels do not outweigh the rich ASPP features.
        self.reduce = nn.Sequential(
            nn.Conv2d(low_level_channels, LOW_LEVEL_CHANNELS, 1, bias=False),
            nn.BatchNorm2d(LOW_LEVEL_CHANNELS),
            nn.ReLU(inplace=True),
        )
        self.refine = nn.Sequential(
            _conv_bn_relu(
                aspp_channels + LOW_LEVEL_CHANNELS, DECODER_CHANNELS, separable=separable
            ),
            _conv_bn_relu(DECODER_CHANNELS, DECODER_CHANNELS, separable=separable),
        )
        self.classifier = nn.Conv2d(DECODER_CHANNELS, num_classes, 1)

    def forward(self, aspp_out: torch.Tensor, low_level: torch.Tensor) -> torch.Tensor:
        """``(B, 256, h, w)``, ``(B, 256, H/4, W/4)`` -> ``(B, num_classes, H/4, W/4)``."""
        for name, t, channels in (
            ("aspp_out", aspp_out, self.aspp_channels),
            ("low_level", low_level, self.low_level_channels),
        ):
            if t.ndim != 4 or t.shape[1] != channels:
                raise ValueError(
                    f"expected {name} of shape (B, {channels}, H, W), got {tuple(t.shape)}"
                )
        low_level = self.reduce(low_level)  # (B, 48, H/4, W/4)
        # size=, not scale_factor=4: for odd inputs H/4 is not exactly 4 * H/16.
        x = F.interpolate(
            aspp_out, size=low_level.shape[-2:], mode="bilinear", align_corners=False
        )  # (B, 256, H/4, W/4)
        x = torch.cat([x, low_level], dim=1)  # (B, 256 + 48, H/4, W/4)
        x = self.refine(x)  # (B, 256, H/4, W/4)
        return self.classifier(x)  # (B, num_classes, H/4, W/4)
