"""Self-check for notebook 08 (evaluation and inference): left-right flip test-time augmentation."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._common import _compare, _passed, _run, exercise_check


def _flip_tta_model(kind: str, num_classes: int, seed: int) -> torch.nn.Module:
    """Small position-dependent segmenters (eval mode) whose logits are large enough that
    averaging logits and averaging probabilities give clearly different answers."""
    from torch import nn

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == "conv":
            model = nn.Conv2d(3, num_classes, 3, padding=1)
        else:  # a dilated conv stack: asymmetric weights, wider context
            model = nn.Sequential(
                nn.Conv2d(3, 8, 3, padding=2, dilation=2),
                nn.ReLU(),
                nn.Conv2d(8, num_classes, (1, 3), padding=(0, 1)),
            )
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(3.0)  # confident logits
    return model.eval()


# Notebook 08 is not converted to the returning checks yet: legacy=True keeps its behaviour.
@exercise_check("inference:predict", legacy=True)
def check_flip_tta(fn: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]) -> None:
    """Check ``fn(model, images) -> probs``: left-right flip test-time augmentation.

    The reference is :func:`deeplab_utils.inference.predict` with ``flip=True``: the mean of
    ``softmax(model(x))`` and ``softmax(flip(model(flip(x))))``, flips along the width. Cases:
    batch 1 and 2, odd sizes, 3 and 5 classes, two small models. Recognised mistakes: the
    flipped run's output not flipped back, logits averaged instead of probabilities (the
    paper averages probabilities), a vertical flip, no flip at all. Taught in notebook 08.
    """
    from ..inference import predict

    check = "check_flip_tta"
    gen = torch.Generator().manual_seed(0)
    cases = [
        # (name, model kind, batch, classes, height, width)
        ("3x3 conv, batch 2, 9x13", "conv", 2, 3, 9, 13),
        ("batch 1, 16x16", "conv", 1, 5, 16, 16),
        ("dilated conv stack, batch 2, odd size 11x7", "stack", 2, 4, 11, 7),
    ]

    def run(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(x)

    for i, (name, kind, b, c, h, w) in enumerate(cases):
        model = _flip_tta_model(kind, c, seed=i)
        x = torch.randn(b, 3, h, w, generator=gen)
        expected = predict(model, x, flip=True)
        got = _run(check, name, fn, model, x.clone())
        plain = run(model, x)
        mistakes = {
            "the flipped run's output must be flipped back (flip(-1)) before averaging, "
            "or its pixels land on the mirror-image positions.": (
                plain.softmax(1) + run(model, x.flip(-1)).softmax(1)
            )
            / 2,
            "average the probabilities (softmax each run, then the mean), as the paper does, "
            "not the logits.": ((plain + run(model, x.flip(-1)).flip(-1)) / 2).softmax(1),
            "flip left-right, i.e. along the width (the last dimension, -1), not upside down.": (
                plain.softmax(1) + run(model, x.flip(-2)).flip(-2).softmax(1)
            )
            / 2,
            "return probabilities (softmax over the class dimension 1), not logits.": (
                plain + run(model, x.flip(-1)).flip(-1)
            )
            / 2,
            "also run the model on the flipped images: the result is the mean of two runs.": (
                plain.softmax(1)
            ),
        }
        hint = "average softmax(model(x)) and softmax(model(x.flip(-1)).flip(-1))."
        if isinstance(got, torch.Tensor) and got.shape == expected.shape:
            for mistake, wrong in mistakes.items():
                if torch.allclose(got.detach().double(), wrong.double(), atol=1e-5, rtol=1e-4):
                    hint = mistake
                    break
        _compare(check, name, got, expected, hint=hint, atol=1e-5, rtol=1e-4)
    _passed(check, len(cases), "your flip TTA equals deeplab_utils.inference.predict(flip=True).")
