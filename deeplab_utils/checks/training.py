"""Self-checks for notebook 07 (training): one optimiser step and the poly LR schedule."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._common import CheckFailed, _compare, _passed, _run, _run_with_hint, exercise_check


def _tiny_segmenter(num_classes: int, seed: int) -> torch.nn.Module:
    """A per-pixel "segmenter" of 1x1 convolutions with a BN: (B, 3, H, W) -> (B, C, H, W)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 1),
            torch.nn.BatchNorm2d(8),  # its running statistics show a second forward pass
            torch.nn.ReLU(),
            torch.nn.Conv2d(8, num_classes, 1),
        )


def _reference_train_step(
    model: torch.nn.Module,
    images: torch.Tensor,
    masks: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> float:
    """The step that ``deeplab_utils.training`` takes (without mixed precision)."""
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(model(images), masks)
    loss.backward()
    optimizer.step()
    return loss.item()


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# Notebook 07 is not converted to the returning checks yet: legacy=True keeps its behaviour
# ("not implemented yet" raises). The package has no step with this signature to hand back.
@exercise_check(
    "training:_train_step",
    also_watch=("training:train_one_epoch", "training:fit"),
    legacy=True,
)
def check_train_step(fn: Callable[..., float]) -> None:
    """Check ``fn(model, images, masks, optimizer, loss_fn) -> float``: one optimiser step.

    The learner's step and the reference step (zero_grad, forward, loss, backward, step) run on
    two identical small 1x1-convolution segmenters with a BatchNorm; after each step the weights
    and BN statistics must be equal and the returned loss must be the same Python float. Cases:
    SGD with cross-entropy, Adam with DiceCE and ignored pixels at batch 1, and two steps in a
    row with SGD + momentum (gradients must not pile up). Returning a tensor instead of
    ``loss.item()`` fails: kept in a list, it would keep every step's autograd graph alive.
    Taught in notebook 07.
    """
    import copy

    from ..losses import DiceCELoss

    check = "check_train_step"
    gen = torch.Generator().manual_seed(0)
    optimizers = {
        "sgd": lambda p: torch.optim.SGD(p, lr=0.5),
        "sgd+momentum": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-4),
        "adam": lambda p: torch.optim.Adam(p, lr=0.01),
    }
    losses = {"cross-entropy": torch.nn.CrossEntropyLoss(ignore_index=255), "DiceCE": DiceCELoss()}
    cases = [
        # (name, optimizer, loss, batch, (H, W), steps, ignored pixels)
        ("SGD, cross-entropy, batch 2, 9x11", "sgd", "cross-entropy", 2, (9, 11), 1, False),
        ("Adam, DiceCE, batch 1, 7x5, ignored pixels", "adam", "DiceCE", 1, (7, 5), 1, True),
        (
            "two steps in a row, SGD + momentum",
            "sgd+momentum",
            "cross-entropy",
            2,
            (6, 8),
            2,
            False,
        ),
    ]
    num_classes = 4
    for name, opt_name, loss_name, b, size, steps, ignored in cases:
        reference = _tiny_segmenter(num_classes, seed=len(name))
        learner = copy.deepcopy(reference)
        ref_opt = optimizers[opt_name](reference.parameters())
        learner_opt = optimizers[opt_name](learner.parameters())
        loss_fn = losses[loss_name]
        for step in range(steps):
            images = torch.randn(b, 3, *size, generator=gen)  # (B, 3, H, W)
            masks = torch.randint(0, num_classes, (b, *size), generator=gen)  # (B, H, W)
            if ignored:
                masks[:, 0] = 255  # the first row of every mask is "ignore"
            case = name if steps == 1 else f"{name} (step {step + 1})"
            before = _state(learner)
            expected = _reference_train_step(reference, images, masks, ref_opt, loss_fn)
            got = _run(
                check, case, fn, learner, images.clone(), masks.clone(), learner_opt, loss_fn
            )
            after = _state(learner)
            weights = [k for k, _ in learner.named_parameters()]  # not the BN's statistics
            if all(torch.equal(after[k], before[k]) for k in weights):
                hint = (
                    "the weights did not change: call loss.backward() before optimizer.step(), "
                    "on the loss tensor itself (not loss.detach(), not under torch.no_grad())."
                )
            elif step > 0:
                hint = (
                    "the first step was right, this one is not: gradients add up across calls "
                    "unless you call optimizer.zero_grad() before loss.backward()."
                )
            else:
                hint = (
                    "one step is: optimizer.zero_grad(), logits = model(images) (once), "
                    "loss = loss_fn(logits, masks), loss.backward(), optimizer.step()."
                )
            for key, value in reference.state_dict().items():
                _compare(check, f"{case}: '{key}' after the step", after[key], value, hint=hint)
            if isinstance(got, torch.Tensor):
                graph = " that still holds the autograd graph" if got.requires_grad else ""
                raise CheckFailed(
                    f"{check}: case '{case}': returned a tensor{graph}; return loss.item(), a "
                    "Python float. Hint: a training loop keeps every step's loss in a list, and "
                    "a list of loss tensors keeps every step's graph alive (memory grows)."
                )
            if not isinstance(got, int | float) or isinstance(got, bool):
                raise CheckFailed(
                    f"{check}: case '{case}': expected the loss as a Python float, got "
                    f"{type(got).__name__}. Hint: return loss.item()."
                )
            _compare(
                check,
                f"{case}: returned loss",
                torch.tensor(float(got), dtype=torch.float64),
                torch.tensor(expected, dtype=torch.float64),
                hint="return the loss of this batch, computed before optimizer.step().",
                atol=1e-6,
            )
    _passed(check, len(cases), "your step moves the weights exactly as the reference step.")


@exercise_check("training:poly_lr_lambda", legacy=True)
def check_poly_lr(fn: Callable[..., float]) -> None:
    """Check ``fn(step, total_steps, power=0.9, warmup_steps=0) -> float`` (the LR multiplier).

    Compared with :func:`deeplab_utils.training.poly_lr_lambda`, the paper's "poly" policy
    ``(1 - step / total_steps) ** power`` (DeepLabv3, Sec. 4) times the linear warm-up
    ``(step + 1) / warmup_steps`` for ``step < warmup_steps``, and 0 from ``total_steps`` on.
    Cases: the default power (called without ``power``), power 1 and 2, warm-up of 1 and 3
    steps, and the boundaries of a long run. Taught in notebook 07.
    """
    import math

    from ..training import poly_lr_lambda

    check = "check_poly_lr"
    cases = [
        # (name, total_steps, keyword arguments, steps to compare)
        ("default power (0.9), 10 steps", 10, {}, range(12)),
        ("power 1 (linear decay), 7 steps", 7, {"power": 1.0}, range(9)),
        ("power 0.9, 3 warm-up steps, 12 steps", 12, {"power": 0.9, "warmup_steps": 3}, range(14)),
        ("power 2, 1 warm-up step, 5 steps", 5, {"power": 2.0, "warmup_steps": 1}, range(7)),
        (
            "30000 steps, 500 warm-up steps",
            30_000,
            {"power": 0.9, "warmup_steps": 500},
            (0, 1, 249, 499, 500, 501, 15_000, 29_999, 30_000, 30_001),
        ),
    ]
    for name, total, kwargs, steps in cases:
        warmup = kwargs.get("warmup_steps", 0)
        reference = {"power": kwargs.get("power", 0.9), "warmup_steps": warmup}
        # The steps from total_steps on first: a schedule that does not end at 0 is told so,
        # rather than being told its values differ everywhere.
        for step in sorted(steps, key=lambda s: s < total):
            expected = poly_lr_lambda(step, total_steps=total, **reference)
            case = f"{name}, step {step}"
            got = _run_with_hint(
                check,
                case,
                "apply the warm-up factor only while step < warmup_steps, and return 0 from "
                "total_steps on.",
                lambda: fn(step, total, **kwargs),  # noqa: B023 -- called at once
            )
            if isinstance(got, torch.Tensor) and got.numel() == 1:
                got = got.item()
            if isinstance(got, complex):
                hint = (
                    "from step total_steps on return 0: (1 - step/total_steps) is negative "
                    "there, and a negative number to the power 0.9 is complex in Python."
                )
            elif step >= total:
                hint = "the learning rate is 0 from step total_steps on (training is over)."
            elif step < warmup:
                hint = (
                    "during warm-up (step < warmup_steps) multiply the poly value by "
                    "(step + 1) / warmup_steps: step 0 gets 1/warmup_steps of it, step "
                    "warmup_steps - 1 all of it."
                )
            elif "default" in name:
                hint = "the exponent is `power`, whose default is 0.9 (DeepLabv3, Sec. 4)."
            else:
                hint = "(1 - step / total_steps) ** power, with the power you are given."
            if not isinstance(got, int | float) or isinstance(got, bool):
                raise CheckFailed(
                    f"{check}: case '{case}': expected a float, got {got!r}. Hint: {hint}"
                )
            if not math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-12):
                raise CheckFailed(
                    f"{check}: case '{case}': expected {expected:.6g}, got {got:.6g}. Hint: {hint}"
                )
    _passed(check, len(cases), "your schedule equals deeplab_utils.training.poly_lr_lambda.")
