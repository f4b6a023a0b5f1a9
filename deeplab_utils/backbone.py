"""ResNet-50 backbone with atrous convolution (DeepLabv3 paper, Sec. 3.2; DeepLabv3+ Sec. 3.1).

Parameter and buffer names are those of ``torchvision.models.resnet50``, so its ImageNet weights
load directly. An output stride of 16 (or 8) replaces the stride of the last stage (or two) by
dilation, as torchvision's ``replace_stride_with_dilation`` does. ``"imagenet"`` (or a file path)
starts it from torchvision's ImageNet weights: :func:`load_backbone_weights`.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision.models import ResNet50_Weights

from .aspp import check_rates
from .separable import _check_bool

# Bottlenecks per stage of ResNet-50 (He et al. 2016, Table 1).
RESNET50_LAYERS = (3, 4, 6, 3)

# The stride of each stage in the ImageNet ResNet (the stem before them reduces the image 4x).
_STAGE_STRIDES = (1, 2, 2, 2)
# Output stride 32 is the plain ImageNet ResNet, kept for teaching.
OUTPUT_STRIDES = (8, 16, 32)

BlockSettings = list[list[tuple[int, int]]]  # per stage, per block: (stride, dilation)


def check_multi_grid(multi_grid: object) -> tuple[int, ...] | None:
    """``multi_grid`` as a tuple of unit rates, or a ValueError naming what is allowed."""
    if multi_grid is None:
        return None
    blocks = RESNET50_LAYERS[-1]
    allowed = f"None or {blocks} positive ints (one unit rate per block of layer4, e.g. (1, 2, 4))"
    if not isinstance(multi_grid, tuple | list) or len(multi_grid) != blocks:
        raise ValueError(f"multi_grid must be {allowed}, got {multi_grid!r}")
    return check_rates(multi_grid, "multi_grid", allowed)


def block_settings(
    output_stride: int = 16, multi_grid: Sequence[int] | None = None
) -> BlockSettings:
    """The stride and dilation of every bottleneck's 3x3 conv, stage by stage.

    Once a stage's stride would take the output stride past ``output_stride``, the stage keeps
    stride 1 and doubles the rate instead (DeepLabv3, Sec. 3.2). As in torchvision's
    ``replace_stride_with_dilation``, the stage's first block keeps the previous rate (with it,
    the block that held the stride computes the strided outputs at every position) and its
    later blocks use the new one. ``multi_grid = (r1, r2, r3)`` gives layer4's blocks the rates
    ``rate * (r1, r2, r3)`` instead (DeepLabv3, Sec. 3.2). Taught in notebook 03.

    Returns:
        ``[[(stride, dilation), ...] for each of layer1..layer4]``: 3, 4, 6 and 3 pairs.

    Raises:
        ValueError: if ``output_stride`` is not 8, 16 or 32, or ``multi_grid`` is not None or
            three positive ints.
    """
    if isinstance(output_stride, bool) or output_stride not in OUTPUT_STRIDES:
        raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride!r}")
    multi_grid = check_multi_grid(multi_grid)
    settings: BlockSettings = []
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


def _conv1x1(in_channels: int, out_channels: int, *, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class Bottleneck(nn.Module):
    """ResNet bottleneck: 1x1 reduce -> 3x3 (strided or dilated) -> 1x1 expand, plus shortcut.

    ``(B, in_channels, H, W)`` -> ``(B, 4 * planes, ceil(H / stride), ceil(W / stride))``.
    The stride sits on the 3x3 conv ("ResNet v1.5"), as in torchvision. Taught in notebook 03.

    Args:
        planes: channels inside the block; the output has ``expansion * planes``.
        stride: 1, or 2 to halve the resolution.
        dilation: atrous rate of the 3x3 conv.
        downsample: applied to the shortcut when its shape changes, else ``None``.
    """

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
        self.conv1 = _conv1x1(in_channels, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        # padding == dilation keeps the size ("same") for a dilated 3x3 kernel.
        self.conv2 = nn.Conv2d(
            planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False
        )
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W)`` -> ``(B, 4 * planes, H / stride, W / stride)``."""
        out = self.relu(self.bn1(self.conv1(x)))  # (B, planes, H, W)
        out = self.relu(self.bn2(self.conv2(out)))  # (B, planes, H / stride, W / stride)
        out = self.bn3(self.conv3(out))  # (B, 4 * planes, H / stride, W / stride)
        # The shortcut is computed last, as in torchvision, so its output is alive briefly.
        out += x if self.downsample is None else self.downsample(x)
        return self.relu(out)


class ResNet50Backbone(nn.Module):
    """ResNet-50 without its classifier, returning low-level and high-level features.

    ``(B, 3, H, W)`` -> ``{"low_level": (B, 256, H/4, W/4), "out": (B, 2048, H/OS, W/OS)}``:
    layer1's output (for the DeepLabv3+ decoder) and layer4's. Sizes round up for odd inputs
    (``ceil(H / 4)``, ``ceil(H / OS)``). Taught in notebook 03.

    Args:
        output_stride: input size / output size: 16 (paper's default for training, Sec. 4),
            8 (denser, costlier), or 32 (plain ImageNet ResNet-50).
        multi_grid: ``None`` (torchvision's rates: one per stage), or the unit rates of layer4's
            three blocks, e.g. ``(1, 2, 4)``, which multiply layer4's rate (DeepLabv3, Sec. 3.2;
            see :func:`block_settings`). Multi-grid changes no parameter.
        zero_init_residual: start each bottleneck's last BN at weight 0, so every residual
            block begins as the identity (Goyal et al. 2017; torchvision's option of the same
            name). Training from scratch takes off sooner; pretrained weights overwrite it.
    """

    def __init__(
        self,
        *,
        output_stride: int = 16,
        multi_grid: Sequence[int] | None = None,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        settings = block_settings(output_stride, multi_grid)  # validates both
        _check_bool("zero_init_residual", zero_init_residual)
        self.output_stride = output_stride
        self.multi_grid = check_multi_grid(multi_grid)
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

        # torchvision's initialisation, so a fresh backbone matches a fresh torchvision ResNet.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``(B, 3, H, W)`` -> ``{"low_level": (B, 256, H/4, W/4), "out": (B, 2048, H/OS, W/OS)}``.

        OS is the output stride.
        """
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, 64, H/4, W/4)
        low_level = self.layer1(x)  # (B, 256, H/4, W/4)
        x = self.layer2(low_level)  # (B, 512, H/8, W/8)
        x = self.layer3(x)  # (B, 1024, H/min(16, OS), ...)
        x = self.layer4(x)  # (B, 2048, H/OS, W/OS)
        return {"low_level": low_level, "out": x}

    def load_torchvision_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load every tensor of a torchvision ``resnet50`` state dict; ``fc.*`` is ignored.

        Weights do not depend on the output stride (dilation changes no shapes), so ImageNet
        weights load into any output stride. Taught in notebook 03.

        Raises:
            ValueError: listing missing or unexpected keys, or keys whose shapes differ
                (e.g. for a resnet18 or resnet101 state dict).
        """
        given = {k: v for k, v in state_dict.items() if not k.startswith("fc.")}
        missing, unexpected, mismatched = state_dict_differences(self.state_dict(), given)
        # Checkpoints saved before PyTorch 0.4.1 lack BN's num_batches_tracked; BN fills it in.
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected or mismatched:
            raise ValueError(
                "state_dict is not a torchvision resnet50 state dict: "
                f"{len(missing)} missing keys {_preview(missing)}, "
                f"{len(unexpected)} unexpected keys {_preview(unexpected)}, "
                f"{len(mismatched)} shape mismatches {_preview(mismatched)}"
            )
        self.load_state_dict(given, strict=False)

    def load_imagenet_weights(
        self, *, path: str | os.PathLike[str] | None = None, progress: bool = True
    ) -> None:
        """Load torchvision's ImageNet ResNet-50 weights into this backbone.

        Without ``path``: ``ResNet50_Weights.IMAGENET1K_V1`` (the weights torchvision's
        ``deeplabv3_resnet50`` starts from), downloaded once and cached by torch.hub. Offline,
        download the file named by that weights' ``url`` elsewhere and pass its ``path`` (or
        place it at :func:`imagenet_cache_path`). The same as
        ``load_backbone_weights(self, path or "imagenet")``. Taught in notebook 03.

        Args:
            path: a ``.pth`` file holding a resnet50 state dict.
            progress: show a download progress bar.

        Raises:
            WeightsNotFoundError: (a ``FileNotFoundError``) no file at ``path``, or the
                download failed; the message says how to supply the file.
        """
        load_backbone_weights(self, IMAGENET if path is None else path, progress=progress)


def _make_layer(in_channels: int, planes: int, settings: list[tuple[int, int]]) -> nn.Sequential:
    """One ResNet stage from its blocks' ``(stride, dilation)`` (see :func:`block_settings`).

    Only the first block may have a stride; it also gets the projection shortcut whenever the
    stride or the channel count changes.
    """
    out_channels = planes * Bottleneck.expansion
    stride, dilation = settings[0]
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(
            _conv1x1(in_channels, out_channels, stride=stride), nn.BatchNorm2d(out_channels)
        )
    first = Bottleneck(in_channels, planes, stride=stride, dilation=dilation, downsample=downsample)
    rest = [Bottleneck(out_channels, planes, stride=s, dilation=d) for s, d in settings[1:]]
    return nn.Sequential(first, *rest)


def state_dict_differences(
    expected: Mapping[str, torch.Tensor], got: Mapping[str, torch.Tensor]
) -> tuple[list[str], list[str], list[str]]:
    """How ``got`` differs from ``expected``: its missing keys, its extra keys, and
    ``"key: (shape) vs expected (shape)"`` for every shared key whose shape differs.

    The one comparison of state dicts: the backbone's torchvision loader and the exercises'
    self-checks both use it.
    """
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    mismatched = [
        f"{k}: {tuple(got[k].shape)} vs expected {tuple(v.shape)}"
        for k, v in expected.items()
        if k in got and tuple(got[k].shape) != tuple(v.shape)
    ]
    return missing, unexpected, mismatched


def _preview(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return f"[{shown}{', ...' if len(keys) > limit else ''}]"


# --- ImageNet initialisation: "imagenet" or a file path (notebook 03) ---
#
# "imagenet" means torchvision.models.ResNet50_Weights.IMAGENET1K_V1: the weights torchvision's
# own deeplabv3_resnet50 starts its backbone from, and the ones behind the published DeepLabV3+
# ResNet-50 numbers this course compares with. They are downloaded only when asked for and
# cached where torch.hub caches ($TORCH_HOME/hub/checkpoints). Offline, place that file there
# by hand or pass its path.

IMAGENET = "imagenet"  # the one word that selects torchvision's ImageNet weights
IMAGENET_WEIGHTS = ResNet50_Weights.IMAGENET1K_V1  # torchvision's deeplabv3_resnet50 backbone's

BackboneWeights = str | os.PathLike[str]


class WeightsNotFoundError(FileNotFoundError):
    """Backbone weights could not be had: a download failed, or a file is missing or unreadable.

    The message says what was tried (URL, cache file) and how to supply the weights. Taught in
    notebook 03.
    """


class Normalization(NamedTuple):
    """Per-channel RGB statistics, applied as ``(x - mean) / std``. Taught in notebook 06."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def imagenet_cache_path() -> Path:
    """Where torchvision caches (and looks for) the ImageNet weights file.

    ``torch.hub.get_dir()/checkpoints/<file name of the URL>``, the rule of
    ``torch.hub.load_state_dict_from_url``; ``TORCH_HOME`` (or ``torch.hub.set_dir``) moves it.
    Taught in notebook 03.
    """
    name = os.path.basename(urlparse(IMAGENET_WEIGHTS.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _imagenet_state_dict(progress: bool) -> dict[str, torch.Tensor]:
    url, cache = IMAGENET_WEIGHTS.url, imagenet_cache_path()
    cached = cache.is_file()
    try:
        # torch.hub downloads into a temporary file and moves it into place, so a failed
        # download never leaves a partial file where the next run would read it.
        return IMAGENET_WEIGHTS.get_state_dict(
            progress=progress, check_hash=True, map_location="cpu", weights_only=True
        )
    except (OSError, RuntimeError, pickle.UnpicklingError, EOFError) as exc:
        if cached:
            raise WeightsNotFoundError(
                f"the cached ImageNet weights {cache} could not be read "
                f"({_first_line(exc)}); delete that file so that 'imagenet' downloads it again "
                f"from {url}, or pass the path of a ResNet-50 state dict (.pth)"
            ) from exc
        raise WeightsNotFoundError(
            f"could not download torchvision's ImageNet ResNet-50 weights from {url} to "
            f"{cache} ({_first_line(exc)}). Offline: download that URL on another machine and "
            f"place the file at {cache}, or pass the path of a ResNet-50 state dict (.pth) "
            f"instead of {IMAGENET!r}"
        ) from exc


def _check_weights(weights: object) -> None:
    if not isinstance(weights, str | os.PathLike):
        raise TypeError(
            f"weights must be {IMAGENET!r} or a path, got {type(weights).__name__} {weights!r}"
        )


def backbone_state_dict(
    weights: BackboneWeights, *, progress: bool = True
) -> dict[str, torch.Tensor]:
    """The ResNet-50 state dict that ``weights`` names, on the CPU. Taught in notebook 03.

    Args:
        weights: ``"imagenet"`` for torchvision's ImageNet weights (downloaded on the first
            call, about 100 MB, then read from :func:`imagenet_cache_path`), or the path of a
            ``.pth`` file holding a torchvision ``resnet50`` state dict (read with
            ``weights_only=True``).
        progress: show torch.hub's download progress bar.

    Raises:
        WeightsNotFoundError: the download failed (e.g. offline), or there is no such file.
        ValueError: the file is not a readable state dict.
    """
    _check_weights(weights)
    if isinstance(weights, str) and weights.strip().lower() == IMAGENET:
        return _imagenet_state_dict(progress)
    path = Path(weights)
    if not path.is_file():
        raise WeightsNotFoundError(
            f"backbone weights must be {IMAGENET!r} or the path of a ResNet-50 state dict "
            f"(.pth); got {os.fspath(path)!r}, and no file is there"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError) as exc:
        raise ValueError(f"{path} is not a readable PyTorch file ({_first_line(exc)})") from exc
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict")
    return state


def load_backbone_weights(
    model: nn.Module, weights: BackboneWeights, *, progress: bool = True
) -> None:
    """Start ``model``'s ResNet-50 backbone from ``weights`` (``"imagenet"`` or a ``.pth`` path).

    ``model`` is a :class:`~deeplab_utils.backbone.ResNet50Backbone` or any model with one as
    ``.backbone`` (``DeepLabV3``, ``DeepLabV3Plus``); ASPP, decoder and classifier keep their
    initialisation. Weights fit every output stride (dilation changes no shapes). Taught in
    notebook 03.

    Raises:
        TypeError: ``model`` has no ResNet-50 backbone.
        WeightsNotFoundError, ValueError: see :func:`backbone_state_dict` and
            :meth:`~deeplab_utils.backbone.ResNet50Backbone.load_torchvision_state_dict`.
    """
    backbone = model if isinstance(model, ResNet50Backbone) else getattr(model, "backbone", None)
    if not isinstance(backbone, ResNet50Backbone):
        raise TypeError(
            "model must be a ResNet50Backbone or have one as .backbone (DeepLabV3, "
            f"DeepLabV3Plus); got {type(model).__name__}"
        )
    backbone.load_torchvision_state_dict(backbone_state_dict(weights, progress=progress))


def weights_normalization(weights: BackboneWeights = IMAGENET) -> Normalization:
    """The input statistics that belong with ``weights``, so the data can follow the weights.

    For ``"imagenet"`` they are read from torchvision's own preprocessing of those weights
    (``IMAGENET1K_V1.transforms()``). A ``.pth`` path is taken to be a torchvision ResNet-50
    trained on ImageNet, hence the same statistics; no file is read and nothing downloads. The
    data layer's default normalisation (``IMAGENET_MEAN``, ``IMAGENET_STD``) equals them.
    Taught in notebook 06.
    """
    _check_weights(weights)
    preset = IMAGENET_WEIGHTS.transforms()
    return Normalization(
        mean=tuple(float(m) for m in preset.mean), std=tuple(float(s) for s in preset.std)
    )
