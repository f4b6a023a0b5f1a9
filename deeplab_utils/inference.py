"""Inference: test-time augmentation, segmenting a picture, and exporting the model.

Training layer (4). Taught in notebook 08. The DeepLab papers evaluate with two test-time
augmentations (DeepLabv3, Sec. 4.3 "Inference strategy"; the "MS" and "Flip" columns of
DeepLabv3+'s Tables 3-5): the image is run at several scales and left-right flipped, and the
class probabilities of all runs are averaged.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .data import longer_side_size, normalize
from .runtime import model_device, pick_device

# DeepLabv3, Sec. 4.3 and DeepLabv3+, Sec. 4 ("MS" rows): the scales of the multi-scale test.
PAPER_SCALES: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
# Exported sizes are multiples of 16 from 32 up: the backbone's four halvings are then exact, so
# one traced graph serves every size (older torch.export, Colab's 2.11, refuses rounding guards)
# and no size collapses to ResNet-50's 1x1 map at output stride 16.
EXPORT_MULTIPLE = 16


def _resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


@torch.no_grad()
def predict(
    model: nn.Module, images: torch.Tensor, *, scales: Sequence[float] = (1.0,), flip: bool = False
) -> torch.Tensor:
    """Class probabilities ``(B, C, H, W)`` of normalised ``images (B, 3, H, W)``, averaged over
    test-time augmentations.

    Each scale ``s`` runs the model on the batch resized to ``round(s*H) x round(s*W)`` and
    resizes its logits back before the softmax; with ``flip`` each scale also runs on the
    mirrored batch, whose logits are mirrored back. ``scales=PAPER_SCALES, flip=True`` is the
    paper's "MS + Flip"; ``(1.0,)`` a plain forward pass. Runs in eval mode, then restores the
    model's mode. Taught in notebook 08.
    """
    if images.ndim != 4 or not images.is_floating_point():
        raise ValueError(
            f"images must be a float (B, 3, H, W) batch, got {images.dtype} "
            f"{tuple(images.shape)}; use segment_image() for a uint8 picture"
        )
    if not scales or min(scales) <= 0:
        raise ValueError(f"scales must be positive numbers, got {scales!r}")
    size, was_training, total = images.shape[-2:], model.training, 0.0
    model.eval()
    for s in scales:
        scaled = (max(1, round(s * size[0])), max(1, round(s * size[1])))
        x = images if scaled == tuple(size) else _resize(images, scaled)
        for mirrored in (False, True) if flip else (False,):
            logits = model(x.flip(-1) if mirrored else x)  # (B, C, s*H, s*W)
            logits = logits.flip(-1) if mirrored else logits  # back to the original orientation
            if logits.shape[-2:] != size:
                logits = _resize(logits, size)  # (B, C, H, W)
            total = total + logits.float().softmax(dim=1)
    model.train(was_training)
    return total / (len(scales) * (2 if flip else 1))


def _load_rgb(image: str | Path | Image.Image | np.ndarray) -> np.ndarray:
    """A path, PIL image or uint8 array ``(H, W)``, ``(H, W, 3|4)`` -> uint8 ``(H, W, 3)``."""
    if isinstance(image, str | Path):  # Pillow's errors name a missing or unreadable file
        with Image.open(image) as opened:
            image = opened.convert("RGB")
    array = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    bad_shape = array.ndim not in (2, 3) or array.shape[2:] not in ((), (3,), (4,))
    if array.dtype != np.uint8 or bad_shape:
        raise ValueError(f"image must be a path, a PIL image or a uint8 array (H, W, 3); got "
                         f"{array.dtype} {array.shape}")  # fmt: skip
    if array.ndim == 2:  # greyscale
        array = np.repeat(array[:, :, None], 3, axis=2)
    return np.array(array[:, :, :3])  # a writable copy; RGBA -> RGB: drop alpha


def segment_image(
    model: nn.Module,
    image: str | Path | Any,
    *,
    device: str | torch.device | None = None,
    size: int | None = None,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
) -> torch.Tensor:
    """Class labels ``(H, W)`` int64 (on the CPU) of one picture: a file path, a PIL image or a
    uint8 ``(H, W, 3)`` array.

    The picture is normalised as the datasets do; with ``size`` it is first resized so that its
    longer side is ``size`` (as ``eval_transforms`` does) and the probabilities resized back,
    so the labels have the picture's own size. ``device`` moves the model there (``None``: it
    stays where it is); ``scales`` and ``flip`` are :func:`predict`'s. Taught in notebook 08.
    """
    rgb = _load_rgb(image)  # (H, W, 3) uint8
    run_on = model_device(model) if device is None else pick_device(device)
    model.to(run_on)
    x = torch.from_numpy(rgb).permute(2, 0, 1).float().div(255)  # (3, H, W) in [0, 1]
    x = normalize(x).unsqueeze(0).to(run_on)  # (1, 3, H, W)
    height, width = rgb.shape[:2]
    if size is not None and max(height, width) != size:
        # Antialias when shrinking, as eval_transforms does (not every MPS build supports it).
        antialias = size < max(height, width) and run_on.type in ("cpu", "cuda")
        resized = longer_side_size(height, width, size)  # the rule eval_transforms follows
        x = F.interpolate(
            x, size=resized, mode="bilinear", align_corners=False, antialias=antialias
        )
    probs = predict(model, x, scales=scales, flip=flip)  # (1, C, h, w)
    if probs.shape[-2:] != (height, width):
        probs = _resize(probs, (height, width))
    return probs[0].argmax(dim=0).cpu()  # (H, W)


def export_model(model: nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    """``model`` as a self-contained ``torch.export`` graph, height and width left dynamic.

    Save it with ``torch.export.save(program, path)``, load it with ``torch.export.load(path)``,
    run it with ``program.module()(images)``: the batch size is ``example``'s, height and width any
    multiples of 16 from 32 up (pad or resize other pictures first). The model is left in eval
    mode. Taught in notebook 08.
    """
    if min(example.shape[-2:]) < 2 * EXPORT_MULTIPLE or any(
        side % EXPORT_MULTIPLE for side in example.shape[-2:]
    ):
        raise ValueError(
            f"example height and width must be multiples of {EXPORT_MULTIPLE}, at "
            f"least {2 * EXPORT_MULTIPLE}; got {tuple(example.shape[-2:])}"
        )
    model.eval()
    height = EXPORT_MULTIPLE * torch.export.Dim("height_16", min=2)  # H = 16 h with h >= 2
    width = EXPORT_MULTIPLE * torch.export.Dim("width_16", min=2)
    return torch.export.export(model, (example,), dynamic_shapes=({2: height, 3: width},))
