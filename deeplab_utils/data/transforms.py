"""Joint image + mask transforms, built from ``torchvision.transforms.v2``.

Data layer (layer 3). Taught in notebook 06.

Every dataset in the course hands its transform a pair ``(tv_tensors.Image uint8 (3, H, W),
tv_tensors.Mask int64 (H, W))``; the transform returns ``(float32 (3, h, w) normalised with
ImageNet statistics, int64 (h, w))`` with 255 = ignore. Wrapping the mask as ``tv_tensors.Mask``
is what makes v2 resize it with nearest-neighbour interpolation (a blended label such as
"1.5" between class 1 and class 2 would be meaningless) and leave it out of colour jitter.
"""

from __future__ import annotations

from collections.abc import Callable
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

# Random scale range of the DeepLab training protocol (DeepLabv3, Sec. 4.1; v3+, Sec. 4).
PAPER_SCALE_RANGE: tuple[float, float] = (0.5, 2.0)


def _check_size(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_scale_range(scale_range: tuple[float, float]) -> None:
    if len(scale_range) != 2 or not 0 < scale_range[0] <= scale_range[1]:
        raise ValueError(
            f"scale_range must be (low, high) with 0 < low <= high, got {tuple(scale_range)}"
        )


class RandomScale(v2.Transform):
    """Resize image and mask together by a factor drawn uniformly from ``scale_range``.

    The paper scales the original image by 0.5-2.0 before cropping 513 px. Photos are far larger
    than this course's crops, so with ``base_size`` the factor applies to the image first resized
    to have its shorter side ``base_size`` (the crop size): a crop then still shows whole
    objects. Without ``base_size`` this is exactly the paper's random scale. Taught in
    notebook 06.

    Args:
        scale_range: ``(low, high)`` range of the factor.
        base_size: shorter side the factor is relative to; ``None`` = the image's own size.
    """

    def __init__(
        self,
        scale_range: tuple[float, float] = PAPER_SCALE_RANGE,
        *,
        base_size: int | None = None,
    ) -> None:
        super().__init__()
        _check_scale_range(scale_range)
        if base_size is not None:
            _check_size("base_size", base_size)
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))
        self.base_size = base_size

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
    """``(h, w)`` of a ``height`` x ``width`` picture resized so that its longer side is ``size``.

    The shorter side is rounded to the nearest pixel (at least 1). The one rule behind
    :class:`ResizeLongerSide` and the evaluation that maps logits back to each picture's
    original size. Taught in notebook 06.

    Raises:
        ValueError: if a size is not a positive int.
    """
    for name, value in (("height", height), ("width", width), ("size", size)):
        _check_size(name, value)
    factor = size / max(height, width)
    return max(1, round(height * factor)), max(1, round(width * factor))


class ResizeLongerSide(v2.Transform):
    """Resize image and mask so that the longer side is ``size`` (:func:`longer_side_size`).

    Taught in notebook 06.
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        _check_size("size", size)
        self.size = size

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = v2.query_size(flat_inputs)
        return {"size": list(longer_side_size(height, width, self.size))}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(F.resize, inpt, size=params["size"], antialias=True)


class PadToSize(v2.Transform):
    """Pad image and mask at the bottom/right up to at least ``size`` x ``size`` (deterministic).

    Used for evaluation so every image keeps all its pixels and a batch has one size; the
    padding is labelled ``ignore_index`` so it never counts in the metrics. Taught in notebook 06.
    """

    def __init__(
        self, size: int, *, image_fill: tuple[int, ...] = (0,), ignore_index: int = IGNORE_INDEX
    ) -> None:
        super().__init__()
        _check_size("size", size)
        self.size = size
        self.fill = {tv_tensors.Image: list(image_fill), tv_tensors.Mask: ignore_index}

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = v2.query_size(flat_inputs)
        # F.pad's order is [left, top, right, bottom]
        return {"padding": [0, 0, max(0, self.size - width), max(0, self.size - height)]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        fill = self.fill.get(type(inpt), 0)
        return self._call_kernel(F.pad, inpt, padding=params["padding"], fill=fill)


def random_scale_crop_flip(
    image: torch.Tensor,
    mask: torch.Tensor,
    size: int,
    scale_range: tuple[float, float] = PAPER_SCALE_RANGE,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's training augmentation on one image and its mask, drawn from ``generator``.

    DeepLabv3's protocol (Sec. 4.1), kept by DeepLabv3+ (Sec. 4): random scale, padding at the
    bottom and right up to ``size`` (image with 0, the mean colour of a normalised image; mask
    with 255 = ignore), a random ``size`` x ``size`` crop, and a left-right flip with
    probability 1/2. The function version of ``train_transforms``' geometric steps. Taught in
    notebook 06.

    Args:
        image: float ``(C, H, W)``, normalised.
        mask: int64 ``(H, W)`` class indices, 255 = ignore.
        size: side of the square crop.
        scale_range: ``(low, high)`` of the random scale factor.
        generator: the source of every random draw; ``None`` uses torch's global one.

    Returns:
        ``(image (C, size, size), mask (size, size))``, same dtypes, still aligned.
    """
    _check_size("size", size)
    _check_scale_range(scale_range)
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


def _mean_pixel(mean: tuple[float, ...]) -> tuple[int, ...]:
    # Pads the uint8 image with the mean colour, which Normalize then maps to ~0.
    return tuple(round(255 * m) for m in mean)


def _to_normalized(mean: tuple[float, ...], std: tuple[float, ...]) -> list[v2.Transform]:
    return [
        v2.ToDtype({tv_tensors.Image: torch.float32, tv_tensors.Mask: torch.int64}, scale=True),
        v2.Normalize(mean=list(mean), std=list(std)),
        v2.ToPureTensor(),  # plain tensors: batches collate and print like any tensor
    ]


def train_transforms(
    crop_size: int,
    *,
    scale_range: tuple[float, float] = PAPER_SCALE_RANGE,
    hflip_p: float = 0.5,
    color_jitter: float = 0.3,
    ignore_index: int = IGNORE_INDEX,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
) -> v2.Compose:
    """Training augmentation: random scale, padded random crop, flip, colour jitter, normalise.

    The DeepLab protocol (DeepLabv3 Sec. 4.1, v3+ Sec. 4), as :func:`random_scale_crop_flip`,
    padding the image with the mean colour. Colour jitter touches the image only. Taught in
    notebook 06.

    Args:
        crop_size: side of the square output crop; also the ``base_size`` of ``RandomScale``.
        scale_range: range of the random scale factor.
        hflip_p: probability of a horizontal flip.
        color_jitter: strength of brightness/contrast/saturation jitter (0 = off).
        ignore_index: label given to padded mask pixels.
        mean, std: normalisation statistics (ImageNet by default).

    Returns:
        A callable ``(Image uint8 (3, H, W), Mask (H, W)) -> (float32 (3, crop, crop),
        int64 (crop, crop))``.
    """
    _check_size("crop_size", crop_size)
    _check_scale_range(scale_range)
    if not 0.0 <= hflip_p <= 1.0:
        raise ValueError(f"hflip_p must be a probability in [0, 1], got {hflip_p}")
    if color_jitter < 0:
        raise ValueError(f"color_jitter must be >= 0, got {color_jitter}")
    steps: list[v2.Transform] = [
        RandomScale(scale_range, base_size=crop_size),
        v2.RandomCrop(
            crop_size,
            pad_if_needed=True,
            fill={tv_tensors.Image: list(_mean_pixel(mean)), tv_tensors.Mask: ignore_index},
        ),
        v2.RandomHorizontalFlip(p=hflip_p),
    ]
    if color_jitter > 0:
        steps.append(
            v2.ColorJitter(brightness=color_jitter, contrast=color_jitter, saturation=color_jitter)
        )
    return v2.Compose(steps + _to_normalized(mean, std))


def eval_transforms(
    size: int | None = None,
    *,
    ignore_index: int = IGNORE_INDEX,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
) -> v2.Compose:
    """Evaluation preprocessing: optional resize + pad to a square, then normalise.

    With ``size``, the longer side is resized to ``size`` and the rest padded (image: mean colour,
    mask: ``ignore_index``) to ``size`` x ``size``, so no pixel is cropped away and batches stack.
    With ``size=None`` only dtype conversion and normalisation happen. Taught in notebook 06.

    Returns:
        A callable ``(Image uint8 (3, H, W), Mask (H, W)) -> (float32 (3, s, s), int64 (s, s))``.
    """
    steps: list[v2.Transform] = []
    if size is not None:
        _check_size("size", size)
        steps = [
            ResizeLongerSide(size),
            PadToSize(size, image_fill=_mean_pixel(mean), ignore_index=ignore_index),
        ]
    return v2.Compose(steps + _to_normalized(mean, std))


class _ImageOnly:
    """Apply an image transform to the image; hand the mask back untouched as int64."""

    def __init__(self, image_transform: Callable[[Any], torch.Tensor]) -> None:
        self.image_transform = image_transform

    def __call__(self, image: Any, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.image_transform(image), mask.as_subclass(torch.Tensor).to(torch.int64)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.image_transform!r})"


def original_size_eval_transforms(
    size: int,
    *,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
) -> Callable[[Any, Any], tuple[torch.Tensor, torch.Tensor]]:
    """Evaluation at the original resolution: the image as ``eval_transforms(size)``, mask as is.

    The standard VOC protocol scores every pixel of the original annotation: the logits are
    resized back to the mask's size before scoring (see
    :func:`deeplab_utils.evaluation.restore_original_size`). A batch of such masks needs
    :func:`~deeplab_utils.data.collate_original_size`. Taught in notebook 08.

    Returns:
        A callable ``(Image uint8 (3, H, W), Mask (H, W)) -> (float32 (3, size, size),
        int64 (H, W))``.
    """
    _check_size("size", size)
    return _ImageOnly(eval_transforms(size, mean=mean, std=std))


def _stats(
    image: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``mean`` and ``std`` as ``(3, 1, 1)`` tensors of ``image``'s dtype, on its device."""
    if image.ndim not in (3, 4) or image.shape[-3] != 3:
        raise ValueError(
            f"image must be RGB, (3, H, W) or (B, 3, H, W), got shape {tuple(image.shape)}"
        )
    return tuple(
        torch.as_tensor(v, dtype=image.dtype, device=image.device).view(3, 1, 1)
        for v in (mean, std)
    )


def normalize(
    image: torch.Tensor,
    *,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
) -> torch.Tensor:
    """Map an image with values in [0, 1], ``(3, H, W)`` or ``(B, 3, H, W)``, to normalised form.

    Taught in notebook 06.

    Raises:
        ValueError: if the channel dimension (-3) is not 3 (a grey image would otherwise be
            broadcast to three channels without a word: convert it to RGB first).
    """
    m, s = _stats(image, mean, std)
    return (image - m) / s


def denormalize(
    image: torch.Tensor,
    *,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
) -> torch.Tensor:
    """Undo ``Normalize`` for display: ``(3, H, W)`` or ``(B, 3, H, W)`` -> same shape in [0, 1].

    Taught in notebook 06.

    Raises:
        ValueError: if the channel dimension (-3) is not 3.
    """
    image = image.float()
    m, s = _stats(image, mean, std)
    return (image * s + m).clamp(0.0, 1.0)
