"""Self-checks for notebook 05 (losses and metrics): DiceBCE, soft IoU and mean IoU."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ._common import CheckFailed, _compare, _passed, _run


def _build_loss(check: str, cls: Any, **kwargs: Any) -> torch.nn.Module:
    """Instantiate the learner's loss class (not an instance) with ``kwargs``."""
    if isinstance(cls, torch.nn.Module):
        raise CheckFailed(
            f"{check}: pass the class itself, e.g. {check}(MyLoss), not an instance MyLoss()."
        )
    return _run(check, f"constructing with {kwargs or 'no arguments'}", cls, **kwargs)


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


def _binary_loss_cases(ignore: bool) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """``(name, logits (B, 1, H, W), float 0/1 target (B, 1, H, W))`` cases for a binary loss."""
    gen = torch.Generator().manual_seed(0)

    def blob(b: int, h: int, w: int) -> torch.Tensor:
        return (torch.rand(b, 1, h, w, generator=gen) > 0.6).float()

    target = blob(2, 8, 8)
    cases = [
        ("random logits, batch 2, 8x8", torch.randn(2, 1, 8, 8, generator=gen) * 2, target),
        ("perfect prediction (logits +-10)", (target * 2 - 1) * 10.0, target),
        ("empty target mask", torch.randn(2, 1, 6, 6, generator=gen), torch.zeros(2, 1, 6, 6)),
        ("batch 1, odd size 7x11", torch.randn(1, 1, 7, 11, generator=gen), blob(1, 7, 11)),
        ("batch 3, odd size 5x9", torch.randn(3, 1, 5, 9, generator=gen) * 3, blob(3, 5, 9)),
    ]
    if ignore:
        target = blob(2, 9, 7)
        target[:, :, 0] = 255.0  # an ignored row
        target[1, 0, :, -2:] = 255.0
        cases.append(("ignored pixels (255)", torch.randn(2, 1, 9, 7, generator=gen), target))
    return cases


_IGNORE_HINT = (
    "pixels whose target is ignore_index (255) must count nowhere in the loss: multiply them "
    "out of the soft sums (probabilities and target) and, for BCE, average over the valid "
    "pixels only."
)


def _check_binary_loss(
    check: str, cls: Any, reference: type[torch.nn.Module], what: str, hint: str
) -> None:
    """Compare value and gradient of ``cls()`` with ``reference()`` on the binary cases.

    Ignored pixels are tested only if the learner's ``__init__`` accepts ``ignore_index``.
    """
    import inspect

    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        params = {}
    cases = _binary_loss_cases(ignore="ignore_index" in params)
    learner, ref = _build_loss(check, cls), reference()
    for name, logits, target in cases:
        exp_value, exp_grad = _loss_and_grad(ref, logits, target)
        value, grad = _run(check, name, _loss_and_grad, learner, logits, target)
        value_hint = _IGNORE_HINT if name.startswith("ignored") else hint
        _compare(check, name + " (loss value)", value, exp_value, hint=value_hint)
        _compare(
            check,
            name + " (gradient w.r.t. the logits)",
            grad,
            exp_grad,
            hint="the value matches but not its gradient: compute everything from the logits "
            "with differentiable torch operations (sigmoid, sums), no `.item()` or thresholds.",
        )
    _passed(check, len(cases), what)


def check_dice_bce_loss(cls: Any) -> None:
    """Check a binary DiceBCE loss class against :class:`deeplab_utils.DiceBCELoss`.

    ``cls()`` must build the loss with the default ``smooth=1``; ``loss(logits, target)`` takes
    logits ``(B, 1, H, W)`` and a float 0/1 target ``(B, 1, H, W)`` and returns a scalar. Its
    value and its gradient with respect to the logits are compared on random logits, a perfect
    prediction, an empty mask, batch 1 and odd sizes, and -- only if ``cls`` accepts an
    ``ignore_index`` argument -- a target with ignored (255) pixels. Taught in notebook 05.
    """
    from ..losses import DiceBCELoss

    _check_binary_loss(
        "check_dice_bce_loss",
        cls,
        DiceBCELoss,
        "your loss equals deeplab_utils.DiceBCELoss (value and gradient).",
        "loss = mean BCE-with-logits over valid pixels + 1 - (2*sum(p*g) + s) / (sum(p) + "
        "sum(g) + s), p = sigmoid(logits), sums over the whole batch. Mind the factor 2.",
    )


def check_iou_loss(cls: Any) -> None:
    """Check a binary soft-IoU loss class against :class:`deeplab_utils.IoULoss`.

    Same cases and conventions as :func:`check_dice_bce_loss` (value and gradient, ignored
    pixels only if ``cls`` accepts ``ignore_index``). Taught in notebook 05.
    """
    from ..losses import IoULoss

    _check_binary_loss(
        "check_iou_loss",
        cls,
        IoULoss,
        "your loss equals deeplab_utils.IoULoss (value and gradient).",
        "loss = 1 - (sum(p*g) + s) / (sum(p) + sum(g) - sum(p*g) + s), p = sigmoid(logits), "
        "sums over the whole batch; the union subtracts the intersection once.",
    )


def check_miou(fn: Callable[..., float]) -> None:
    """Check ``fn(pred, target, num_classes, ignore_index=255) -> float`` (mean IoU).

    ``pred`` and ``target`` are int64 label masks ``(B, H, W)``. The expected value comes from
    :class:`deeplab_utils.SegmentationMetrics`. Cases: the 4x4 example of notebook 05, ignored
    pixels (which must not be counted), a class absent from both masks (left out of the mean),
    a class in the target that is never predicted (IoU 0, counted), a class predicted but
    absent from the target (IoU 0, counted), and a batch of several masks (one confusion
    matrix for the batch, not a mean of per-image scores). Taught in notebook 05.
    """
    from ..metrics import SegmentationMetrics

    check = "check_miou"
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
    cases = [
        # (name, pred (B, H, W), target (B, H, W), num_classes, hint)
        ("one 5x6 mask, nothing ignored", mostly_right(one_t), one_t, 3, ""),
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
        ("the 4x4 example of section 7", example_p[None], example_t[None], 3, ""),
    ]
    for name, pred, target, num_classes, hint in cases:
        metrics = SegmentationMetrics(num_classes)
        metrics.update(pred, target)
        expected = torch.tensor(metrics.compute()["miou"], dtype=torch.float64)
        got = _run(check, name, fn, pred.clone(), target.clone(), num_classes, ignore_index=255)
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.reshape(())
        hint = hint or "IoU_c = TP / (TP + FP + FN) from the confusion matrix (rows = target)."
        _compare(check, name, got, expected, hint=hint, atol=1e-6, rtol=1e-6)
    _passed(check, len(cases), "your mIoU equals deeplab_utils.SegmentationMetrics'.")
