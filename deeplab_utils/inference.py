"""Inference: test-time augmentation, segmenting an image file, and exporting the model.

Training layer (4): uses the model, the data layer's normalisation and the runtime helpers;
never the teaching aids. Taught in notebook 08.

The DeepLab papers evaluate with two test-time augmentations (DeepLabv3, Sec. 4.3 "Inference
strategy"; the "MS" and "Flip" columns of DeepLabv3+'s Tables 3-5): the image is run at
several scales and left-right flipped, and the class probabilities of all runs are averaged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import longer_side_size, normalize
from .runtime import model_device, pick_device

__all__ = [
    "PAPER_SCALES",
    "export_model",
    "load_exported",
    "predict",
    "save_exported",
    "segment_image",
]

# DeepLabv3, Sec. 4.3 and DeepLabv3+, Sec. 4 ("MS" rows): the scales of the multi-scale test.
PAPER_SCALES: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)

# The smallest exported height/width: below it a ResNet-50 at output stride 16 collapses to a
# 1x1 map, which export would have to special-case.
_EXPORT_MIN_SIZE = 32
# Exported sizes are multiples of 16, so the backbone's four halvings are exact and the traced
# graph is the same for every size: the rounding of other sizes becomes guards that older
# torch.export (2.11, Colab's) refuses in a dynamic export.
_EXPORT_MULTIPLE = 16


def _check_scales(scales: Sequence[float]) -> tuple[float, ...]:
    if isinstance(scales, (int, float)) or not isinstance(scales, Sequence) or not scales:
        raise ValueError(f"scales must be a non-empty sequence of numbers, got {scales!r}")
    for s in scales:
        ok = isinstance(s, (int, float)) and not isinstance(s, bool)
        if not ok or not math.isfinite(s) or s <= 0:
            raise ValueError(f"every scale must be a positive number, got {s!r} in {scales!r}")
    return tuple(float(s) for s in scales)


def _check_images(images: Any) -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor (B, 3, H, W), got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"images must be 4-D (B, 3, H, W), got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(
            f"images must be float (normalised), got {images.dtype}; "
            "use segment_image() for uint8 pictures"
        )


@torch.no_grad()
def predict(
    model: nn.Module,
    images: torch.Tensor,
    *,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
) -> torch.Tensor:
    """Class probabilities averaged over test-time augmentations.

    Each scale ``s`` resizes the batch to ``round(s*H) x round(s*W)`` (bilinear), runs the model,
    resizes the logits back to ``H x W`` and takes the softmax; with ``flip`` each scale also
    runs on the mirrored batch, whose logits are mirrored back. Returns the mean of all
    ``len(scales) * (1 + flip)`` probability maps (the paper: ``scales=PAPER_SCALES,
    flip=True``). Runs in eval mode without gradients, then restores the model's mode.
    Taught in notebook 08.

    Args:
        model: maps ``(B, 3, h, w)`` to logits ``(B, C, h, w)`` (or any size: resized).
        images: normalised float ``(B, 3, H, W)`` on the model's device.
        scales: positive input scales; ``(1.0,)`` is a plain forward pass.

    Returns:
        Probabilities ``(B, C, H, W)`` that sum to 1 over ``C``.

    Raises:
        TypeError: ``images`` is not a float tensor.
        ValueError: ``images`` is not 4-D, not on the model's device, or a scale is not a
            positive number.
    """
    _check_images(images)
    scales = _check_scales(scales)
    weight = next(model.parameters(), None)
    if weight is not None and weight.device != images.device:
        raise ValueError(
            f"images are on {images.device} but the model is on {weight.device}; "
            f"move one of them, e.g. images.to({str(weight.device)!r})"
        )
    size = images.shape[-2:]
    was_training = model.training
    model.eval()
    try:
        total: torch.Tensor | None = None
        for s in scales:
            scaled_size = (max(1, round(s * size[0])), max(1, round(s * size[1])))
            x = images
            if scaled_size != tuple(size):
                x = F.interpolate(images, size=scaled_size, mode="bilinear", align_corners=False)
            for mirrored in (False, True) if flip else (False,):
                logits = model(x.flip(-1) if mirrored else x)  # (B, C, s*H, s*W)
                if mirrored:
                    logits = logits.flip(-1)  # back to the original orientation
                if logits.shape[-2:] != size:
                    logits = F.interpolate(
                        logits, size=size, mode="bilinear", align_corners=False
                    )  # (B, C, H, W)
                probs = logits.float().softmax(dim=1)
                total = probs if total is None else total + probs
    finally:
        model.train(was_training)
    assert total is not None  # scales is non-empty
    return total / (len(scales) * (2 if flip else 1))


def _load_rgb(image: Any) -> np.ndarray:
    """A path, PIL image or uint8 array -> uint8 ``(H, W, 3)`` array."""
    from PIL import Image, UnidentifiedImageError  # local: only this helper reads files

    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"image file not found: {path}")
        try:
            with Image.open(path) as opened:
                image = opened.convert("RGB")
        except UnidentifiedImageError as exc:
            raise ValueError(
                f"{path} is not an image Pillow can read (use a PNG, JPEG, ... file)"
            ) from exc
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if not isinstance(image, np.ndarray):
        raise TypeError(
            "image must be a file path, a PIL image or a uint8 array (H, W, 3), "
            f"got {type(image).__name__}"
        )
    if image.dtype != np.uint8:
        raise TypeError(f"image array must be uint8 (values 0-255), got dtype {image.dtype}")
    if image.ndim == 2:  # greyscale
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"image array must be (H, W), (H, W, 3) or (H, W, 4), got {image.shape}")
    return np.array(image[:, :, :3])  # a writable copy; RGBA -> RGB: drop alpha


def segment_image(
    model: nn.Module,
    image: str | Path | Any,
    *,
    device: str | torch.device | None = None,
    size: int | None = None,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
) -> torch.Tensor:
    """Segment one picture: a file path, a PIL image or a uint8 ``(H, W, 3)`` array.

    The picture is normalised with ImageNet statistics, as the datasets do; with ``size`` it is
    first resized so that its longer side is ``size`` (as :func:`~deeplab_utils.data.
    eval_transforms` does), and the probabilities are resized back, so the labels always have
    the picture's own size. Taught in notebook 08.

    Args:
        image: path, ``PIL.Image`` or uint8 array ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)``.
        device: where to run; ``None`` keeps the model where it is, otherwise the model is
            moved there (``"auto"`` picks a GPU if there is one).
        size: longer side to run the model at; ``None`` runs at the picture's size.
        scales, flip: test-time augmentation, see :func:`predict`.

    Returns:
        Class labels ``(H, W)`` int64 on the CPU.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file is not an image, or ``size`` is not a positive int.
        TypeError: ``image`` is of an unsupported type or dtype.
    """
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise ValueError(f"size must be a positive int or None, got {size!r}")
    rgb = _load_rgb(image)  # (H, W, 3) uint8
    if device is None:
        run_on = model_device(model)
    else:
        run_on = pick_device(device)
        model.to(run_on)
    x = torch.from_numpy(rgb).permute(2, 0, 1).float().div(255)  # (3, H, W) in [0, 1]
    x = normalize(x).unsqueeze(0).to(run_on)  # (1, 3, H, W)
    height, width = rgb.shape[:2]
    if size is not None and max(height, width) != size:
        resized = longer_side_size(height, width, size)  # the rule eval_transforms follows
        # Antialias when shrinking, as eval_transforms does (not every MPS build supports it).
        antialias = size < max(height, width) and run_on.type in ("cpu", "cuda")
        x = F.interpolate(
            x, size=resized, mode="bilinear", align_corners=False, antialias=antialias
        )  # (1, 3, h, w), longer side = size
    probs = predict(model, x, scales=scales, flip=flip)  # (1, C, h, w)
    if probs.shape[-2:] != (height, width):
        probs = F.interpolate(probs, size=(height, width), mode="bilinear", align_corners=False)
    return probs[0].argmax(dim=0).cpu()  # (H, W)


def export_model(model: nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    """Export ``model`` with ``torch.export``, height and width left dynamic.

    The program is a self-contained graph (no Python class needed): save it with
    :func:`save_exported`, load it with :func:`load_exported`, run it with
    ``program.module()(images)``. The batch size is fixed to ``example``'s; height and width may
    be any multiples of 16 from 32 up (pad or resize other images first). The model is left in
    eval mode (batch norm uses its running statistics). Taught in notebook 08.

    Args:
        model: maps ``(B, 3, H, W)`` to ``(B, C, H, W)``.
        example: an input ``(B, 3, H, W)`` on the model's device, ``H`` and ``W`` multiples of
            16 and at least 32.

    Raises:
        TypeError, ValueError: ``example`` is not a float 4-D tensor, is smaller than 32x32, or
            its height or width is not a multiple of 16.
    """
    _check_images(example)
    size = tuple(example.shape[-2:])
    if min(size) < _EXPORT_MIN_SIZE:
        raise ValueError(f"example height and width must be >= {_EXPORT_MIN_SIZE}, got {size}")
    if any(side % _EXPORT_MULTIPLE for side in size):
        raise ValueError(
            f"example height and width must be multiples of {_EXPORT_MULTIPLE}, got {size}"
        )
    model.eval()
    # H = 16 * h with h >= 2: the exported graph accepts every multiple of 16 from 32 up.
    height = _EXPORT_MULTIPLE * torch.export.Dim("height_16", min=2)
    width = _EXPORT_MULTIPLE * torch.export.Dim("width_16", min=2)
    return torch.export.export(model, (example,), dynamic_shapes=({2: height, 3: width},))


def save_exported(program: torch.export.ExportedProgram, path: str | Path) -> Path:
    """Save an exported program (``torch.export.save``), creating the folder. Taught in notebook 08.

    Returns:
        The path written (conventionally ending in ``.pt2``).
    """
    if not isinstance(program, torch.export.ExportedProgram):
        raise TypeError(
            f"program must be a torch.export.ExportedProgram, got {type(program).__name__}"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, path)
    return path


def load_exported(path: str | Path) -> torch.export.ExportedProgram:
    """Load a program saved by :func:`save_exported`. Taught in notebook 08.

    Raises:
        FileNotFoundError: nothing at ``path``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no exported model at {path}; save one with save_exported()")
    return torch.export.load(path)
