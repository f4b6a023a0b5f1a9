"""ImageNet initialisation of the ResNet-50 backbone in one word: ``"imagenet"`` or a file path.

Model layer (1): knows torchvision's weights, not data or training. Taught in notebook 03.

``"imagenet"`` means ``torchvision.models.ResNet50_Weights.IMAGENET1K_V1``: the weights
torchvision's own ``deeplabv3_resnet50`` starts its backbone from, and the ones behind the
published DeepLabV3+ ResNet-50 numbers this course compares with. They are downloaded only
when asked for and cached where torch.hub caches (``$TORCH_HOME/hub/checkpoints``). Offline,
place that file there by hand or pass its path.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision.models import ResNet50_Weights

from .backbone import ResNet50Backbone

__all__ = [
    "IMAGENET",
    "IMAGENET_WEIGHTS",
    "Normalization",
    "WeightsNotFoundError",
    "backbone_state_dict",
    "imagenet_cache_path",
    "load_backbone_weights",
    "weights_normalization",
]

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
