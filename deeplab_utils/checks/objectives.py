"""Self-checks for notebook 05 (losses and metrics): DiceBCE, soft IoU, DiceCE and mean IoU."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch

from ..losses import DiceBCELoss, DiceCELoss, IoULoss
from ..metrics import SegmentationMetrics
from ._common import CheckFailed, Hint, _check, _compare, _passed, _run, exercise_check


def _loss_and_grad(
    loss_fn: torch.nn.Module, logits: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss value and its gradient with respect to the logits."""
    x = logits.detach().clone().requires_grad_()
    loss = loss_fn(x, target.clone())
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise TypeError(f"the loss must be a scalar tensor, got {loss!r}")
    if not loss.requires_grad:
        raise TypeError(
            "the loss has no gradient path to the logits (did you use a hard threshold, "
            "`.item()` or `.detach()`?)"
        )
    (grad,) = torch.autograd.grad(loss.reshape(()), x)
    return loss.detach().reshape(()), grad


def _binary_loss_cases(ignore: bool) -> list[tuple[str, torch.Tensor, torch.Tensor, dict]]:
    """``(name, logits (B, 1, H, W), float 0/1 target (B, 1, H, W), constructor kwargs)``."""
    gen = torch.Generator().manual_seed(0)

    def blob(b: int, h: int, w: int) -> torch.Tensor:
        return (torch.rand(b, 1, h, w, generator=gen) > 0.6).float()

    target = blob(2, 8, 8)
    wrong_target = blob(2, 6, 7)
    wrong = torch.randn(2, 1, 6, 7, generator=gen)
    wrong[0, 0, :2, :2] = torch.where(wrong_target[0, 0, :2, :2] > 0, -30.0, 30.0)
    cases = [
        ("random logits, batch 2, 8x8", torch.randn(2, 1, 8, 8, generator=gen) * 2, target, {}),
        ("perfect prediction (logits +-10)", (target * 2 - 1) * 10.0, target, {}),
        ("empty target mask", torch.randn(2, 1, 6, 6, generator=gen), torch.zeros(2, 1, 6, 6), {}),
        ("batch 1, odd size 7x11", torch.randn(1, 1, 7, 11, generator=gen), blob(1, 7, 11), {}),
        ("batch 3, odd size 5x9", torch.randn(3, 1, 5, 9, generator=gen) * 3, blob(3, 5, 9), {}),
        ("confidently wrong pixels (logits +-30)", wrong, wrong_target, {}),
        ("smooth=0.5", torch.randn(2, 1, 5, 6, generator=gen) * 2, blob(2, 5, 6), {"smooth": 0.5}),
    ]
    if ignore:
        target = blob(2, 9, 7)
        target[:, :, 0] = 255.0  # an ignored row
        target[1, 0, :, -2:] = 255.0
        logits = torch.randn(2, 1, 9, 7, generator=gen)
        cases.append(("ignored pixels (255)", logits, target, {}))
    return cases


_IGNORE_HINT = Hint(
    "pixels whose target is ignore_index (255) must count nowhere in the loss: take them out of "
    "the soft sums and average the cross-entropy over the valid pixels only.",
    "a 0/1 map of the valid pixels does it: multiply the probabilities and the targets by it "
    "before the sums, and divide the per-pixel cross-entropy's sum over it by its own sum.",
)
_CONFIDENT_HINT = Hint(
    "a confidently wrong pixel: sigmoid(30) is exactly 1.0 in float32, so log(1 - p) is log(0); "
    "F.binary_cross_entropy clamps it at -100 and gives that pixel no gradient at all. Compute "
    "the cross-entropy from the logits, never from the probabilities.",
    "F.binary_cross_entropy_with_logits works from the logits (through softplus, which never "
    "takes log(0)); with reduction='none' you can then average it over the valid pixels.",
)
_SMOOTH_HINT = Hint(
    "the loss was built with smooth=0.5: use self.smooth, not the constant 1.",
    "the smoothing term is added to both the numerator and the denominator of the Dice.",
)


def _check_loss(
    cls: Any,
    reference: type[torch.nn.Module],
    cases: list[tuple[str, torch.Tensor, torch.Tensor, dict]],
    what: str,
    hint: Hint,
) -> None:
    """Compare value and gradient of ``cls(**kwargs)`` with ``reference(**kwargs)`` per case."""
    check = _check()
    if isinstance(cls, torch.nn.Module):
        raise CheckFailed(
            f"{check}: pass the class itself, e.g. {check}(MyLoss), not an instance MyLoss()."
        )
    # the cases this targets get their own hint, the others the formula's
    case_hints = {"ignored": _IGNORE_HINT, "confidently": _CONFIDENT_HINT, "smooth": _SMOOTH_HINT}
    learners: dict[str, torch.nn.Module] = {}
    for name, logits, target, kwargs in cases:
        key = repr(sorted(kwargs.items()))
        if key not in learners:
            learners[key] = _run(f"constructing with {kwargs or 'no arguments'}", cls, **kwargs)
        learner, ref = learners[key], reference(**kwargs)
        exp_value, exp_grad = _loss_and_grad(ref, logits, target)
        value, grad = _run(name, _loss_and_grad, learner, logits, target)
        value_hint = next((h for p, h in case_hints.items() if name.startswith(p)), hint)
        _compare(name + " (loss value)", value, exp_value, hint=value_hint)
        _compare(
            name + " (gradient w.r.t. the logits)",
            grad,
            exp_grad,
            hint=_CONFIDENT_HINT
            if name.startswith("confidently")
            else "the value matches but not its gradient: compute everything from the logits "
            "with differentiable torch operations (sigmoid, sums), no `.item()` or thresholds.",
        )
    _passed(len(cases), what)


def _accepts(cls: Any, argument: str) -> bool:
    try:
        return argument in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False


@exercise_check("losses:DiceBCELoss")
def check_dice_bce_loss(cls: Any) -> None:
    """Check a binary DiceBCE loss class against :class:`deeplab_utils.DiceBCELoss`.

    ``cls(smooth=1.0)``; ``loss(logits, target)`` takes logits and a float 0/1 target, both
    ``(B, 1, H, W)``, and returns a scalar. Value and gradient are compared on edge cases: a perfect
    prediction, an empty mask, confidently wrong pixels (where BCE from ``sigmoid(x)`` breaks),
    ``smooth=0.5``, and, if ``cls`` accepts ``ignore_index``, ignored pixels. Taught in notebook 05.
    """
    _check_loss(
        cls,
        DiceBCELoss,
        _binary_loss_cases(ignore=_accepts(cls, "ignore_index")),
        "your loss equals deeplab_utils.DiceBCELoss (value and gradient).",
        Hint(
            "the loss is the mean binary cross-entropy (from the logits) plus 1 - the soft Dice, "
            "whose sums run over the whole batch; mind the factor 2 of the Dice.",
            "the soft Dice is twice the overlap of the probabilities and the target over their "
            "total, both smoothed by self.smooth, with every sum over the whole batch; the "
            "cross-entropy is a mean over the valid pixels.",
        ),
    )


@exercise_check("losses:IoULoss")
def check_iou_loss(cls: Any) -> None:
    """Check a binary soft-IoU loss class against :class:`deeplab_utils.IoULoss`.

    Same cases and conventions as :func:`check_dice_bce_loss`. Taught in notebook 05.
    """
    _check_loss(
        cls,
        IoULoss,
        _binary_loss_cases(ignore=_accepts(cls, "ignore_index")),
        "your loss equals deeplab_utils.IoULoss (value and gradient).",
        Hint(
            "the union is what prediction and target cover together: count their overlap once.",
            "the union is the total of the probabilities and the target minus their overlap; "
            "smooth both the overlap and the union by self.smooth, and sum over the whole batch.",
        ),
    )


def _multiclass_loss_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, dict]]:
    """``(name, logits (B, C, H, W), int64 target (B, H, W), constructor kwargs)``."""
    gen = torch.Generator().manual_seed(0)

    def labels(b: int, h: int, w: int, classes: int) -> torch.Tensor:
        return torch.randint(0, classes, (b, h, w), generator=gen)

    def logits(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen)

    target = labels(2, 8, 8, 4)
    perfect = torch.nn.functional.one_hot(target, 4).permute(0, 3, 1, 2).float() * 20 - 10
    absent = labels(2, 6, 7, 3)  # classes 0-2 only, of 4
    ignored = labels(2, 7, 6, 3)
    ignored[:, 0] = 255
    ignored[1, :, -2:] = 255
    confident_t = labels(1, 5, 6, 3)
    corner = torch.zeros(1, 1, 5, 6, dtype=torch.bool)
    corner[..., :2, :3] = True  # six pixels whose logits put a wrong class 120 above the rest
    wrong = torch.nn.functional.one_hot((confident_t + 1) % 3, 3).permute(0, 3, 1, 2).bool()
    confident = logits(1, 3, 5, 6).masked_fill(corner, 0.0)
    confident = confident.masked_fill(wrong & corner, 120.0)  # e^-120 is 0 in float32
    return [
        ("random logits, 4 classes, batch 2, 8x8", logits(2, 4, 8, 8), target, {}),
        ("perfect prediction (logits +-10)", perfect, target, {}),
        ("class 3 absent from the batch", logits(2, 4, 6, 7) * 2, absent, {}),
        ("batch 1, 3 classes, odd size 7x11", logits(1, 3, 7, 11), labels(1, 7, 11, 3), {}),
        ("ignored pixels (255)", logits(2, 3, 7, 6), ignored, {}),
        ("confidently wrong pixels (logit gap 120)", confident, confident_t, {}),
        ("smooth=0.5", logits(2, 3, 5, 6) * 2, labels(2, 5, 6, 3), {"smooth": 0.5}),
    ]


@exercise_check("losses:DiceCELoss")
def check_dice_ce_loss(cls: Any) -> None:
    """Check a multi-class Dice + cross-entropy loss class against :class:`DiceCELoss`.

    ``cls(smooth=1.0, ignore_index=255)``; ``loss(logits, target)`` takes logits ``(B, C, H, W)``
    and an int64 target ``(B, H, W)`` and returns ``CE + 1 - mean_c Dice_c``. Value and gradient
    are compared on a perfect prediction, an absent class, ignored pixels, confidently wrong pixels
    (where ``log(softmax(x))`` gives -inf) and ``smooth=0.5``. Taught in notebook 05.
    """
    _check_loss(
        cls,
        DiceCELoss,
        _multiclass_loss_cases(),
        "your loss equals deeplab_utils.DiceCELoss (value and gradient).",
        Hint(
            "cross-entropy from log_softmax, averaged over the valid pixels; soft Dice per class "
            "from softmax and the one-hot target, sums over the whole batch (every image and "
            "pixel), then the mean over all C classes, absent ones included.",
            "one-hot the target (with the ignored pixels first set to any class, then masked "
            "out) into the layout of the probabilities, (B, C, H, W); the Dice of class c "
            "sums over every dimension but the class one.",
        ),
    )


@exercise_check("metrics:mean_iou", also_watch=("metrics:SegmentationMetrics",))
def check_miou(fn: Callable[..., float]) -> None:
    """Check ``fn(pred, target, num_classes, ignore_index=255) -> float`` (mean IoU).

    ``pred`` and ``target`` are int64 ``(B, H, W)``; the reference is
    :class:`deeplab_utils.SegmentationMetrics`. Cases: ignored pixels, a class absent from both
    masks (left out of the mean), a class never predicted or never in the target (IoU 0, counted),
    a batch (one confusion matrix, not a mean per image). Taught in notebook 05.
    """
    gen = torch.Generator().manual_seed(0)

    def labels(*shape: int, classes: int = 3) -> torch.Tensor:
        return torch.randint(0, classes, shape, generator=gen)

    def mostly_right(target: torch.Tensor, classes: int = 3) -> torch.Tensor:
        wrong = torch.rand(target.shape, generator=gen) < 0.3
        return torch.where(wrong, (target + 1) % classes, target)

    one_t = labels(1, 5, 6)
    batch_t = labels(3, 7, 9)
    batch_t[0] = 0  # an all-background image, so per-image means differ from the batch's
    ignore_t = labels(2, 6, 7)
    ignore_p = labels(2, 6, 7)  # ignored pixels get every possible prediction
    ignore_t[:, :2] = 255
    never_t = labels(2, 5, 6, classes=4)
    never_p = mostly_right(never_t, 4)
    never_p[never_p == 3] = 0  # class 3 is never predicted
    extra_t = labels(1, 4, 7)
    extra_p = mostly_right(extra_t)
    extra_p[0, 0, :3] = 3  # class 3 predicted, but in no target
    example_t = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [0, 2, 2, 255], [0, 2, 2, 2]])
    example_p = torch.tensor([[0, 0, 1, 0], [0, 1, 1, 1], [0, 2, 1, 2], [0, 0, 2, 2]])
    # the hint names the case's trap; the formula's hint for the other cases
    formula = "IoU_c is TP / (TP + FP + FN) from the confusion matrix (rows: the target)."
    cases = [
        # (name, pred (B, H, W), target (B, H, W), num_classes, hint)
        ("one 5x6 mask, nothing ignored", mostly_right(one_t), one_t, 3, formula),
        (
            "a batch of 3 masks, 7x9",
            mostly_right(batch_t),
            batch_t,
            3,
            "count one confusion matrix over the whole batch; do not average per-image mIoUs.",
        ),
        (
            "ignored pixels (target 255)",
            ignore_p,
            ignore_t,
            3,
            "skip every pixel whose target is ignore_index before counting.",
        ),
        (
            "classes 3 and 4 absent from both masks",
            mostly_right(one_t),
            one_t,
            5,
            "a class absent from both target and prediction has IoU 0/0: leave it out of "
            "the mean (do not count it as 0 or 1).",
        ),
        (
            "class 3 in the target but never predicted",
            never_p,
            never_t,
            4,
            "a class that is in the target but never predicted has IoU 0 and is counted.",
        ),
        (
            "class 3 predicted but in no target",
            extra_p,
            extra_t,
            4,
            "a class that is predicted but absent from the target has IoU 0 and is counted.",
        ),
        ("the 4x4 example of section 7", example_p[None], example_t[None], 3, formula),
    ]
    for name, pred, target, num_classes, hint in cases:
        metrics = SegmentationMetrics(num_classes)
        metrics.update(pred, target)
        expected = torch.tensor(metrics.compute()["miou"], dtype=torch.float64)
        got = _run(name, fn, pred.clone(), target.clone(), num_classes, ignore_index=255)
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.reshape(())
        _compare(name, got, expected, hint=hint, atol=1e-6, rtol=1e-6)
    _passed(len(cases), "your mIoU equals deeplab_utils.SegmentationMetrics'.")
