"""Self-checks for notebook 05 (losses and metrics): DiceBCE, soft IoU, DiceCE and mean IoU."""

import inspect
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ..losses import DiceBCELoss, DiceCELoss, IoULoss, _soft_score
from ..metrics import (
    SegmentationMetrics,
    _iou,
    mean_iou,
    miou_interval,
    per_image_confusion,
    trimap_miou,
)
from ._common import Hint, build, close, compare, exercise_check, passed, run

Case = tuple[str, torch.Tensor, torch.Tensor, dict]  # (name, logits, target, constructor kwargs)


def _loss_and_grad(loss_fn: Callable, logits: torch.Tensor, target: torch.Tensor):
    """The loss value (0-d) and its gradient with respect to the logits."""
    x = logits.detach().clone().requires_grad_()
    loss = loss_fn(x, target.clone())
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise TypeError(f"the loss must be a scalar tensor, got {loss!r}")
    if not loss.requires_grad:
        why = "did you use a hard threshold, `.item()` or `.detach()`?"
        raise TypeError(f"the loss has no gradient path to the logits ({why})")
    (grad,) = torch.autograd.grad(loss.reshape(()), x)
    return loss.detach().reshape(()), grad


def _blob(*shape: int) -> torch.Tensor:
    return (torch.rand(*shape) > 0.6).float()


def _labels(classes: int, *shape: int) -> torch.Tensor:
    return torch.randint(0, classes, shape)


def _binary_loss_cases(cls: Any) -> list[Case]:
    """Logits and float 0/1 targets, ``(B, 1, H, W)``; ignored pixels if ``cls`` takes them."""
    target, wrong_target, wrong = _blob(2, 1, 8, 8), _blob(2, 1, 6, 7), torch.randn(2, 1, 6, 7)
    wrong[0, 0, :2, :2] = torch.where(wrong_target[0, 0, :2, :2] > 0, -30.0, 30.0)
    wrong[1, 0, :2, :2] = torch.where(wrong_target[1, 0, :2, :2] > 0, -120.0, 120.0)  # e^120: inf
    cases = [
        ("random logits, batch 2, 8x8", torch.randn(2, 1, 8, 8) * 2, target, {}),
        ("perfect prediction (logits +-10)", (target * 2 - 1) * 10.0, target, {}),
        ("empty target mask", torch.randn(2, 1, 6, 6), torch.zeros(2, 1, 6, 6), {}),
        ("batch 1, odd size 7x11", torch.randn(1, 1, 7, 11), _blob(1, 1, 7, 11), {}),
        ("batch 3, odd size 5x9", torch.randn(3, 1, 5, 9) * 3, _blob(3, 1, 5, 9), {}),
        ("confidently wrong pixels (logits +-30, +-120)", wrong, wrong_target, {}),
        ("smooth=0.5", torch.randn(2, 1, 5, 6) * 2, _blob(2, 1, 5, 6), {"smooth": 0.5}),
    ]
    target = _blob(2, 1, 9, 7)
    target[:, :, 0] = 255.0  # an ignored row
    target[1, 0, :, -2:] = 255.0
    ignored = ("ignored pixels (255)", torch.randn(2, 1, 9, 7), target, {})
    try:
        return cases + [ignored] if "ignore_index" in inspect.signature(cls).parameters else cases
    except (TypeError, ValueError):  # no signature to read
        return cases


def _multiclass_loss_cases() -> list[Case]:
    """Logits ``(B, C, H, W)`` and an int64 target ``(B, H, W)``."""
    target, absent = _labels(4, 2, 8, 8), _labels(3, 2, 6, 7)  # absent: class 3 of 4
    ignored, confident_t = _labels(3, 2, 7, 6), _labels(3, 1, 5, 6)
    ignored[:, 0] = 255
    ignored[1, :, -2:] = 255
    wrong = F.one_hot((confident_t + 1) % 3, 3).permute(0, 3, 1, 2) * 120.0  # 120 above the rest
    confident = torch.randn(1, 3, 5, 6)
    confident[..., :2, :3] = wrong[..., :2, :3]  # six pixels sure of a wrong class
    perfect = F.one_hot(target, 4).permute(0, 3, 1, 2) * 20.0 - 10  # e^-120 is 0 in float32
    return [
        ("random logits, 4 classes, batch 2, 8x8", torch.randn(2, 4, 8, 8), target, {}),
        ("perfect prediction (logits +-10)", perfect, target, {}),
        ("class 3 absent from the batch", torch.randn(2, 4, 6, 7) * 2, absent, {}),
        ("batch 1, 3 classes, odd size 7x11", torch.randn(1, 3, 7, 11), _labels(3, 1, 7, 11), {}),
        ("ignored pixels (255)", torch.randn(2, 3, 7, 6), ignored, {}),
        ("confidently wrong pixels (logit gap 120)", confident, confident_t, {}),
        ("smooth=0.5", torch.randn(2, 3, 5, 6) * 2, _labels(3, 2, 5, 6), {"smooth": 0.5}),
    ]


# The hint of the cases that target a mistake, by the start of their name.
_LOSS_HINTS = {
    "ignored": Hint(
        "pixels whose target is ignore_index (255) must count nowhere in the loss: take them out "
        "of the soft sums and average the cross-entropy over the valid pixels only.",
        "make a map that says, pixel by pixel, whether the target counts: where do the ignored "
        "pixels enter your sums and your average now, and what keeps them out of both?",
    ),
    "confidently wrong pixels (logit gap": Hint(
        "a confidently wrong pixel: e^-120 is 0 in float32, so the softmax gives its true class "
        "exactly 0 and the log of it is -inf. Compute the cross-entropy from the logits.",
        "take the log before the exponentials can cancel: a log-softmax, or torch.nn.functional's "
        "cross-entropy, which also leaves the per-pixel values unreduced if you ask.",
    ),
    "confidently": Hint(
        "a confidently wrong pixel: its probability of the true class is exactly 0 in float32 "
        "(sigmoid(30) is 1.0), so the log is -inf (F.binary_cross_entropy clamps it at -100 and "
        "gives that pixel no gradient). Compute the cross-entropy from the logits.",
        "the log of a sigmoid or of a softmax can be written with the logits themselves, and "
        "then never takes log(0); torch.nn.functional has such cross-entropies, which can also "
        "leave the per-pixel values unreduced, for you to average over the valid pixels.",
    ),
    "smooth": "the loss was built with smooth=0.5: use self.smooth, not the constant 1, in both "
    "the numerator and the denominator.",
    "gradient": "the value matches but not its gradient: compute everything from the logits "
    "with differentiable torch operations (sigmoid, sums), no `.item()` or thresholds.",
}


def _hint_for(name: str, hints: dict[str, Any], default: Any) -> Any:
    return next((hint for start, hint in hints.items() if name.startswith(start)), default)


def _check_loss(
    cls: Any, reference: type, cases: list[Case], hint: Hint, mistakes: tuple = ()
) -> None:
    """Compare value and gradient of ``cls(**kwargs)`` with ``reference(**kwargs)`` per case;
    ``mistakes`` are ``(loss_fn(logits, target, **kwargs), hint)``: a value equal to one's
    gets its hint."""
    for name, logits, target, kwargs in cases:
        exp_value, exp_grad = _loss_and_grad(reference(**kwargs), logits, target)
        value, grad = run(name, _loss_and_grad, build(cls, **kwargs), logits, target)
        value_hint = _hint_for(name, _LOSS_HINTS, hint)
        made = (h for wrong, h in mistakes if close(value, wrong(logits, target, **kwargs)))
        value_hint = next(made, value_hint)
        compare(f"{name} (loss value)", value, exp_value, hint=value_hint)
        grad_hint = value_hint if name.startswith("confidently") else _LOSS_HINTS["gradient"]
        compare(f"{name} (gradient w.r.t. the logits)", grad, exp_grad, hint=grad_hint)
    passed(len(cases), f"your loss equals deeplab_utils.{reference.__name__} (value and gradient).")


@exercise_check(DiceBCELoss)
def check_dice_bce_loss(cls: type) -> None:
    """``cls(smooth=1.0)``: value and gradient (where BCE from ``sigmoid(x)`` breaks too)."""
    hint = Hint(
        "the loss is the mean binary cross-entropy (from the logits) plus 1 - the soft Dice, "
        "whose sums run over the whole batch; mind the factor 2 of the Dice.",
        "the soft Dice is twice the overlap of the probabilities and the target over their "
        "total, both smoothed by self.smooth, with every sum over the whole batch; the "
        "cross-entropy is a mean over the valid pixels.",
    )
    _check_loss(cls, DiceBCELoss, _binary_loss_cases(cls), hint)


def _iou_from_smoothed_dice(logits, target, smooth=1.0, ignore_index=255) -> torch.Tensor:
    """1 - D / (2 - D), section 3's identity, applied to the smoothed Dice D: a mistake."""
    dice = _soft_score(logits, target, target != ignore_index, smooth, iou=False)[0]  # 1 class
    return 1 - dice / (2 - dice)


_IOU_FROM_DICE = (
    _iou_from_smoothed_dice,
    "section 3's identity between Dice and IoU holds for the unsmoothed scores only: the "
    "smoothing s enters the two differently. Compute the IoU from the overlap and the union.",
)


@exercise_check(IoULoss)
def check_iou_loss(cls: type) -> None:
    """A binary soft-IoU loss, on the cases of :func:`check_dice_bce_loss`."""
    hint = Hint(
        "the union is what prediction and target cover together: count their overlap once.",
        "the union is the total of the probabilities and the target minus their overlap; "
        "smooth both the overlap and the union by self.smooth, and sum over the whole batch.",
    )
    _check_loss(cls, IoULoss, _binary_loss_cases(cls), hint, mistakes=(_IOU_FROM_DICE,))


@exercise_check(DiceCELoss)
def check_dice_ce_loss(cls: type) -> None:
    """``cls(smooth=1.0, ignore_index=255)``, ``CE + 1 - mean_c Dice_c``: value and gradient."""
    hint = Hint(
        "cross-entropy from log_softmax, averaged over the valid pixels; soft Dice per class "
        "from softmax and the one-hot target, sums over the whole batch (every image and "
        "pixel), then the mean over all C classes, absent ones included.",
        "the Dice needs the target in the probabilities' layout, one channel per class; an "
        "ignored pixel has no class to encode, so what do you do with it before and after? "
        "Over which dimensions does the Dice of one class sum?",
    )
    _check_loss(cls, DiceCELoss, _multiclass_loss_cases(), hint)


_MIOU_HINTS = {
    "a batch": "is the batch's mIoU the mean of its images' mIoUs, or the mIoU of all its pixels "
    "counted together, as the papers count a whole validation set?",
    "ignored": "which row of the matrix does a pixel whose target is ignore_index belong to?",
    "classes 3 and 4 absent": "what are TP + FP + FN for a class absent from both masks, and "
    "what can a mean do with 0/0?",
    "class 3 in the target": "a class in the target that is never predicted: what are its TP "
    "and its FN, so what is its IoU, and should a class the model misses cost nothing?",
    "class 3 predicted": "a class predicted but in no target: what are its TP and its FP, so "
    "what is its IoU, and should false alarms cost nothing?",
}


# Everything of the package's that counts a confusion matrix or turns one into IoUs.
_MIOU_WATCHED = (SegmentationMetrics, per_image_confusion, _iou, trimap_miou, miou_interval)


@exercise_check(mean_iou, also_watch=_MIOU_WATCHED)
def check_miou(fn: Callable[..., float]) -> None:
    """``fn(pred, target, num_classes, ignore_index=255) -> float``, the batch's mIoU."""

    def mostly_right(target: torch.Tensor, classes: int = 3) -> torch.Tensor:
        return torch.where(torch.rand(target.shape) < 0.3, (target + 1) % classes, target)

    one_t, batch_t = _labels(3, 1, 5, 6), _labels(3, 3, 7, 9)
    batch_t[0] = 0  # an all-background image, so per-image means differ from the batch's
    ignore_t, ignore_p = _labels(3, 2, 6, 7), _labels(3, 2, 6, 7)  # every prediction ignored
    ignore_t[:, :2] = 255
    never_t = _labels(4, 2, 5, 6)
    never_p = mostly_right(never_t, 4).clamp(max=2)  # class 3 is never predicted
    extra_t = _labels(3, 1, 4, 7)
    extra_p = mostly_right(extra_t)
    extra_p[0, 0, :3] = 3  # class 3 predicted, but in no target
    example_t = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 1], [0, 2, 2, 255], [0, 2, 2, 2]]])
    example_p = torch.tensor([[[0, 0, 1, 0], [0, 1, 1, 1], [0, 2, 1, 2], [0, 0, 2, 2]]])
    cases = [  # (name, pred (B, H, W), target (B, H, W), num_classes)
        ("one 5x6 mask, nothing ignored", mostly_right(one_t), one_t, 3),
        ("a batch of 3 masks, 7x9", mostly_right(batch_t), batch_t, 3),
        ("ignored pixels (target 255)", ignore_p, ignore_t, 3),
        ("classes 3 and 4 absent from both masks", mostly_right(one_t), one_t, 5),
        ("class 3 in the target but never predicted", never_p, never_t, 4),
        ("class 3 predicted but in no target", extra_p, extra_t, 4),
        ("the 4x4 example of section 7", example_p, example_t, 3),
    ]
    formula = "IoU_c is TP / (TP + FP + FN) from the confusion matrix (rows: the target)."
    for name, pred, target, num_classes in cases:
        expected = mean_iou(pred, target, num_classes)
        got = run(name, fn, pred.clone(), target.clone(), num_classes, ignore_index=255)
        hint = _hint_for(name, _MIOU_HINTS, formula)
        compare(name, got, expected, hint=hint, atol=1e-6, rtol=1e-6)
    passed(len(cases), "your mIoU equals deeplab_utils.SegmentationMetrics'.")
