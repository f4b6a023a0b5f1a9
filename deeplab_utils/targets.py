"""Segmentation targets: the ignore label, and the checks every loss and metric applies, where a
learner's mistake (a float or ``(B, 1, H, W)`` mask for a multi-class loss, a label past the last
class) becomes a one-line error. Objectives layer: torch alone. Taught in notebook 05."""

from __future__ import annotations

import torch

# Target value of pixels that count for nothing (no loss, no gradient, no metric): the course's
# convention, and the value of the "void" border in PASCAL VOC's masks.
IGNORE_INDEX = 255


def check_target(
    target: torch.Tensor,
    prediction_shape: tuple[int, ...],
    *,
    ignore_index: int = IGNORE_INDEX,
    num_classes: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check a target against the logits ``(B, C, H, W)`` or predicted labels ``(B, H, W)`` it is
    scored with; return ``(target with ignored pixels set to 0, boolean mask of valid pixels)``.
    For one-channel logits (binary) the target holds foreground probabilities in ``[0, 1]``, any
    dtype, ``(B, 1, H, W)`` or ``(B, H, W)``: returned float ``(B, 1, H, W)``. Otherwise it holds
    class indices in ``[0, num_classes)`` (default: the logits' ``C``), integer ``(B, H, W)``:
    returned int64. ``ignore_index`` is allowed everywhere.
    """
    shape = tuple(prediction_shape)
    of = "logits" if len(shape) == 4 else "prediction"
    binary = of == "logits" and shape[1] == 1
    layout = "(B, 1, H, W) or (B, H, W)" if binary else "(B, H, W)"
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a torch.Tensor {layout}, got {type(target).__name__}")
    if not binary and (target.is_floating_point() or target.dtype == torch.bool):
        raise TypeError(f"target must be an integer tensor {layout}, got dtype {target.dtype}")
    expected = shape if binary else (shape[0], *shape[-2:])
    checked = target.unsqueeze(1) if binary and target.ndim == 3 else target
    if tuple(checked.shape) != expected:
        raise ValueError(
            f"target shape {tuple(target.shape)} does not match {of} shape {shape}; "
            f"expected {layout if binary else f'target shape {expected}'}"
        )
    checked = checked.float() if binary else checked.long()
    valid = checked != ignore_index
    high = 1 if binary else (num_classes or shape[1]) - 1
    bad = valid & ((checked < 0) | (checked > high))
    if bool(bad.any()):
        allowed = (
            "values must lie in [0, 1]" if binary else f"class indices must lie in [0, {high + 1})"
        )
        raise ValueError(
            f"target {allowed} or equal ignore_index={ignore_index}, got {checked[bad][0].item():g}"
        )
    return torch.where(valid, checked, torch.zeros_like(checked)), valid
