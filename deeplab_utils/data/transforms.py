"""Joint image + mask transforms, built from ``torchvision.transforms.v2``. Data layer (layer 3).

A transform maps ``(tv_tensors.Image uint8 (3, H, W), tv_tensors.Mask int64 (H, W))`` to
``(float32 (3, h, w) normalised with ImageNet statistics, int64 (h, w))``, 255 = ignore. The
``Mask`` type makes v2 resize masks nearest-neighbour (a blended label "1.5" between classes 1
and 2 would be meaningless) and keeps them out of colour jitter. Taught in notebook 06.
"""

from __future__ import annotations

from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from .palette import IGNORE_INDEX

# ImageNet statistics: the backbone's pretrained weights expect inputs normalised with them,
# and training from scratch loses nothing by using them too.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
Range = tuple[float, float]
# Padding fill: the image gets the mean colour, which normalisation maps to ~0; the mask ignore.
_FILL = {tv_tensors.Image: [round(255 * m) for m in IMAGENET_MEAN], tv_tensors.Mask: IGNORE_INDEX}

# Random scale range of the DeepLab training protocol (DeepLabv3, Sec. 4.1; v3+, Sec. 4).
PAPER_SCALE_RANGE: Range = (0.5, 2.0)


def _check_size(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


class RandomScale(v2.Transform):
    """Resize image and mask together by a factor drawn uniformly from ``scale_range``: the
    paper's random scale of the original image before its 513 px crop. Photos are far larger than
    this course's crops, so with ``base_size`` (the crop size) the factor applies to the image
    resized to a shorter side of ``base_size``, and a crop still shows whole objects. Taught in
    notebook 06."""

    def __init__(
        self, scale_range: Range = PAPER_SCALE_RANGE, *, base_size: int | None = None
    ) -> None:
        super().__init__()
        if len(scale_range) != 2 or not 0 < scale_range[0] <= scale_range[1]:
            raise ValueError(f"scale_range must be (low, high), 0 < low <= high, got {scale_range}")
        self.scale_range, self.base_size = scale_range, base_size

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = v2.query_size(flat_inputs)
        low, high = self.scale_range
        factor = low + (high - low) * torch.rand(()).item()
        if self.base_size is not None:
            factor *= self.base_size / min(height, width)
        return {"size": [max(1, round(height * factor)), max(1, round(width * factor))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        # F.resize dispatches on type: bilinear + antialias for Image, nearest for Mask.
        return self._call_kernel(F.resize, inpt, size=params["size"], antialias=True)


def longer_side_size(height: int, width: int, size: int) -> tuple[int, int]:
    """``(h, w)`` of a ``height`` x ``width`` picture resized to a longer side of ``size``, the
    shorter one rounded (at least 1): the one rule behind :func:`eval_transforms` and the
    evaluation that maps logits back to each picture's size. Taught in notebook 06."""
    factor = size / max(height, width)
    return max(1, round(height * factor)), max(1, round(width * factor))


class _ResizeAndPad(v2.Transform):
    """Resize to a longer side of ``size``, then pad the bottom and right to ``size`` x ``size``
    (``_FILL``): no pixel lost, one size for a batch. ``masks=False`` leaves masks as they are."""

    def __init__(self, size: int, *, masks: bool = True) -> None:
        super().__init__()
        self.size, self.masks = size, masks

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = longer_side_size(*v2.query_size(flat_inputs), self.size)
        # F.pad's order is [left, top, right, bottom]
        return {"size": [height, width], "padding": [0, 0, self.size - width, self.size - height]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.Mask) and not self.masks:
            return inpt
        resized = self._call_kernel(F.resize, inpt, size=params["size"], antialias=True)
        fill = _FILL.get(type(inpt), 0)
        return self._call_kernel(F.pad, resized, padding=params["padding"], fill=fill)


def random_scale_crop_flip(
    image: torch.Tensor,
    mask: torch.Tensor,
    size: int,
    scale_range: Range = PAPER_SCALE_RANGE,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's training augmentation of an image ``(C, H, W)`` float, normalised, and its
    mask ``(H, W)`` int64 into ``size`` x ``size``, still aligned: DeepLabv3's protocol (Sec.
    4.1, kept by v3+, Sec. 4), random scale, padding at the bottom and right (image 0, the mean
    colour once normalised; mask 255), random crop, left-right flip with probability 1/2, every
    draw from ``generator`` (``None``: torch's). ``train_transforms``' geometric steps as one
    function. Taught in notebook 06."""
    low, high = scale_range
    scale = low + (high - low) * torch.rand((), generator=generator).item()
    height, width = image.shape[-2:]
    new_size = [max(1, round(height * scale)), max(1, round(width * scale))]
    image = F.resize(tv_tensors.Image(image), new_size, antialias=True)  # bilinear
    mask = F.resize(tv_tensors.Mask(mask), new_size)  # nearest: labels stay labels
    # F.pad's order is [left, top, right, bottom]
    padding = [0, 0, max(0, size - new_size[1]), max(0, size - new_size[0])]
    image = F.pad(image, padding, fill=0.0)
    mask = F.pad(mask, padding, fill=IGNORE_INDEX)
    top = int(torch.randint(0, image.shape[-2] - size + 1, (), generator=generator))
    left = int(torch.randint(0, image.shape[-1] - size + 1, (), generator=generator))
    image = image[..., top : top + size, left : left + size]
    mask = mask[..., top : top + size, left : left + size]
    if torch.rand((), generator=generator) < 0.5:
        image, mask = image.flip(-1), mask.flip(-1)
    return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor)


def _normalized() -> list[v2.Transform]:
    return [
        v2.ToDtype({tv_tensors.Image: torch.float32, tv_tensors.Mask: torch.int64}, scale=True),
        v2.Normalize(mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD)),
        v2.ToPureTensor(),  # plain tensors: batches collate and print like any tensor
    ]


def train_transforms(
    crop_size: int, *, scale_range: Range = PAPER_SCALE_RANGE, color_jitter: float = 0.3
) -> v2.Compose:
    """Training augmentation to ``crop_size`` squares: the DeepLab protocol (DeepLabv3 Sec. 4.1,
    v3+ Sec. 4) as in :func:`random_scale_crop_flip`, the scale relative to a shorter side of
    ``crop_size`` (:class:`RandomScale`) and the image padded with the mean colour, then colour
    jitter (brightness, contrast, saturation; 0 = off) of the image only. Taught in notebook 06.
    """
    _check_size("crop_size", crop_size)
    steps: list[v2.Transform] = [
        RandomScale(scale_range, base_size=crop_size),
        v2.RandomCrop(crop_size, pad_if_needed=True, fill=_FILL),
        v2.RandomHorizontalFlip(p=0.5),
    ]
    if color_jitter:  # a negative strength reaches ColorJitter, which refuses it
        jitter = color_jitter
        steps.append(v2.ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter))
    return v2.Compose(steps + _normalized())


def eval_transforms(size: int | None = None) -> v2.Compose:
    """Evaluation preprocessing: with ``size``, resize to a longer side of ``size`` and pad the
    bottom and right (image: mean colour, mask: 255) to ``size`` squares, so no pixel is cropped
    away and batches stack; then (only this, without ``size``) normalise. Taught in notebook 06.
    """
    if size is None:
        return v2.Compose(_normalized())
    _check_size("size", size)
    return v2.Compose([_ResizeAndPad(size), *_normalized()])


def original_size_eval_transforms(size: int) -> v2.Compose:
    """The image as ``eval_transforms(size)``, the mask ``(H, W)`` as it is: the standard VOC
    protocol scores every pixel of the original annotation, the logits resized back to it
    (:func:`deeplab_utils.evaluation.restore_original_size`). Batch such masks with
    :func:`~deeplab_utils.data.collate_original_size`. Taught in notebook 08."""
    _check_size("size", size)
    return v2.Compose([_ResizeAndPad(size, masks=False), *_normalized()])


def _stats(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ImageNet's mean and std as ``(3, 1, 1)`` tensors like ``image``; a grey image is refused
    (broadcasting would make it RGB without a word)."""
    if image.ndim not in (3, 4) or image.shape[-3] != 3:
        raise ValueError(
            f"image must be RGB, (3, H, W) or (B, 3, H, W), got shape {tuple(image.shape)}"
        )
    stats = torch.tensor([IMAGENET_MEAN, IMAGENET_STD], dtype=image.dtype, device=image.device)
    return stats[0].view(3, 1, 1), stats[1].view(3, 1, 1)


def normalize(image: torch.Tensor) -> torch.Tensor:
    """Map an RGB image in [0, 1], ``(3, H, W)`` or ``(B, 3, H, W)``, to the datasets'
    normalised form. Taught in notebook 06."""
    mean, std = _stats(image)
    return (image - mean) / std


def denormalize(image: torch.Tensor) -> torch.Tensor:
    """Undo :func:`normalize` for display: float32 in [0, 1], same shape. Taught in notebook 06."""
    image = image.float()
    mean, std = _stats(image)
    return (image * std + mean).clamp(0.0, 1.0)
