"""Self-checks for notebook 07 (training): one optimiser step and the poly LR schedule."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._common import (
    CheckFailed,
    Hint,
    _compare,
    _fail,
    _passed,
    _run,
    _run_with_hint,
    exercise_check,
)


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


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@exercise_check(
    "training:train_step",
    also_watch=("training:_train_step", "training:train_one_epoch", "training:fit"),
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
    from ..training import train_step

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
            expected = train_step(reference, images, masks, ref_opt, loss_fn)
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


@exercise_check("training:poly_lr_lambda")
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


def _loop_batches(gen: torch.Generator, n: int, num_classes: int) -> list[tuple[torch.Tensor, ...]]:
    """``n`` batches of 2 random 5x6 images and masks, a re-iterable stand-in for a loader."""
    return [
        (
            torch.randn(2, 3, 5, 6, generator=gen),
            torch.randint(0, num_classes, (2, 5, 6), generator=gen),
        )
        for _ in range(n)
    ]


def _dropout_segmenter(num_classes: int) -> torch.nn.Module:
    """1x1 convolutions with BatchNorm and dropout: train and eval mode give other results."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        return torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 1),
            torch.nn.BatchNorm2d(8),
            torch.nn.ReLU(),
            torch.nn.Dropout2d(0.3),
            torch.nn.Conv2d(8, num_classes, 1),
        )


def _run_loop(fn: Callable[..., object], batches: list, steps: int, *, eval_first: bool) -> tuple:
    """Run a training loop ``fn`` on a fresh copy of the check's model, with its dropout seeded.

    Returns ``(what fn returned, the model's state after, the scheduler's step count)``.
    """
    from ..training import poly_lr_lambda

    model = _dropout_segmenter(num_classes=3)
    if eval_first:
        model.eval()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: poly_lr_lambda(step, steps, warmup_steps=2)
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the same dropout masks for every loop compared
        out = fn(model, batches, torch.nn.CrossEntropyLoss(), optimizer, scheduler, steps)
    return out, _state(model), scheduler.last_epoch


def _wrong_loops() -> dict[str, Callable[..., list[float]]]:
    """Plausible mistakes, each with the hint that names it (matched on the weights they give)."""

    def loop(*, zero_grad: bool = True, per_epoch: bool = False, train_mode: bool = True):
        def run(model, loader, loss_fn, optimizer, scheduler, steps):
            if train_mode:
                model.train()
            losses: list[float] = []
            while len(losses) < steps:
                for images, masks in loader:
                    if zero_grad:
                        optimizer.zero_grad()
                    loss = loss_fn(model(images), masks)
                    loss.backward()
                    optimizer.step()
                    if not per_epoch:
                        scheduler.step()
                    losses.append(loss.item())
                    if len(losses) == steps:
                        break
                if per_epoch:
                    scheduler.step()
            return losses

        return run

    return {
        "clear the gradients at every step (optimizer.zero_grad()): backward() adds to .grad, "
        "so without it each step also repeats every earlier step's gradient.": loop(
            zero_grad=False
        ),
        "move the schedule once per optimiser step, not once per epoch: the poly policy counts "
        "iterations (scheduler.step() right after optimizer.step()).": loop(per_epoch=True),
        "put the model in training mode first (model.train()): it may come from an evaluation, "
        "and in eval mode BatchNorm uses its running statistics and dropout does nothing.": loop(
            train_mode=False
        ),
    }


@exercise_check(
    "training:train_steps",
    also_watch=("training:train_step", "training:_train_step", "training:train_one_epoch"),
)
def check_train_loop(fn: Callable[..., list[float]]) -> None:
    """Check ``fn(model, loader, loss_fn, optimizer, scheduler, steps) -> list of losses``.

    The reference is :func:`deeplab_utils.training.train_steps`: ``steps`` optimiser steps,
    through the loader as many times as needed, the model in train mode, the schedule moved
    once per step. Learner and reference train identical models (BatchNorm, dropout seeded
    alike) with SGD + momentum and a poly schedule; their weights, BN statistics, scheduler
    step count and returned losses must agree. Cases: fewer steps than one epoch, steps over
    two and a half epochs, a model handed over in eval mode. Recognised mistakes: no
    ``zero_grad``, the schedule stepped per epoch, the model left in eval mode, losses kept as
    tensors, stopping after one epoch. Taught in notebook 07.
    """
    from ..training import train_steps

    check = "check_train_loop"
    gen = torch.Generator().manual_seed(0)
    cases = [
        # (name, batches per epoch, steps, model handed over in eval mode)
        ("3 steps, an epoch of 4 batches", 4, 3, False),
        ("10 steps over epochs of 4 batches", 4, 10, False),
        ("6 steps, the model handed over in eval mode", 3, 6, True),
    ]
    for name, n_batches, steps, eval_first in cases:
        batches = _loop_batches(gen, n_batches, num_classes=3)
        expected, expected_state, expected_count = _run_loop(
            train_steps, batches, steps, eval_first=eval_first
        )
        got, state, count = _run(check, name, _run_loop, fn, batches, steps, eval_first=eval_first)
        if not isinstance(got, list | tuple) or len(got) != steps:
            length = len(got) if isinstance(got, list | tuple) else type(got).__name__
            raise _fail(
                check, name, f"expected a list of {steps} losses, one per step, got {length}",
                Hint("go through the loader again (a new epoch) until `steps` steps are done, "
                     "and stop exactly there."),
            )  # fmt: skip
        if any(isinstance(v, torch.Tensor) for v in got):
            raise _fail(
                check, name, "the losses are tensors",
                "keep loss.item(), a Python float: a list of loss tensors keeps every step's "
                "autograd graph alive.",
            )  # fmt: skip
        hint: str | Hint = Hint(
            "each step: zero_grad, forward, loss, backward, optimizer.step(), scheduler.step().",
            "model.train(), then for each batch (again and again until `steps`): "
            "optimizer.zero_grad(); loss = loss_fn(model(images), masks); loss.backward(); "
            "optimizer.step(); scheduler.step(); keep loss.item().",
        )
        for mistake, wrong in _wrong_loops().items():
            _, wrong_state, _ = _run_loop(wrong, batches, steps, eval_first=eval_first)
            if all(torch.allclose(state[k], wrong_state[k]) for k in state) and not all(
                torch.allclose(wrong_state[k], expected_state[k]) for k in state
            ):
                hint = mistake
                break
        if count != expected_count:
            raise _fail(
                check, name,
                f"the scheduler moved {count} times, expected {expected_count} (once per step)",
                hint,
            )  # fmt: skip
        for key, value in expected_state.items():
            _compare(check, f"{name}: '{key}' after training", state[key], value, hint=hint)
        _compare(
            check, f"{name}: returned losses", torch.tensor(got, dtype=torch.float64),
            torch.tensor(expected, dtype=torch.float64), hint=hint, atol=1e-6,
        )  # fmt: skip
    _passed(check, len(cases), "your loop trains exactly as deeplab_utils.training.train_steps.")
