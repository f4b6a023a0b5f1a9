"""Self-checks for notebook 07 (training): one optimiser step, the poly LR schedule, the loop."""

import copy
from collections.abc import Callable

import torch

from ..losses import DiceCELoss
from ..training import fit, poly_lr_lambda, train_step, train_steps  # the references
from ._common import Hint, Segmenter, close, compare, exercise_check, fail, passed, run, seeded

_HINTS: dict[str, str | Hint] = {
    "unchanged": Hint(
        "the weights did not move: the optimiser moves them by what is in .grad when its step "
        "runs. What filled .grad from this batch's loss before the step, and has anything "
        "emptied .grad between backward and step?",
        "print a weight's .grad just before the optimiser's step: None or zeros leave it nothing "
        "to move by. Is the loss still attached to the computation (not detached, not computed "
        "under torch.no_grad()), and which of the five parts empties .grad?",
    ),
    "piled up": Hint(
        "the first step was right, this one is not: backward adds to .grad, so what does .grad "
        "hold when this step's backward starts?",
        "print a weight's .grad at the start of your second step, before anything else runs: "
        "whatever it holds, this step's backward adds to it, and the step moves by the total.",
    ),
    "step": Hint(
        "the weights moved, but not as the reference's did: look at the key the case names. "
        "A BatchNorm running_mean or running_var counts the forwards your step ran (one per "
        "step); a weight shows the gradient the step followed: of which loss, added how often?",
        "run your step and the package's on two copies of one model and one batch, and print "
        "each returned loss and a weight's .grad after the step: the first that differs names "
        "the part that ran out of place, twice, or not at all.",
    ),
    "tensor": "keep loss.item(), a Python float: a training loop keeps every step's loss in a "
    "list, and a list of loss tensors keeps every step's autograd graph alive (memory grows).",
    "loss": "return the batch's loss as a Python float (loss.item()), computed before the step.",
    "ended": Hint(
        "the learning rate is 0 from step total_steps on (training is over): the remaining "
        "fraction of training is negative there, and a negative number to the power 0.9 is "
        "complex.",
        "which steps must return 0.0 before any power is taken, and does your function reach "
        "that test for every one of them, the warm-up's included?",
    ),
    "warm-up": Hint(
        "during warm-up the ramp grows by 1/warmup_steps per step and gives the whole poly "
        "value at step warmup_steps - 1: what factor does that leave for step 0?",
        "write the ramp's factors down for 3 warm-up steps, from the last one (step 2) back to "
        "step 0, each 1/3 below the next; then say the factor of step i in words.",
    ),
    "default power": "the exponent is `power`, whose default is 0.9 (DeepLabv3, Sec. 4).",
    "power": "the poly value is the remaining fraction of training raised to the power you are "
    "given, whatever it is.",
    "raised": "your function raised on a step the definition covers: which steps does each "
    "part of it (the warm-up, the decay, the end) apply to?",
    "epochs": Hint(
        "a run is `steps` steps, whatever the loader's length: what happens when the loader "
        "runs out first, and when `steps` is reached in the middle of a pass?",
        "count optimiser steps, not batches of one pass: the loop stops when the count reaches "
        "`steps`, in the middle of a pass if need be, and a pass that runs out before then is "
        "followed by a new one.",
    ),
    "replayed": "iterate the loader again for every epoch: a DataLoader reshuffles (and draws "
    "new augmentations) only when a new pass starts, so replaying the first pass's batches "
    "(itertools.cycle, a list) repeats them in one order and keeps them all in memory.",
    "eval mode": "the model may come from an evaluation, in eval mode, where BatchNorm uses "
    "its running statistics and dropout does nothing: which mode must it train in, and who "
    "makes sure it is in it?",
    "per epoch": "the poly policy counts optimiser steps, not epochs: how many times should the "
    "scheduler move in a run of `steps` steps, and when?",
    "no zero_grad": "backward adds to .grad: does every step of your loop start from cleared "
    "gradients, whichever step function it calls?",
}
_OPTIMIZERS = {
    "SGD": lambda p: torch.optim.SGD(p, lr=0.5),
    "SGD + momentum": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-4),
    "Adam": lambda p: torch.optim.Adam(p, lr=0.01),
}


@exercise_check(train_step, also_watch=(train_steps, fit))
def check_train_step(fn: Callable[..., float]) -> None:
    """``fn(model, images, masks, optimizer, loss_fn) -> float``: weights, BN statistics, loss."""
    losses = {"cross-entropy": torch.nn.CrossEntropyLoss(ignore_index=255), "DiceCE": DiceCELoss()}
    cases = [
        # (name, optimizer, loss, batch, (H, W), steps); "ignored pixels": masks' first row 255
        ("SGD, cross-entropy, batch 2, 9x11", "SGD", "cross-entropy", 2, (9, 11), 1),
        ("Adam, DiceCE, batch 1, 7x5, ignored pixels", "Adam", "DiceCE", 1, (7, 5), 1),
        ("two steps in a row, SGD + momentum", "SGD + momentum", "cross-entropy", 2, (6, 8), 2),
    ]
    for name, optimizer, loss, b, size, steps in cases:
        reference = Segmenter(4)
        learner = copy.deepcopy(reference)
        ref_opt = _OPTIMIZERS[optimizer](reference.parameters())
        learner_opt = _OPTIMIZERS[optimizer](learner.parameters())
        for step in range(steps):
            images = torch.randn(b, 3, *size)  # (B, 3, H, W)
            masks = torch.randint(0, 4, (b, *size))  # (B, H, W)
            if "ignored pixels" in name:
                masks[:, 0] = 255
            case = name if steps == 1 else f"{name} (step {step + 1})"
            before = copy.deepcopy(learner.state_dict())
            expected = train_step(reference, images, masks, ref_opt, losses[loss])
            got = run(case, fn, learner, images.clone(), masks.clone(), learner_opt, losses[loss])
            same = all(torch.equal(p, before[k]) for k, p in learner.named_parameters())
            hint = _HINTS["unchanged" if same else "piled up" if step else "step"]
            for key, value in reference.state_dict().items():
                after = learner.state_dict()[key]
                compare(f"{case}: '{key}' after the step", after, value, hint=hint)
            if isinstance(got, torch.Tensor):
                graph = " that still holds the autograd graph" if got.requires_grad else ""
                message = f"returned a tensor{graph}; return loss.item(), a Python float"
                raise fail(case, message, _HINTS["tensor"])
            compare(f"{case}: returned loss", got, expected, hint=_HINTS["loss"], atol=1e-6)
    passed(len(cases), "your step moves the weights exactly as the reference step.")


@exercise_check(poly_lr_lambda)
def check_poly_lr(fn: Callable[..., float]) -> None:
    """``fn(step, total_steps, power=0.9, warmup_steps=0)``: the poly policy (DeepLabv3, Sec. 4)."""
    cases = [
        # (name, total_steps, keyword arguments, steps to compare)
        ("default power (0.9), 10 steps", 10, {}, range(12)),
        ("power 1 (linear decay), 7 steps", 7, {"power": 1.0}, range(9)),
        ("power 0.9, 3 warm-up steps, 12 steps", 12, {"power": 0.9, "warmup_steps": 3}, range(14)),
        ("power 2, 1 warm-up step, 5 steps", 5, {"power": 2.0, "warmup_steps": 1}, range(7)),
        ("30000 steps, 500 warm-up steps", 30_000, {"power": 0.9, "warmup_steps": 500},
         (0, 1, 249, 499, 500, 501, 15_000, 29_999, 30_000, 30_001)),
    ]  # fmt: skip
    for name, total, kwargs, steps in cases:
        # the steps from total_steps on first: a schedule that does not end at 0 is told so
        for step in sorted(steps, key=lambda s: s < total):
            case = f"{name}, step {step}"
            got = run(case, fn, step, total, hint=_HINTS["raised"], **kwargs)
            expected = poly_lr_lambda(step, total, **kwargs)
            reasons = (
                ("ended", step >= total or isinstance(got, complex)),
                ("warm-up", step < kwargs.get("warmup_steps", 0)),
                ("default power", "default" in name),
            )
            hint = _HINTS[next((why for why, applies in reasons if applies), "power")]
            compare(case, got, expected, hint=hint, atol=1e-12, rtol=1e-9)
    passed(len(cases), f"your schedule equals {poly_lr_lambda.__module__}.poly_lr_lambda.")


class _Shuffled:
    """A loader that reshuffles at every pass, as ``DataLoader(shuffle=True)``, counting them."""

    def __init__(self, batches: list) -> None:
        self.batches, self.passes = batches, 0

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(self.passes))
        self.passes += 1
        return iter([self.batches[i] for i in order])


def _run_loop(fn: Callable, batches: list, steps: int, eval_first: bool, pile_up=False) -> tuple:
    """Loop ``fn`` on the check's model: its result, the model, the scheduler's count and the
    loader's passes; with ``pile_up`` the optimizer never clears the gradients (a mistake)."""
    with seeded(7):
        model = Segmenter(3, dropout=0.3).train(not eval_first)  # dropout: the mode shows
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    if pile_up:
        optimizer.zero_grad = lambda set_to_none=True: None
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: poly_lr_lambda(step, steps, warmup_steps=2)
    )
    loader = _Shuffled(batches)
    with seeded(0):  # the same dropout masks for every loop compared
        out = fn(model, loader, torch.nn.CrossEntropyLoss(), optimizer, scheduler, steps)
    return out, model, scheduler.last_epoch, loader.passes


_LOOP_HINT = Hint(
    "the weights differ from the reference's: does every batch get exactly one step of "
    "section 2, and does the scheduler move exactly once for each of them?",
    "check the mode first, then count: one step per batch, a new pass whenever the loader runs "
    "out, the schedule moved after every optimiser step, one float loss kept per step, and a "
    "stop after exactly `steps` steps.",
)


@exercise_check(train_steps, also_watch=(fit,))  # the step may be the package's: section 2
def check_train_loop(fn: Callable[..., list[float]]) -> None:
    """``fn(model, loader, loss_fn, optimizer, scheduler, steps) -> losses``, one per step."""
    cases = [
        # (name, batches per epoch, steps, model handed over in eval mode)
        ("3 steps, an epoch of 4 batches", 4, 3, False),
        ("10 steps over epochs of 4 batches", 4, 10, False),
        ("6 steps, the model handed over in eval mode", 3, 6, True),
    ]
    for name, n_batches, steps, eval_first in cases:
        batches = [
            (torch.randn(2, 3, 5, 6), torch.randint(0, 3, (2, 5, 6))) for _ in range(n_batches)
        ]
        args = (batches, steps, eval_first)
        expected, reference, expected_count, expected_passes = _run_loop(train_steps, *args)
        got, model, count, passes = run(name, _run_loop, fn, *args)
        if not isinstance(got, list | tuple) or len(got) != steps:
            length = len(got) if isinstance(got, list | tuple) else type(got).__name__
            message = f"expected a list of {steps} losses, one per step, got {length}"
            raise fail(name, message, _HINTS["epochs"])
        if any(isinstance(v, torch.Tensor) for v in got):
            raise fail(name, "the losses are tensors", _HINTS["tensor"])
        if passes < expected_passes:
            made = f"need {expected_passes} passes over the loader, your loop made {passes}"
            raise fail(name, f"{steps} steps over {n_batches} batches {made}", _HINTS["replayed"])
        if any(grad and not training for training, grad in model.seen):
            raise fail(name, "the model trained in eval mode", _HINTS["eval mode"])
        if count != expected_count:
            moved = f"the scheduler moved {count} times, expected {expected_count}"
            raise fail(name, f"{moved} (once per step)", _HINTS["per epoch"])
        state, piled_up = model.state_dict(), _run_loop(train_steps, *args, pile_up=True)[1]
        hint = _HINTS["no zero_grad"] if close(state, piled_up.state_dict()) else _LOOP_HINT
        for key, value in reference.state_dict().items():
            compare(f"{name}: '{key}' after training", state[key], value, hint=hint)
        got, expected = (torch.tensor(v, dtype=torch.float64) for v in (got, expected))
        compare(f"{name}: returned losses", got, expected, hint=hint, atol=1e-6)
    passed(len(cases), f"your loop trains exactly as {train_steps.__module__}.train_steps.")
