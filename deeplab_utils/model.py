"""The assembled networks: DeepLabV3 (arXiv 1706.05587) and DeepLabV3+ (arXiv 1802.02611).

``DeepLabV3`` is the same network as torchvision's ``deeplabv3_resnet50`` (without the auxiliary
head) and loads its weights; ``DeepLabV3Plus`` adds the decoder of the DeepLabv3+ paper.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .aspp import ASPP, aspp_rates, check_rates
from .backbone import ResNet50Backbone, check_multi_grid
from .decoder import Decoder
from .separable import _check_bool, _check_positive_int

ASPP_CHANNELS = 256  # DeepLabv3 paper, Sec. 3.3: every ASPP branch has 256 filters
# Dropout after ASPP's projection. DeepLabV3 keeps torchvision's 0.5 (its weights load here);
# DeepLabV3Plus follows the paper's official TensorFlow code (``keep_prob=0.9``).
PLUS_ASPP_DROPOUT = 0.1


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model; stored in checkpoints. Taught in notebook 04.

    Raises:
        ValueError: naming the bad field and value.
    """

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
        _check_positive_int("num_classes", self.num_classes)
        if isinstance(self.output_stride, bool) or self.output_stride not in (8, 16):
            raise ValueError(f"output_stride must be 8 or 16, got {self.output_stride!r}")
        _check_bool("separable", self.separable)
        _check_bool("decoder", self.decoder)
        if self.separable and not self.decoder:
            raise ValueError(
                "separable=True is only available with decoder=True (DeepLabV3Plus); "
                "got decoder=False"
            )
        if self.aspp_rates is not None:
            rates = check_rates(
                self.aspp_rates, "aspp_rates", "None or a non-empty tuple of positive ints"
            )
            object.__setattr__(self, "aspp_rates", rates)  # a list from JSON -> tuple
        object.__setattr__(self, "multi_grid", check_multi_grid(self.multi_grid))


def _rates(config: ModelConfig) -> tuple[int, ...]:
    return config.aspp_rates if config.aspp_rates is not None else aspp_rates(config.output_stride)


def build_model(config: ModelConfig, *, zero_init_residual: bool = False) -> nn.Module:
    """Build the model a :class:`ModelConfig` describes, freshly initialised.

    ``zero_init_residual`` is passed to the backbone (see :class:`ResNet50Backbone`): it only
    changes the initial weights, so it is not part of the config. Taught in notebook 04.

    Raises:
        TypeError: if ``config`` is not a ModelConfig.
    """
    if not isinstance(config, ModelConfig):
        raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
    common: dict[str, Any] = {
        "output_stride": config.output_stride,
        "aspp_rates": config.aspp_rates,
        "multi_grid": config.multi_grid,
        "zero_init_residual": zero_init_residual,
    }
    if config.decoder:
        return DeepLabV3Plus(config.num_classes, separable=config.separable, **common)
    return DeepLabV3(config.num_classes, **common)


def _check_image_batch(x: Any) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor of shape (B, 3, H, W), got {type(x).__name__}")
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

    ``(B, 3, H, W)`` -> logits ``(B, num_classes, H, W)`` (bilinear upsampling of the head's
    output by the output stride). The head is torchvision's ``DeepLabHead``, so weights load from
    torchvision with :meth:`from_torchvision`; unlike the paper's (DeepLabv3, Sec. 3.3), it has a
    3x3 conv + BN + ReLU between ASPP's projection and the 1x1 classifier. Taught in notebook 04.

    Args:
        output_stride: 8 or 16; ASPP rates follow it (:func:`aspp_rates`).
        aspp_rates: ASPP's atrous rates instead of the paper's (see :class:`ModelConfig`).
        multi_grid: layer4's unit rates, e.g. ``(1, 2, 4)`` (see :class:`ModelConfig`).
        zero_init_residual: see :class:`~deeplab_utils.backbone.ResNet50Backbone`.
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
        self.classifier = nn.Sequential(
            ASPP(self.backbone.out_channels, ASPP_CHANNELS, _rates(self.config)),
            nn.Conv2d(ASPP_CHANNELS, ASPP_CHANNELS, 3, padding=1, bias=False),
            nn.BatchNorm2d(ASPP_CHANNELS),
            nn.ReLU(inplace=True),
            nn.Conv2d(ASPP_CHANNELS, num_classes, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` -> ``(B, num_classes, H, W)``."""
        _check_image_batch(x)
        features = self.backbone(x)["out"]  # (B, 2048, H/OS, W/OS)
        logits = self.classifier(features)  # (B, num_classes, H/OS, W/OS)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)

    @classmethod
    def from_torchvision(cls, model: nn.Module) -> DeepLabV3:
        """Copy a torchvision ``deeplabv3_resnet50`` into a new :class:`DeepLabV3`.

        ``num_classes`` and the output stride (8 for torchvision's factory) are read from
        ``model``. Its auxiliary classifier, if any, is ignored: it only adds a training loss on
        layer3 and does not change ``model(x)["out"]``. Taught in notebook 04.

        Raises:
            TypeError: if ``model`` has no ``backbone`` and ``classifier``.
            ValueError: if its weights do not fit (e.g. a resnet101 or MobileNet backbone).
        """
        if not (hasattr(model, "backbone") and hasattr(model, "classifier")):
            raise TypeError(
                "model must be a torchvision DeepLabV3 (from deeplabv3_resnet50), "
                f"got {type(model).__name__}"
            )
        state = {k: v for k, v in model.state_dict().items() if not k.startswith("aux_classifier.")}
        if "classifier.4.weight" not in state or "backbone.layer3.0.conv2.weight" not in state:
            raise ValueError(
                f"model must be a torchvision deeplabv3_resnet50, got {type(model).__name__} "
                "without its classifier.4 or backbone.layer3 weights"
            )
        num_classes = state["classifier.4.weight"].shape[0]
        # A stage dilated instead of strided has stride 1 on its first 3x3 conv.
        output_stride = 8 if model.backbone.layer3[0].conv2.stride == (1, 1) else 16
        ours = cls(num_classes, output_stride=output_stride)
        rates = tuple(b[0].dilation[0] for b in model.classifier[0].convs[1:-1])
        if rates != aspp_rates(output_stride):
            raise ValueError(
                f"model's ASPP rates {rates} differ from the paper's {aspp_rates(output_stride)} "
                f"at output stride {output_stride}"
            )
        result = ours.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise ValueError(
                "model's weights do not fit a ResNet-50 DeepLabV3: "
                f"missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}"
            )
        return ours


class DeepLabV3Plus(_DeepLab):
    """DeepLabv3+: ResNet-50 backbone, ASPP, and the decoder of Sec. 3.1.

    ``(B, 3, H, W)`` -> logits ``(B, num_classes, H, W)``, for any H x W and any batch size,
    including one image in train mode (if larger than 16x16 at output stride 16; see
    :class:`~deeplab_utils.aspp.ASPP`). Taught in notebook 04.

    Args:
        output_stride: 16 (paper's default for training) or 8 (denser, slower).
        separable: atrous separable convolutions in ASPP and decoder (paper, Sec. 3.1).
        aspp_rates: ASPP's atrous rates instead of the paper's (see :class:`ModelConfig`).
        multi_grid: layer4's unit rates, e.g. ``(1, 2, 4)`` (see :class:`ModelConfig`).
        zero_init_residual: see :class:`~deeplab_utils.backbone.ResNet50Backbone`.

    ASPP's dropout is ``PLUS_ASPP_DROPOUT`` (0.1, the official code's), not torchvision's 0.5.
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
            num_classes,
            output_stride,
            separable=separable,
            aspp_rates=aspp_rates,
            multi_grid=multi_grid,
        )
        super().__init__(config, zero_init_residual)
        self.aspp = ASPP(
            self.backbone.out_channels,
            ASPP_CHANNELS,
            _rates(self.config),
            separable,
            dropout=PLUS_ASPP_DROPOUT,
        )
        self.decoder = Decoder(
            num_classes,
            low_level_channels=self.backbone.low_level_channels,
            aspp_channels=ASPP_CHANNELS,
            separable=separable,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` -> ``(B, num_classes, H, W)``."""
        _check_image_batch(x)
        features = self.backbone(x)
        aspp_out = self.aspp(features["out"])  # (B, 256, H/OS, W/OS)
        logits = self.decoder(aspp_out, features["low_level"])  # (B, num_classes, H/4, W/4)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


# The name the course's first draft used; kept so old notebooks keep working.
Deeplabv3Plus = DeepLabV3Plus
