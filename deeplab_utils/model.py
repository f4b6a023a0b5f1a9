"""The assembled networks: DeepLabV3 (arXiv 1706.05587) and DeepLabV3+ (arXiv 1802.02611)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .aspp import ASPP, ASPP_RATES, check_rates
from .backbone import RESNET50_LAYERS, ResNet50Backbone
from .decoder import Decoder

ASPP_CHANNELS = 256  # DeepLabv3 paper, Sec. 3.3: every ASPP branch has 256 filters
# Dropout after ASPP's projection. DeepLabV3 keeps torchvision's 0.5 (its weights load here);
# DeepLabV3Plus follows the paper's official TensorFlow code (``keep_prob=0.9``).
PLUS_ASPP_DROPOUT = 0.1


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model, stored in checkpoints and checked once, here: a bad
    field raises a ValueError naming it and its value. Taught in notebook 04."""

    num_classes: int  # classes predicted per pixel, background included
    output_stride: Literal[8, 16] = 16  # input size / backbone output size (paper, Sec. 3.1)
    separable: bool = False  # atrous separable convs in ASPP and decoder (paper, Sec. 3.1)
    decoder: bool = True  # False: DeepLabV3, which upsamples ASPP logits without a decoder
    # Atrous rates of ASPP's 3x3 branches; None: the paper's for the output stride (aspp_rates).
    # For small images see scaled_aspp_rates (the main job's default).
    aspp_rates: tuple[int, ...] | None = None
    # Unit rates of layer4's three blocks (DeepLabv3, Sec. 3.2: (1, 2, 4) gives rates 2, 4, 8 at
    # output stride 16); None (also older checkpoints'): one rate for the stage, as torchvision.
    multi_grid: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        classes = self.num_classes
        if not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {classes!r}")
        if isinstance(self.output_stride, bool) or self.output_stride not in (8, 16):
            raise ValueError(f"output_stride must be 8 or 16, got {self.output_stride!r}")
        for name in ("separable", "decoder"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.separable and not self.decoder:
            raise ValueError("separable=True needs decoder=True (DeepLabV3Plus), got decoder=False")
        # Lists (read from JSON) become tuples.
        if self.aspp_rates is not None:
            allowed = "None or a non-empty tuple of positive ints"
            rates = check_rates(self.aspp_rates, "aspp_rates", allowed)
            object.__setattr__(self, "aspp_rates", rates)
        if self.multi_grid is not None:
            blocks = RESNET50_LAYERS[-1]
            allowed = f"None or {blocks} positive ints (one unit rate per block of layer4)"
            grid = check_rates(self.multi_grid, "multi_grid", allowed, blocks)
            object.__setattr__(self, "multi_grid", grid)


def build_model(config: ModelConfig, *, zero_init_residual: bool = False) -> nn.Module:
    """The model ``config`` describes, freshly initialised; ``zero_init_residual`` only changes
    the initial weights (see :class:`ResNet50Backbone`). Taught in notebook 04."""
    settings = asdict(config)  # the constructors' arguments, and ``decoder`` to pick one
    if settings.pop("decoder"):
        return DeepLabV3Plus(**settings, zero_init_residual=zero_init_residual)
    del settings["separable"]  # False: ModelConfig allows it only with the decoder
    return DeepLabV3(**settings, zero_init_residual=zero_init_residual)


def _check_image_batch(x: torch.Tensor) -> None:
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected input of shape (B, 3, H, W), got {tuple(x.shape)}")


class _DeepLab(nn.Module):
    """What both networks share: their :class:`ModelConfig` and the backbone it describes."""

    def __init__(self, config: ModelConfig, zero_init_residual: bool) -> None:
        super().__init__()
        self.config = config
        self.backbone = ResNet50Backbone(
            output_stride=config.output_stride,
            multi_grid=config.multi_grid,
            zero_init_residual=zero_init_residual,
        )


class DeepLabV3(_DeepLab):
    """DeepLabv3: ResNet-50 with atrous convolution, ASPP, and a 3x3 + 1x1 head.

    Torchvision's ``deeplabv3_resnet50`` without its auxiliary head (:meth:`from_torchvision`),
    whose head has a 3x3 conv + BN + ReLU that the paper's lacks (DeepLabv3, Sec. 3.3). Keyword
    arguments: see :class:`ModelConfig` and :class:`ResNet50Backbone`. Taught in notebook 04.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        output_stride: int = 16,
        aspp_rates: tuple[int, ...] | None = None,
        multi_grid: tuple[int, ...] | None = None,
        zero_init_residual: bool = False,
    ) -> None:
        config = ModelConfig(
            num_classes, output_stride, decoder=False, aspp_rates=aspp_rates, multi_grid=multi_grid
        )
        super().__init__(config, zero_init_residual)
        rates = aspp_rates or ASPP_RATES[output_stride]
        self.classifier = nn.Sequential(
            ASPP(self.backbone.out_channels, ASPP_CHANNELS, rates),
            nn.Conv2d(ASPP_CHANNELS, ASPP_CHANNELS, 3, padding=1, bias=False),
            nn.BatchNorm2d(ASPP_CHANNELS),
            nn.ReLU(inplace=True),
            nn.Conv2d(ASPP_CHANNELS, num_classes, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` -> logits ``(B, num_classes, H, W)``."""
        _check_image_batch(x)
        features = self.backbone(x)["out"]  # (B, 2048, H/OS, W/OS)
        logits = self.classifier(features)  # (B, num_classes, H/OS, W/OS)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)

    @classmethod
    def from_torchvision(cls, model: nn.Module) -> DeepLabV3:
        """A copy of a torchvision ``deeplabv3_resnet50``: its classes, output stride (8 from
        torchvision's factory), ASPP rates and weights. Its auxiliary classifier is left out: it
        only adds a training loss on layer3. Taught in notebook 04."""
        # A stage dilated instead of strided has stride 1 on its first 3x3 conv.
        output_stride = 8 if model.backbone.layer3[0].conv2.stride == (1, 1) else 16
        rates = tuple(branch[0].dilation[0] for branch in model.classifier[0].convs[1:-1])
        ours = cls(
            model.classifier[-1].out_channels,
            output_stride=output_stride,
            aspp_rates=None if rates == ASPP_RATES[output_stride] else rates,
        )
        state = {k: v for k, v in model.state_dict().items() if not k.startswith("aux_classifier.")}
        ours.load_state_dict(state)  # strict: another backbone's weights are refused by name
        return ours


class DeepLabV3Plus(_DeepLab):
    """DeepLabv3+: ResNet-50 backbone, ASPP, and the decoder of Sec. 3.1.

    Any image size and batch size, one image in train mode included (see :class:`ASPP`). Keyword
    arguments: see :class:`ModelConfig` and :class:`ResNet50Backbone`. Taught in notebook 04.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        output_stride: int = 16,
        separable: bool = False,
        aspp_rates: tuple[int, ...] | None = None,
        multi_grid: tuple[int, ...] | None = None,
        zero_init_residual: bool = False,
    ) -> None:
        config = ModelConfig(
            num_classes, output_stride, separable, aspp_rates=aspp_rates, multi_grid=multi_grid
        )
        super().__init__(config, zero_init_residual)
        channels, rates = self.backbone.out_channels, aspp_rates or ASPP_RATES[output_stride]
        self.aspp = ASPP(channels, ASPP_CHANNELS, rates, separable, dropout=PLUS_ASPP_DROPOUT)
        self.decoder = Decoder(
            num_classes,
            low_level_channels=self.backbone.low_level_channels,
            aspp_channels=ASPP_CHANNELS,
            separable=separable,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` -> logits ``(B, num_classes, H, W)``."""
        _check_image_batch(x)
        features = self.backbone(x)
        aspp_out = self.aspp(features["out"])  # (B, 256, H/OS, W/OS)
        logits = self.decoder(aspp_out, features["low_level"])  # (B, num_classes, H/4, W/4)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


# The name the course's first draft used; kept so old notebooks keep working.
Deeplabv3Plus = DeepLabV3Plus
