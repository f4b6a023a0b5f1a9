"""Segmentation losses: cross-entropy, soft Dice and soft IoU (Jaccard), binary and multi-class.

Objectives layer: torch alone. Taught in notebook 05. Logits ``(B, C, H, W)``: one channel is
binary (sigmoid), more are softmax, computed stably in float32 (safe under autocast). Targets
equal to ``ignore_index`` (255) add nothing to value or gradient. Soft scores sum over **the
whole batch** per class, then average the classes: per-image sums would let an image where a
class is absent or tiny swing its score from 0 to 1 and dominate the gradient (the seed made the
same choice). ``smooth`` ``s`` makes a class absent from prediction and target score 1 (loss 0),
not ``0/0``: ``Dice = (2·Σ p·g + s) / (Σ p + Σ g + s)``,
``IoU = (Σ p·g + s) / (Σ p + Σ g − Σ p·g + s)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .targets import IGNORE_INDEX, check_target

_EPS = 1e-12  # keeps the Dice/IoU ratio finite when smooth=0 and a class is empty everywhere


def _soft_score(
    logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, smooth: float, iou: bool
) -> torch.Tensor:
    """Soft Dice, or soft IoU with ``iou``, per class ``(C,)``, from sums over the batch's valid
    pixels. One channel: the foreground's sigmoid, as in the seed; more: softmax over ``C``."""
    logits = logits.float()
    if logits.shape[1] == 1:
        probs, onehot, mask = torch.sigmoid(logits), target.float(), valid.float()
    else:
        probs = torch.softmax(logits, dim=1)
        onehot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).float()
        mask = valid.unsqueeze(1).float()  # (B, 1, H, W)
    probs, onehot = probs * mask, onehot * mask  # (B, C, H, W), 0 on ignored pixels
    inter = (probs * onehot).sum((0, 2, 3))
    total = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    if iou:
        return (inter + smooth) / (total - inter + smooth).clamp_min(_EPS)
    return (2 * inter + smooth) / (total + smooth).clamp_min(_EPS)


class _SmoothedLoss(nn.Module):
    def __init__(self, smooth: float = 1.0, *, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.smooth = float(smooth)
        self.ignore_index = ignore_index

    def _checked(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(target, valid)`` of :func:`check_target`, for logits that must be ``(B, C, H, W)``
        (not, say, a squeezed one-class model's output)."""
        if logits.ndim != 4:
            raise ValueError(f"logits must have shape (B, C, H, W), got {tuple(logits.shape)}")
        return check_target(target, logits.shape, ignore_index=self.ignore_index)


class DiceBCELoss(_SmoothedLoss):
    """Binary segmentation loss, the seed's: ``mean_valid BCE(x, g) + 1 − soft Dice(σ(x), g)``.
    Taught in notebook 05."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """logits ``(B, 1, H, W)``, target ``(B, 1, H, W)`` or ``(B, H, W)`` of 0/1 (float, int or
        bool; soft labels in [0, 1] too) -> scalar."""
        if logits.shape[1] != 1:
            raise ValueError(
                "binary loss expects logits with 1 channel (B, 1, H, W), got "
                f"{tuple(logits.shape)}; for C > 1 classes use DiceCELoss"
            )
        target, valid = self._checked(logits, target)
        logits = logits.float()
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        # The mean over valid pixels; all ignored gives 0 (with a gradient path), not NaN.
        bce = (bce * valid).sum() / valid.sum().clamp_min(1)
        dice = _soft_score(logits, target, valid, self.smooth, iou=False)  # (1,)
        return bce + (1 - dice.mean())


class IoULoss(_SmoothedLoss):
    """Soft Jaccard loss, ``1 − mean_c soft IoU_c``, binary (one logit channel: the foreground's
    ``σ(x)`` only, as in the seed) or multi-class (softmax; every class is averaged, one absent
    from the batch scoring ``s / (Σ p + s)``, which penalises predicting it). Taught in notebook 05.
    """

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """logits ``(B, C, H, W)``, target as :class:`DiceBCELoss`'s for ``C == 1``, as
        :class:`DiceCELoss`'s otherwise -> scalar."""
        target, valid = self._checked(logits, target)
        return 1 - _soft_score(logits, target, valid, self.smooth, iou=True).mean()


IOU = IoULoss  # the seed's name, kept so that `IOU()` keeps working


class DiceCELoss(_SmoothedLoss):
    """Multi-class loss, :class:`DiceBCELoss`'s counterpart: ``CE + dice_weight · (1 − mean_c
    soft Dice_c(softmax(x)))``; ``dice_weight=0`` is plain cross-entropy. ``class_weights`` (one
    per class, e.g. against imbalance) weigh the cross-entropy as ``F.cross_entropy`` does, not
    the Dice term. Taught in notebook 05.
    """

    class_weights: torch.Tensor | None

    def __init__(
        self,
        smooth: float = 1.0,
        *,
        ignore_index: int = IGNORE_INDEX,
        dice_weight: float = 1.0,
        class_weights: Sequence[float] | torch.Tensor | None = None,
    ) -> None:
        super().__init__(smooth, ignore_index=ignore_index)
        self.dice_weight = float(dice_weight)
        if class_weights is not None:
            class_weights = torch.as_tensor(class_weights, dtype=torch.float32)
        # A buffer, so that `.to(device)` moves the weights along with the module.
        self.register_buffer("class_weights", class_weights, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """logits ``(B, C, H, W)``, ``C >= 2``, target ``(B, H, W)`` int64 -> scalar."""
        if logits.shape[1] < 2:
            raise ValueError(
                f"DiceCELoss needs C >= 2 logit channels, got {logits.shape[1]}; "
                "for binary segmentation with one channel use DiceBCELoss"
            )
        target, valid = self._checked(logits, target)
        logits, weights = logits.float(), self.class_weights
        per_pixel = F.cross_entropy(logits, target, weight=weights, reduction="none")  # (B, H, W)
        # The mean over valid pixels, or Σ w[target] as F.cross_entropy(weight=w) divides by.
        norm = valid if weights is None else weights[target] * valid
        ce = (per_pixel * valid).sum() / norm.sum().clamp_min(_EPS)
        dice = _soft_score(logits, target, valid, self.smooth, iou=False)  # (C,)
        return ce + self.dice_weight * (1 - dice.mean())
