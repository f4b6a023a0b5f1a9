"""Scoring at each picture's original resolution: logits mapped back to the annotation's size.

Training layer (4): uses the data layer's resize rule. Taught in notebook 08.

The PASCAL VOC protocol scores every pixel of the original annotation. When the model sees a
resized picture (``original_size_eval_transforms``: longer side resized to ``S``, padded
bottom/right to ``S x S``), its logits are cropped to the picture and resized to the
annotation's ``H x W`` before the argmax. Scoring masks resized to the model's input
(``eval_transforms``) is cheaper but not the protocol: nearest-neighbour shrinking drops thin
structures and border pixels.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F

from .data import longer_side_size

__all__ = ["pairs_at_mask_size", "restore_original_size"]


def restore_original_size(logits: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Map logits of a resized-and-padded input back to the original picture's ``size``.

    The input must hold the picture top-left, resized so that its longer side is the input's
    (:func:`~deeplab_utils.data.longer_side_size`), padding after it, as the eval transforms
    make it. The logits are cropped to the picture and resized bilinearly, in float32 whatever
    the autocast dtype. Taught in notebook 08.

    Args:
        logits: ``(B, C, h, w)`` at the model's input size (``C`` may be 1 for a binary model).
        size: the original ``(H, W)``.

    Returns:
        Float32 logits ``(B, C, H, W)``.

    Raises:
        ValueError: if ``logits`` is not 4-D or the picture's region does not fit in them.
    """
    if logits.ndim != 4:
        raise ValueError(f"logits must be (B, C, h, w), got shape {tuple(logits.shape)}")
    height, width = (int(s) for s in size)
    side = max(logits.shape[-2:])
    h, w = longer_side_size(height, width, side)
    if h > logits.shape[-2] or w > logits.shape[-1]:
        raise ValueError(
            f"a {height}x{width} picture resized to longer side {side} is {h}x{w}, which does "
            f"not fit in logits of size {logits.shape[-2]}x{logits.shape[-1]}; pad the input "
            "to a square (as original_size_eval_transforms does)"
        )
    content = logits[..., :h, :w].float()  # (B, C, h', w'): the picture, without padding
    if (h, w) == (height, width):
        return content
    return F.interpolate(content, size=(height, width), mode="bilinear", align_corners=False)


def pairs_at_mask_size(
    logits: torch.Tensor, masks: torch.Tensor | Sequence[torch.Tensor]
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Pair logits with their masks for scoring, each at the mask's own size.

    Masks of the logits' size (``(B, H, W)`` or ``(B, 1, H, W)``) are yielded once, as they
    are; otherwise (a list of ``(H_i, W_i)`` masks from
    :func:`~deeplab_utils.data.collate_original_size`, or a batch of another size) each image's
    logits go through :func:`restore_original_size`. Masks are moved to the logits' device.
    Taught in notebook 08.

    Yields:
        ``(logits (b, C, H, W), masks (b, H, W))``: the whole batch, or one image at a time.

    Raises:
        ValueError: if the number of masks differs from the batch size.
    """
    if isinstance(masks, torch.Tensor) and masks.shape[-2:] == logits.shape[-2:]:
        yield logits, masks.to(logits.device, non_blocking=True)
        return
    if len(masks) != logits.shape[0]:
        raise ValueError(f"got {len(masks)} masks for a batch of {logits.shape[0]} logits")
    for logit, mask in zip(logits, masks, strict=True):
        restored = restore_original_size(logit[None], mask.shape[-2:])  # (1, C, H, W)
        yield restored, mask[None].to(logits.device, non_blocking=True)  # (1, H, W)
