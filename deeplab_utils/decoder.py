"""DeepLabv3+ decoder (DeepLabv3+ paper, Sec. 3.1, Fig. 2; design choices in Sec. 4.1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .aspp import ASPPConv, _conv1x1_bn_relu

LOW_LEVEL_CHANNELS = 48  # paper, Table 1: reducing low-level features to 48 channels is best
DECODER_CHANNELS = 256  # paper, Table 2: two 3x3 convs with 256 filters refine best


class Decoder(nn.Module):
    """DeepLabv3+ decoder: reduce low-level features, upsample ASPP output, concat, refine.

    The coarse ASPP output is upsampled to 1/4 of the input and fused with the backbone's
    features of that size, which carry sharp object boundaries. Taught in notebook 04.
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
        # Few channels, so the many low-level channels do not outweigh the rich ASPP features.
        self.reduce = _conv1x1_bn_relu(low_level_channels, LOW_LEVEL_CHANNELS)
        fused = aspp_channels + LOW_LEVEL_CHANNELS
        self.refine = nn.Sequential(  # two 3x3 conv-BN-ReLU units at rate 1
            ASPPConv(fused, DECODER_CHANNELS, 1, separable=separable),
            ASPPConv(DECODER_CHANNELS, DECODER_CHANNELS, 1, separable=separable),
        )
        self.classifier = nn.Conv2d(DECODER_CHANNELS, num_classes, 1)

    def forward(self, aspp_out: torch.Tensor, low_level: torch.Tensor) -> torch.Tensor:
        """``(B, aspp_channels, H/OS, W/OS)``, ``(B, low_level_channels, H/4, W/4)`` -> logits
        ``(B, num_classes, H/4, W/4)``."""
        low_level = self.reduce(low_level)  # (B, 48, H/4, W/4)
        # size=, not scale_factor=4: for odd inputs H/4 is not exactly 4 * H/16.
        x = F.interpolate(aspp_out, size=low_level.shape[-2:], mode="bilinear", align_corners=False)
        x = torch.cat([x, low_level], dim=1)  # (B, 256 + 48, H/4, W/4)
        x = self.refine(x)  # (B, 256, H/4, W/4)
        return self.classifier(x)  # (B, num_classes, H/4, W/4)
