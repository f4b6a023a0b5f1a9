"""ResNet-50 backbone with atrous convolution (DeepLabv3 paper, Sec. 3.2), and its ImageNet
weights: parameter names are torchvision's ``resnet50``'s, so they load directly."""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn
from torchvision.models import ResNet50_Weights

RESNET50_LAYERS = (3, 4, 6, 3)  # bottlenecks per stage of ResNet-50 (He et al. 2016, Table 1)
_STAGE_STRIDES = (1, 2, 2, 2)  # each stage's stride in the ImageNet ResNet, after the stem's 4
OUTPUT_STRIDES = (8, 16, 32)  # 32 is the plain ImageNet ResNet, kept for teaching


def block_settings(
    output_stride: int = 16, multi_grid: Sequence[int] | None = None
) -> list[list[tuple[int, int]]]:
    """The ``(stride, dilation)`` of every bottleneck's 3x3 conv, for layer1..layer4's blocks.

    A stage whose stride would take the output stride past ``output_stride`` keeps stride 1 and
    multiplies the rate instead (DeepLabv3, Sec. 3.2); as in torchvision, its first block keeps
    the previous rate. ``multi_grid = (r1, r2, r3)`` gives layer4's blocks the rates
    ``rate * (r1, r2, r3)``. Taught in notebook 03.
    """
    if isinstance(output_stride, bool) or output_stride not in OUTPUT_STRIDES:
        raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride!r}")
    settings = []
    current, rate = 4, 1  # the stem's output stride, and the rate so far
    for blocks, stride in zip(RESNET50_LAYERS, _STAGE_STRIDES, strict=True):
        previous = rate
        if current * stride > output_stride:  # keep the resolution, widen the kernels instead
            rate *= stride
            stride = 1
        current *= stride
        settings.append([(stride, previous)] + [(1, rate)] * (blocks - 1))
    if multi_grid is not None:
        last = zip(settings[-1], multi_grid, strict=True)
        settings[-1] = [(stride, rate * unit) for (stride, _), unit in last]
    return settings


class Bottleneck(nn.Module):
    """ResNet bottleneck: 1x1 reduce -> 3x3 (strided or dilated) -> 1x1 expand, plus shortcut;
    the stride and rate sit on the 3x3 conv ("ResNet v1.5", as in torchvision). Notebook 03."""

    expansion = 4  # He et al. 2016, Table 1: output channels are 4x the bottleneck width

    def __init__(
        self,
        in_channels: int,
        planes: int,
        *,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        # padding == dilation keeps the size ("same") for a dilated 3x3 kernel.
        self.conv2 = nn.Conv2d(
            planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False
        )
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W)`` -> ``(B, 4 * planes, ceil(H / stride), ceil(W / stride))``."""
        out = self.relu(self.bn1(self.conv1(x)))  # (B, planes, H, W)
        out = self.relu(self.bn2(self.conv2(out)))  # (B, planes, H / stride, W / stride)
        out = self.bn3(self.conv3(out))  # (B, 4 * planes, H / stride, W / stride)
        # The shortcut is computed last, as in torchvision, so its output is alive briefly.
        out += x if self.downsample is None else self.downsample(x)
        return self.relu(out)


def _make_layer(in_channels: int, planes: int, settings: list[tuple[int, int]]) -> nn.Sequential:
    """A stage from its blocks' ``(stride, dilation)``, projecting the shortcut if shapes change."""
    out_channels = planes * Bottleneck.expansion
    stride, dilation = settings[0]
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
            nn.BatchNorm2d(out_channels),
        )
    first = Bottleneck(in_channels, planes, stride=stride, dilation=dilation, downsample=downsample)
    rest = [Bottleneck(out_channels, planes, stride=s, dilation=d) for s, d in settings[1:]]
    return nn.Sequential(first, *rest)


class ResNet50Backbone(nn.Module):
    """ResNet-50 without its classifier, returning layer1's and layer4's features.

    The output stride OS is 16 (the paper's for training), 8 (denser, costlier) or 32 (the
    ImageNet ResNet-50); ``multi_grid``: see :func:`block_settings`. ``zero_init_residual``
    starts each block's last BN at 0, so blocks begin as the identity and training from scratch
    takes off sooner (Goyal et al. 2017; torchvision's option). Taught in notebook 03.
    """

    def __init__(
        self,
        *,
        output_stride: int = 16,
        multi_grid: Sequence[int] | None = None,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        settings = block_settings(output_stride, multi_grid)
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_channels = 64
        for i, (planes, stage) in enumerate(zip((64, 128, 256, 512), settings, strict=True), 1):
            setattr(self, f"layer{i}", _make_layer(in_channels, planes, stage))
            in_channels = planes * Bottleneck.expansion
        self.out_channels = in_channels  # 2048
        self.low_level_channels = 64 * Bottleneck.expansion  # 256
        # torchvision's initialisation (BN's default is its too): a fresh backbone matches its.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif zero_init_residual and isinstance(m, Bottleneck):
                nn.init.zeros_(m.bn3.weight)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``(B, 3, H, W)`` -> low-level ``(B, 256, H/4, W/4)``, out ``(B, 2048, H/OS, W/OS)``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, 64, H/4, W/4)
        low_level = self.layer1(x)  # (B, 256, H/4, W/4)
        x = self.layer2(low_level)  # (B, 512, H/8, W/8)
        x = self.layer3(x)  # (B, 1024, H/min(16, OS), ...)
        x = self.layer4(x)  # (B, 2048, H/OS, W/OS)
        return {"low_level": low_level, "out": x}

    def load_torchvision_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load a torchvision ``resnet50`` state dict (``fc.*`` is ignored) at any output stride:
        dilation changes no shapes. Another network's raises a ValueError listing the keys that
        differ, and loads nothing. Taught in notebook 03."""
        given = {k: v for k, v in state_dict.items() if not k.startswith("fc.")}
        missing, unexpected, mismatched = state_dict_differences(self.state_dict(), given)
        # Checkpoints saved before PyTorch 0.4.1 lack BN's num_batches_tracked; BN fills it in.
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected or mismatched:
            raise ValueError(
                f"state_dict is not a torchvision resnet50 state dict: {len(missing)} missing "
                f"keys {missing[:5]}, {len(unexpected)} unexpected keys {unexpected[:5]}, "
                f"{len(mismatched)} shape mismatches {mismatched[:5]}"
            )
        self.load_state_dict(given, strict=False)

    def load_imagenet_weights(
        self, *, path: str | os.PathLike[str] | None = None, progress: bool = True
    ) -> None:
        """:func:`load_backbone_weights` of ``path``, or of ``"imagenet"`` without one. Taught in
        notebook 03."""
        load_backbone_weights(self, IMAGENET if path is None else path, progress=progress)


def state_dict_differences(
    expected: Mapping[str, torch.Tensor], got: Mapping[str, torch.Tensor]
) -> tuple[list[str], list[str], list[str]]:
    """The keys ``got`` lacks, its extra keys, and ``"key: (shape) vs expected (shape)"`` for
    shapes that differ: the one comparison of state dicts, for loaders and self-checks."""
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    mismatched = [
        f"{k}: {tuple(got[k].shape)} vs expected {tuple(v.shape)}"
        for k, v in expected.items()
        if k in got and tuple(got[k].shape) != tuple(v.shape)
    ]
    return missing, unexpected, mismatched


# --- ImageNet initialisation (notebook 03): the weights torchvision's deeplabv3_resnet50 starts
# its backbone from, behind the published DeepLabV3+ ResNet-50 numbers the course compares with.
IMAGENET = "imagenet"  # the one word that selects them
IMAGENET_WEIGHTS = ResNet50_Weights.IMAGENET1K_V1


class WeightsNotFoundError(FileNotFoundError):
    """Backbone weights could not be had (a download failed, a file is missing or unreadable);
    the message says what was tried and how to supply them. Taught in notebook 03."""


def imagenet_cache_path() -> Path:
    """Where torchvision caches (and looks for) the ImageNet weights: torch.hub's rule,
    ``torch.hub.get_dir()/checkpoints/<file name of the URL>``; ``TORCH_HOME`` moves it."""
    return Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_WEIGHTS.url.rsplit("/", 1)[-1]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _imagenet_state_dict(progress: bool) -> dict[str, torch.Tensor]:
    url, cache = IMAGENET_WEIGHTS.url, imagenet_cache_path()
    try:
        # torch.hub downloads into a temporary file and moves it into place, so a failed
        # download never leaves a partial file where the next run would read it.
        return IMAGENET_WEIGHTS.get_state_dict(
            progress=progress, check_hash=True, map_location="cpu", weights_only=True
        )
    except (OSError, RuntimeError, pickle.UnpicklingError, EOFError) as exc:
        if cache.is_file():  # a failed download leaves none (see above): the cache is unreadable
            raise WeightsNotFoundError(
                f"the cached ImageNet weights {cache} could not be read ({_first_line(exc)}); "
                f"delete that file so that 'imagenet' downloads it again from {url}, or pass "
                "the path of a ResNet-50 state dict (.pth)"
            ) from exc
        raise WeightsNotFoundError(
            f"could not download torchvision's ImageNet ResNet-50 weights from {url} to {cache} "
            f"({_first_line(exc)}). Offline: download that URL on another machine and place the "
            f"file at {cache}, or pass the path of a ResNet-50 state dict (.pth) instead of "
            f"{IMAGENET!r}"
        ) from exc


def backbone_state_dict(
    weights: str | os.PathLike[str], *, progress: bool = True
) -> dict[str, torch.Tensor]:
    """The ResNet-50 state dict that ``weights`` names, on the CPU: ``"imagenet"``, downloaded
    only on the first call (about 100 MB) into :func:`imagenet_cache_path` (offline, place the
    file there), or the path of a torchvision ``resnet50`` state dict. Taught in notebook 03."""
    if isinstance(weights, str) and weights.strip().lower() == IMAGENET:
        return _imagenet_state_dict(progress)
    path = Path(weights)
    if not path.is_file():
        raise WeightsNotFoundError(
            f"backbone weights must be {IMAGENET!r} or the path of a ResNet-50 state dict "
            f"(.pth); got {os.fspath(path)!r}, and no file is there"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError) as exc:
        raise ValueError(f"{path} is not a readable PyTorch file ({_first_line(exc)})") from exc


def load_backbone_weights(
    model: nn.Module, weights: str | os.PathLike[str], *, progress: bool = True
) -> None:
    """Start the ResNet-50 of ``model`` (itself, or its ``.backbone``) from ``weights`` (see
    :func:`backbone_state_dict`); other parts keep their initialisation. Taught in notebook 03."""
    backbone = getattr(model, "backbone", model)
    if not isinstance(backbone, ResNet50Backbone):  # checked before anything downloads
        raise TypeError(
            f"model must be a ResNet50Backbone or have one as .backbone, got {type(model).__name__}"
        )
    backbone.load_torchvision_state_dict(backbone_state_dict(weights, progress=progress))
