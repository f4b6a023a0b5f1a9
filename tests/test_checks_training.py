"""Tests for the notebook-07 self-checks: check_train_step and check_poly_lr."""

import pytest
import torch

from deeplab_utils.checks import (
    CheckFailed,
    check_poly_lr,
    check_train_loop,
    check_train_step,
)

# --- check_train_step ---------------------------------------------------------------------------


def good_train_step(model, images, masks, optimizer, loss_fn):
    """The textbook step: zero_grad, forward, loss, backward, step; return a float."""
    optimizer.zero_grad()
    loss = loss_fn(model(images), masks)
    loss.backward()
    optimizer.step()
    return loss.item()


def zero_grad_last_step(model, images, masks, optimizer, loss_fn):
    """Equally right: clear the gradients after the step instead of before the backward."""
    loss = loss_fn(model(images), masks)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return float(loss.detach())


def zero_grad_after_forward(model, images, masks, optimizer, loss_fn):
    """Equally right: clear the gradients anywhere before the backward, here after the forward."""
    loss = loss_fn(model(images), masks)
    optimizer.zero_grad(set_to_none=False)
    loss.backward()
    optimizer.step()
    return loss.item()


def zero_grad_before_step(model, images, masks, optimizer, loss_fn):
    """Clears the gradients between backward and step: the step finds nothing to move by."""
    loss = loss_fn(model(images), masks)
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()
    return loss.item()


def forgets_zero_grad(model, images, masks, optimizer, loss_fn):
    loss = loss_fn(model(images), masks)
    loss.backward()
    optimizer.step()
    return loss.item()


def steps_before_backward(model, images, masks, optimizer, loss_fn):
    optimizer.zero_grad()
    loss = loss_fn(model(images), masks)
    optimizer.step()
    loss.backward()
    return loss.item()


def detaches_the_loss(model, images, masks, optimizer, loss_fn):
    optimizer.zero_grad()
    loss = loss_fn(model(images), masks).detach()
    loss.backward()
    optimizer.step()
    return loss.item()


def returns_the_tensor(model, images, masks, optimizer, loss_fn):
    optimizer.zero_grad()
    loss = loss_fn(model(images), masks)
    loss.backward()
    optimizer.step()
    return loss


def two_forward_passes(model, images, masks, optimizer, loss_fn):
    optimizer.zero_grad()
    loss = loss_fn(model(images), masks)
    loss.backward()
    optimizer.step()
    return loss_fn(model(images), masks).item()  # the loss after the step, one forward too many


def not_written(model, images, masks, optimizer, loss_fn):
    raise NotImplementedError("Exercise: write this part, then run the check below.")


@pytest.mark.parametrize("fn", [good_train_step, zero_grad_last_step, zero_grad_after_forward])
def test_train_step_passes_right_steps(fn, capsys):
    """A correct step passes wherever it clears the gradients, as long as that is not between
    the backward and the step (the decision the exercise leaves open)."""
    check_train_step(fn)
    assert "✓ check_train_step" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("fn", "match"),
    [
        (forgets_zero_grad, r"two steps in a row.*\(step 2\).*backward adds to .grad"),
        (steps_before_backward, r"SGD, cross-entropy.*weights did not move"),
        (
            zero_grad_before_step,
            r"SGD, cross-entropy.*weights did not move.*emptied .grad between backward and step",
        ),
        (detaches_the_loss, r"SGD, cross-entropy.*raised RuntimeError"),
        (returns_the_tensor, r"returned a tensor that still holds the autograd graph"),
        (two_forward_passes, r"running_mean.*counts the forwards your step ran"),
    ],
)
def test_train_step_catches_mistakes(fn, match):
    """Each plausible mistake fails with a message naming the case and the problem."""
    with pytest.raises(CheckFailed, match=match):
        check_train_step(fn)


def test_train_step_leaves_global_rng_alone():
    """Running the check does not move torch's global random state (notebooks stay seeded)."""
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    check_train_step(good_train_step)
    assert torch.equal(torch.rand(3), expected)


# --- check_poly_lr ------------------------------------------------------------------------------


def good_poly_lr(step, total_steps, power=0.9, warmup_steps=0):
    """Written independently of the package: the formula of DeepLabv3, Sec. 4, plus warm-up."""
    if step >= total_steps:
        return 0.0
    warm = (step + 1) / warmup_steps if step < warmup_steps else 1.0
    return warm * (1 - step / total_steps) ** power


def numpy_poly_lr(step, total_steps, power=0.9, warmup_steps=0):
    """The same with NumPy (returns np.float64, a float subclass)."""
    import numpy as np

    ramp = np.minimum(1.0, (step + 1) / max(warmup_steps, 1))
    return np.float64(ramp * np.clip(1 - step / total_steps, 0, None) ** power)


def power_one(step, total_steps, power=0.9, warmup_steps=0):
    return good_poly_lr(step, total_steps, 1.0, warmup_steps)


def default_power_one(step, total_steps, power=1.0, warmup_steps=0):
    return good_poly_lr(step, total_steps, power, warmup_steps)


def warmup_off_by_one(step, total_steps, power=0.9, warmup_steps=0):
    warm = step / warmup_steps if step < warmup_steps else 1.0  # step 0 gets lr 0
    return warm * max(0.0, 1 - step / total_steps) ** power


def not_zero_at_the_end(step, total_steps, power=0.9, warmup_steps=0):
    warm = (step + 1) / warmup_steps if step < warmup_steps else 1.0
    return warm * (1 - step / (total_steps + 1)) ** power


def no_clamp(step, total_steps, power=0.9, warmup_steps=0):
    warm = (step + 1) / warmup_steps if step < warmup_steps else 1.0
    return warm * (1 - step / total_steps) ** power  # complex past the end


def poly_lr_not_written(step, total_steps, power=0.9, warmup_steps=0):
    raise NotImplementedError


def ramp_first_poly_lr(step, total_steps, power=0.9, warmup_steps=0):
    """Another order of the tests: the ramp as a min, the end last, a float power."""
    ramp = min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
    remaining = 1.0 - step / total_steps
    return ramp * pow(remaining, power) if remaining > 0 else 0.0


@pytest.mark.parametrize("fn", [good_poly_lr, numpy_poly_lr, ramp_first_poly_lr])
def test_poly_lr_passes_right_schedules(fn, capsys):
    """Independent correct schedules (plain Python, NumPy, the parts tested in another order)
    pass: the decisions left to the learner."""
    check_poly_lr(fn)
    assert "✓ check_poly_lr" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("fn", "match"),
    [
        (power_one, r"default power \(0\.9\), 10 steps, step 1'.*exponent is `power`"),
        (default_power_one, r"default power.*default is 0\.9"),
        (warmup_off_by_one, r"3 warm-up steps, 12 steps, step 0'.*expected 0\.333.*got 0"),
        (not_zero_at_the_end, r"step 10'.*0 from step total_steps on"),
        (no_clamp, r"step 11'.*complex"),
    ],
)
def test_poly_lr_catches_mistakes(fn, match):
    """Power 1, an off-by-one warm-up and a schedule not ending at 0 fail, naming the step."""
    with pytest.raises(CheckFailed, match=match):
        check_poly_lr(fn)


# --- the training loop -------------------------------------------------------------------------


def _loop(*, zero_grad=True, per_epoch=False, train_mode=True, as_tensor=False, one_epoch=False):
    """A training loop, right by default, with one plausible mistake switched on."""

    def run(model, loader, loss_fn, optimizer, scheduler, steps):
        if train_mode:
            model.train()
        losses = []
        while len(losses) < steps:
            for images, masks in loader:
                if zero_grad:
                    optimizer.zero_grad()
                loss = loss_fn(model(images), masks)
                loss.backward()
                optimizer.step()
                if not per_epoch:
                    scheduler.step()
                losses.append(loss if as_tensor else loss.item())
                if len(losses) == steps:
                    break
            if per_epoch:
                scheduler.step()
            if one_epoch:
                break
        return losses

    return run


def iterator_loop(model, loader, loss_fn, optimizer, scheduler, steps):
    """Equally right: one step per iteration of a counted loop, a new pass over the loader
    started whenever the current one is exhausted, the schedule moved before the loss is kept."""
    model.train()
    batches, losses = iter(loader), []
    for _ in range(steps):
        try:
            images, masks = next(batches)
        except StopIteration:
            batches = iter(loader)
            images, masks = next(batches)
        optimizer.zero_grad()
        loss = loss_fn(model(images), masks)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
    return losses


@pytest.mark.parametrize("loop", [_loop(), iterator_loop])
def test_check_train_loop_passes_a_correct_loop(capsys, loop):
    """A loop written as the notebook asks passes and is handed back, whether it nests a pass in
    a while loop or restarts an iterator when it runs out."""
    assert check_train_loop(loop) is loop
    assert "✓ check_train_loop" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("mistake", "hint"),
    [
        ({"zero_grad": False}, "start from cleared gradients"),
        ({"per_epoch": True}, "counts optimiser steps, not epochs"),
        ({"train_mode": False}, "which mode must it train in"),
        ({"as_tensor": True}, "the losses are tensors"),
        ({"one_epoch": True}, "expected a list of 10 losses"),
    ],
)
def test_check_train_loop_rejects_known_mistakes(mistake, hint):
    """No zero_grad, the schedule per epoch, the model left in eval mode, loss tensors and a
    single epoch each fail with the hint that names the mistake."""
    with pytest.raises(CheckFailed, match=hint):
        check_train_loop(_loop(**mistake))


def cycling_loop(model, loader, loss_fn, optimizer, scheduler, steps):
    """Replays the first epoch with itertools.cycle instead of iterating the loader again."""
    import itertools

    model.train()
    losses = []
    for images, masks in itertools.islice(itertools.cycle(loader), steps):
        optimizer.zero_grad()
        loss = loss_fn(model(images), masks)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    return losses


def test_check_train_loop_rejects_replaying_the_first_epoch():
    """itertools.cycle over a loader replays its first epoch (no reshuffling, the same
    augmentations, every batch kept in memory): the check's loader reshuffles, so it fails on
    the first case longer than an epoch, with a hint at iterating the loader again."""
    with pytest.raises(CheckFailed, match=r"case '10 steps over epochs.*iterate the loader again"):
        check_train_loop(cycling_loop)


def test_converted_checks_hand_back_the_reference_when_not_written(capsys):
    """An unwritten step or schedule prints one line and hands back the package's version."""
    from deeplab_utils.training import poly_lr_lambda, train_step

    assert check_train_step(not_written) is train_step
    assert check_poly_lr(poly_lr_not_written) is poly_lr_lambda
    assert capsys.readouterr().out.count("not implemented yet") == 2
