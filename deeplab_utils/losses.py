"""Segmentation losses: cross-entropy, soft Dice and soft IoU (Jaccard), binary and multi-class.

Objectives layer: depends on torch alone, never on the model. Taught in notebook 05.

Conventions shared by every loss here:

* Input is raw logits ``(B, C, H, W)``: one channel means binary (sigmoid), more mean softmax
  over ``C``, both computed stably (``binary_cross_entropy_with_logits`` / ``log_softmax``,
  never ``log(sigmoid(x))``).
* Pixels whose target is ``ignore_index`` (255, the Pascal VOC border label) add nothing to
  the value or the gradient: the cross-entropy is a mean over *valid* pixels, and they are
  masked out of the Dice/IoU sums.
* The soft sums run per class over **the whole batch**, then the scores are averaged over
  classes. Per-image sums would let an image in which a class is absent (or tiny) swing its
  score from 0 to 1 and dominate the gradient; batch sums weigh every pixel equally. The
  seed's binary loss (which flattened the whole batch) makes the same choice.
* ``smooth`` (``s``) is added to numerator and denominator:
  ``Dice = (2·Σ p·g + s) / (Σ p + Σ g + s)`` and ``IoU = (Σ p·g + s) / (Σ p + Σ g − Σ p·g + s)``,
  so a class absent from both prediction and target scores 1 (loss 0) instead of ``0/0``.
* Logits are cast to float32 before any reduction, so the losses are safe under
  ``torch.autocast``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .targets import IGNORE_INDEX, check_target

__all__ = ["IOU", "DiceBCELoss", "DiceCELoss", "IoULoss"]

# Keeps the Dice/IoU ratio finite when smooth=0 and a class is empty everywhere.
_EPS = 1e-12


def _non_negative(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


def _check_logits(logits: torch.Tensor) -> None:
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got dtype {logits.dtype}")
    if logits.ndim != 4:
        raise ValueError(f"logits must have shape (B, C, H, W), got {tuple(logits.shape)}")


def _checked_target(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The target (ignored pixels set to 0) and its valid mask: for one logit channel a float
    ``(B, 1, H, W)`` foreground target, for more an int64 ``(B, H, W)`` of class indices."""
    _check_logits(logits)
    binary = logits.shape[1] == 1
    return check_target(
        target,
        tuple(logits.shape),
        num_classes=2 if binary else logits.shape[1],
        ignore_index=ignore_index,
        binary=binary,
    )


def _probs_and_onehot(
    logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked probabilities and one-hot target, both ``(B, C, H, W)`` float32.

    One channel means binary (sigmoid, the foreground only, as in the seed); more channels
    mean multi-class (softmax over C). Ignored pixels are zero in both, so they add nothing to
    the sums and receive no gradient.
    """
    logits = logits.float()
    if logits.shape[1] == 1:
        probs = torch.sigmoid(logits)  # (B, 1, H, W)
        onehot = target.float()  # already (B, 1, H, W)
        mask = valid.float()  # (B, 1, H, W)
    else:
        probs = torch.softmax(logits, dim=1)  # (B, C, H, W)
        onehot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).float()  # (B, C, H, W)
        mask = valid.unsqueeze(1).float()  # (B, 1, H, W)
    return probs * mask, onehot * mask


def _overlap_sums(
    probs: torch.Tensor, onehot: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-class ``Σ p·g``, ``Σ p`` and ``Σ g`` over the whole batch, each ``(C,)``."""
    dims = (0, 2, 3)
    return (probs * onehot).sum(dims), probs.sum(dims), onehot.sum(dims)


def _soft_dice(probs: torch.Tensor, onehot: torch.Tensor, smooth: float) -> torch.Tensor:
    """Soft Dice per class, ``(C,)``: ``(2·Σ p·g + s) / (Σ p + Σ g + s)``."""
    inter, p_sum, g_sum = _overlap_sums(probs, onehot)
    return (2 * inter + smooth) / (p_sum + g_sum + smooth).clamp_min(_EPS)


def _soft_iou(probs: torch.Tensor, onehot: torch.Tensor, smooth: float) -> torch.Tensor:
    """Soft IoU (Jaccard) per class, ``(C,)``: ``(Σ p·g + s) / (Σ p + Σ g − Σ p·g + s)``."""
    inter, p_sum, g_sum = _overlap_sums(probs, onehot)
    return (inter + smooth) / (p_sum + g_sum - inter + smooth).clamp_min(_EPS)


def _masked_mean(per_pixel: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean over valid pixels; an all-ignored batch gives 0 (with a gradient path), not NaN."""
    return (per_pixel * valid).sum() / valid.sum().clamp_min(1)


class _SmoothedLoss(nn.Module):
    """Validates and keeps the arguments every loss here takes."""

    def __init__(self, smooth: float = 1.0, *, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.smooth = _non_negative("smooth", smooth)
        self.ignore_index = ignore_index


class DiceBCELoss(_SmoothedLoss):
    """Binary segmentation loss: BCE-with-logits + (1 − soft Dice), the seed's loss.

    ``loss = mean_valid BCE(x, g) + 1 − (2·Σ p·g + s) / (Σ p + Σ g + s)`` with ``p = σ(x)``,
    sums over the whole batch (see the module docstring for why). Taught in notebook 05.

    Args:
        smooth: ``s``, added to the Dice numerator and denominator (>= 0).
        ignore_index: target value whose pixels are left out of value and gradient.

    Shapes:
        logits ``(B, 1, H, W)`` raw scores; target ``(B, 1, H, W)`` or ``(B, H, W)`` of 0/1
        (float, int or bool; soft labels in [0, 1] are accepted). Returns a scalar.
    """

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """logits ``(B, 1, H, W)``, target ``(B, 1, H, W)`` or ``(B, H, W)`` -> scalar."""
        _check_logits(logits)
        if logits.shape[1] != 1:
            raise ValueError(
                "binary loss expects logits with 1 channel (B, 1, H, W), got "
                f"{tuple(logits.shape)}; for C > 1 classes use DiceCELoss"
            )
        target, valid = _checked_target(logits, target, self.ignore_index)
        logits = logits.float()
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        probs, onehot = _probs_and_onehot(logits, target, valid)
        dice = _soft_dice(probs, onehot, self.smooth)  # (1,)
        return _masked_mean(bce, valid) + (1 - dice.mean())


class IoULoss(_SmoothedLoss):
    """Soft Jaccard loss, ``1 − soft IoU``, binary or multi-class.

    ``IoU_c = (Σ p·g + s) / (Σ p + Σ g − Σ p·g + s)`` per class ``c``, sums over the whole
    batch, loss ``= 1 − mean_c IoU_c``. One logit channel means binary (``p = σ(x)``, the
    foreground class only, as in the seed); ``C > 1`` channels mean softmax over classes, and
    every class is averaged (a class absent from the batch scores ``s / (Σ p + s)``, which
    penalises predicting it). Taught in notebook 05.

    Args:
        smooth: ``s``, added to the IoU numerator and denominator (>= 0).
        ignore_index: target value whose pixels are left out of value and gradient.

    Shapes:
        logits ``(B, C, H, W)``; target ``(B, 1, H, W)`` or ``(B, H, W)`` of 0/1 when ``C == 1``,
        ``(B, H, W)`` int class indices when ``C > 1``. Returns a scalar.
    """

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """logits ``(B, C, H, W)``, target as in the class docstring -> scalar."""
        target, valid = _checked_target(logits, target, self.ignore_index)
        probs, onehot = _probs_and_onehot(logits, target, valid)
        return 1 - _soft_iou(probs, onehot, self.smooth).mean()


IOU = IoULoss  # the seed's name, kept so that `IOU()` keeps working


class DiceCELoss(_SmoothedLoss):
    """Multi-class loss: ``ce_weight · CE + dice_weight · (1 − mean_c soft Dice_c)``.

    The multi-class counterpart of :class:`DiceBCELoss`. Cross-entropy is the mean over valid
    pixels (weighted by ``class_weights`` like ``F.cross_entropy(weight=...)``); soft Dice is
    ``(2·Σ p·g + s) / (Σ p + Σ g + s)`` per class with ``p = softmax(x)``, sums over the whole
    batch, averaged over all classes. Taught in notebook 05.

    Args:
        smooth: ``s``, added to the Dice numerator and denominator (>= 0).
        ignore_index: target value whose pixels are left out of value and gradient.
        dice_weight: weight of the Dice term (>= 0; 0 gives plain cross-entropy).
        ce_weight: weight of the cross-entropy term (>= 0).
        class_weights: optional per-class CE weights, length ``C`` (>= 0), e.g. to counter
            class imbalance; they do not affect the Dice term.

    Shapes:
        logits ``(B, C, H, W)`` with ``C >= 2``; target ``(B, H, W)`` int64. Returns a scalar.
    """

    class_weights: torch.Tensor | None

    def __init__(
        self,
        smooth: float = 1.0,
        *,
        ignore_index: int = IGNORE_INDEX,
        dice_weight: float = 1.0,
        ce_weight: float = 1.0,
        class_weights: Sequence[float] | torch.Tensor | None = None,
    ) -> None:
        super().__init__(smooth, ignore_index=ignore_index)
        self.dice_weight = _non_negative("dice_weight", dice_weight)
        self.ce_weight = _non_negative("ce_weight", ce_weight)
        if class_weights is not None:
            class_weights = torch.as_tensor(class_weights, dtype=torch.float32)
            if class_weights.ndim != 1 or bool((class_weights < 0).any()):
                raise ValueError(
                    "class_weights must be a 1-D sequence of numbers >= 0, "
                    f"got {class_weights.tolist()}"
                )
        # A buffer, so that `.to(device)` moves the weights along with the module.
        self.register_buffer("class_weights", class_weights, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """logits ``(B, C, H, W)``, target ``(B, H, W)`` int64 -> scalar."""
        _check_logits(logits)
        num_classes = logits.shape[1]
        if num_classes < 2:
            raise ValueError(
                f"DiceCELoss needs C >= 2 logit channels, got {num_classes}; "
                "for binary segmentation with one channel use DiceBCELoss"
            )
        weights = self.class_weights
        if weights is not None and weights.numel() != num_classes:
            raise ValueError(
                f"class_weights has {weights.numel()} entries but logits have {num_classes} classes"
            )
        clean, valid = _checked_target(logits, target, self.ignore_index)
        logits = logits.float()
        per_pixel = F.cross_entropy(logits, clean, weight=weights, reduction="none")  # (B, H, W)
        if weights is None:
            ce = _masked_mean(per_pixel, valid)
        else:
            # Same normalisation as F.cross_entropy(weight=w): divide by Σ w[target].
            pixel_w = weights[clean] * valid  # (B, H, W)
            ce = (per_pixel * valid).sum() / pixel_w.sum().clamp_min(_EPS)
        probs, onehot = _probs_and_onehot(logits, clean, valid)
        dice = _soft_dice(probs, onehot, self.smooth)  # (C,)
        return self.ce_weight * ce + self.dice_weight * (1 - dice.mean())
