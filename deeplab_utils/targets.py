"""Segmentation targets: the ignore label, and the one check every loss and metric applies.

Objectives layer: depends on torch alone. Taught in notebook 05.
"""

from __future__ import annotations

import torch

__all__ = ["IGNORE_INDEX", "check_target"]

# Target value of pixels that count for nothing (no loss, no gradient, no metric): the course's
# convention, and the value of the "void" border in PASCAL VOC's masks.
IGNORE_INDEX = 255


def check_target(
    target: torch.Tensor,
    prediction_shape: tuple[int, ...],
    *,
    num_classes: int,
    ignore_index: int = IGNORE_INDEX,
    binary: bool = False,
    of: str = "logits",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check a target against the prediction it is scored with; return it and its valid pixels.

    By default the target holds class indices: an integer tensor ``(B, H, W)`` (the
    prediction's shape without its class dimension) with values in ``[0, num_classes)`` or
    ``ignore_index``; it is returned as int64. With ``binary=True`` (a one-channel prediction
    ``(B, 1, H, W)``) it holds foreground probabilities: float, int or bool, ``(B, 1, H, W)`` or
    ``(B, H, W)``, values in ``[0, 1]`` or ``ignore_index``; it is returned as float
    ``(B, 1, H, W)``.

    Args:
        prediction_shape: the logits' ``(B, C, H, W)`` or the predicted labels' ``(B, H, W)``.
        of: what the prediction is called in messages.

    Returns:
        ``(target, valid)``: the target with ignored pixels set to 0, and the boolean mask of
        the pixels that are not ignored, both of the returned target's shape.

    Raises:
        TypeError: for a non-tensor, a complex target, or a non-integer class-index target.
        ValueError: for a shape that does not match, or a value out of range (naming it).
    """
    layout = "(B, 1, H, W) or (B, H, W)" if binary else "(B, H, W)"
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}")
    if target.is_complex() or (
        not binary and (target.is_floating_point() or target.dtype == torch.bool)
    ):
        kind = "a real (float, int or bool) tensor" if binary else "an integer tensor"
        raise TypeError(f"target must be {kind} {layout}, got dtype {target.dtype}")
    given = tuple(target.shape)
    expected = tuple(prediction_shape)
    if len(expected) == 4 and not binary:
        expected = (expected[0], *expected[2:])  # (B, C, H, W) -> (B, H, W)
    if binary and target.ndim == 3:
        target = target.unsqueeze(1)  # (B, H, W) -> (B, 1, H, W)
    if tuple(target.shape) != expected:
        raise ValueError(
            f"target shape {given} does not match {of} shape {tuple(prediction_shape)}; "
            f"expected {layout if binary else f'target shape {expected}'}"
        )
    target = target.float() if binary else target.long()
    valid = target != ignore_index
    bad = valid & ((target < 0) | (target > (1 if binary else num_classes - 1)))
    if bool(bad.any()):
        allowed = (
            "values must lie in [0, 1]"
            if binary
            else f"class indices must lie in [0, {num_classes})"
        )
        raise ValueError(
            f"target {allowed} or equal ignore_index={ignore_index}, got {target[bad][0].item():g}"
        )
    return torch.where(valid, target, torch.zeros_like(target)), valid
