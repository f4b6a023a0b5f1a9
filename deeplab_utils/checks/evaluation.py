"""Self-checks for notebook 08 (evaluation and inference): the evaluation loop and the TTA."""

import copy
import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..evaluation import confusion_matrix, evaluate  # the references
from ..inference import predict
from ._common import Hint, Segmenter, close, compare, exercise_check, fail, passed, run

_COUNTING = (
    "evaluation is eval mode and no gradients around the whole loop; a pixel's prediction is "
    "its most likely class; every pixel not ignored adds 1 at row target, column prediction "
    "(to count every pixel in one call, turn each (target, prediction) pair into one of C * C "
    "numbers that torch.bincount can count)."
)
_MODE_HINT = Hint(
    "in which mode does BatchNorm use its running statistics and dropout keep every unit, and "
    "does an evaluation need the gradients that autograd records (at a cost in memory for "
    "every batch)?",
    _COUNTING,
)


@exercise_check(confusion_matrix, also_watch=(evaluate,))
def check_confusion_matrix(fn: Callable[..., torch.Tensor]) -> None:
    """``fn(model, loader, num_classes) -> (C, C)`` counts ``M[target, prediction]``."""
    cases = [
        # (name, classes, batch sizes, ignore a border)
        ("2 batches of 2, 3 classes, ignored pixels", 3, (2, 2), True),
        ("a batch of one, 4 classes", 4, (1,), False),
        ("3 batches, 5 classes, ignored pixels", 5, (1, 3, 2), True),
    ]
    for name, c, sizes, ignore in cases:
        loader = [(torch.randn(b, 3, 6, 7), torch.randint(0, c, (b, 6, 7))) for b in sizes]
        for _, masks in loader if ignore else []:
            masks[:, 0] = 255  # an ignored row
        probe = Segmenter(c, width=6, kernel=3, dropout=0.5)
        expected = confusion_matrix(copy.deepcopy(probe), loader, c)
        got = run(name, fn, probe, loader, c)
        for i, what in enumerate(("in training mode", "with autograd on")):
            if any(seen[i] for seen in probe.seen):  # (training, grad enabled) of each forward
                raise fail(name, f"the model ran {what}", _MODE_HINT)
        hint = Hint(f"return a ({c}, {c}) tensor of counts.", _COUNTING)
        if isinstance(got, torch.Tensor) and got.shape == expected.shape:
            hint = Hint("the prediction is the argmax over the classes, dimension 1.", _COUNTING)
            if torch.equal(got.T, expected) and not torch.equal(got, expected):
                hint = "rows are the target class, columns the prediction: M[t, p]."
            elif int(got.sum()) > int(expected.sum()):
                hint = "leave out the pixels whose target is 255 (ignore), before counting."
        compare(name, got, expected, hint=hint, atol=0, rtol=0)
    passed(len(cases), f"your loop counts exactly as {evaluate.__module__}.evaluate.")


# A scaled side's length, each rule within a pixel of s * n: every one is a valid decision.
_SIZE_RULES = {
    "round": lambda n, s: round(s * n),
    "int": lambda n, s: int(s * n),
    "ceil": lambda n, s: math.ceil(s * n),
    "official": lambda n, s: int((n - 1) * s) + 1,  # DeepLab's scale_dimension (utils.py)
}


def _tta(
    model: nn.Module, x: torch.Tensor, scales: tuple, flip: bool, *, align_corners=False,
    unflip=True, by_factor=False, softmax_first=False, logits=False, size_rule="round",
) -> torch.Tensor:  # fmt: skip
    """A TTA made with these choices, right (``_TTA_VARIANTS``) or wrong (``_TTA_MISTAKES``)."""
    size, bilinear, maps = x.shape[-2:], {"mode": "bilinear", "align_corners": align_corners}, []
    scaled = _SIZE_RULES[size_rule]
    with torch.no_grad():
        for s in scales:
            sides = [max(1, scaled(n, s)) for n in size]
            resize = {"scale_factor": s} if by_factor else {"size": sides}
            xs = x if s == 1 else F.interpolate(x, **resize, **bilinear)
            for mirrored in (False, True) if flip else (False,):
                out = model(xs.flip(-1) if mirrored else xs)
                out = out.flip(-1) if mirrored and unflip else out
                out = out.softmax(1) if softmax_first else out
                out = F.interpolate(out, size=size, **bilinear)
                maps.append(out if softmax_first or logits else out.softmax(1))
    mean = torch.stack(maps).mean(0)
    return mean.softmax(1) if logits else mean


_TTA_MISTAKES = {
    "average the probabilities (softmax each run, then the mean), as DeepLab's code does, not "
    "the logits.": {"logits": True},
    "mirror the flipped run's output back (flip(-1)) before averaging.": {"unflip": False},
    "resize with bilinear interpolation and align_corners=False, as the model's own "
    "upsampling does.": {"align_corners": True},
}
# Right too: the input resized by scale_factor=s or to a size rounded by any rule above, the
# softmax taken before resizing back.
_TTA_VARIANTS = [
    {"by_factor": by_factor, "size_rule": rule, "softmax_first": first}
    for by_factor, rule in [(True, "round"), *((False, rule) for rule in _SIZE_RULES)]
    for first in (False, True)
]
_TTA_HINT = Hint(
    "every run's map must line up with the input, pixel for pixel, before the mean.",
    "every scale, and with flip its mirror image, is one run; each run's logits come back to the "
    "images' own H x W (mirrored back first), become probabilities, and the result is the mean "
    "over the runs.",
)


@exercise_check(predict)
def check_tta(fn: Callable[..., torch.Tensor]) -> None:
    """``fn(model, images, scales=(1.0,), flip=False)``: the mean of every run's softmax, each
    scale (and mirror) resized back to ``H x W`` (DeepLabv3 Sec. 4.3, DeepLabv3+ Table 3)."""
    cases = [
        # (name, batch, classes, height, width, scales, flip)
        ("flip only, 9x13", 2, 3, 9, 13, (1.0,), True),
        ("scales 0.5, 1, 1.5, 16x16", 1, 4, 16, 16, (0.5, 1.0, 1.5), False),
        ("scales 0.75, 1.25 and flips, 11x7", 2, 5, 11, 7, (0.75, 1.25), True),
    ]
    for name, b, c, h, w, scales, flip in cases:
        model = Segmenter(c, kernel=3).eval()
        x = torch.randn(b, 3, h, w)
        expected = predict(model, x, scales=scales, flip=flip)
        got = run(name, fn, model, x.clone(), scales=scales, flip=flip)
        hint = _TTA_HINT
        if isinstance(got, torch.Tensor) and got.shape == expected.shape:
            tta = functools.partial(_tta, model, x, scales, flip)
            for variant in _TTA_VARIANTS:
                if close(got, right := tta(**variant)):
                    expected = right
                    break
            else:  # no valid choice gives it: which mistake, made with any valid choices?
                made = (
                    text
                    for text, kw in _TTA_MISTAKES.items()
                    for right in _TTA_VARIANTS
                    if close(got, tta(**right, **kw))
                )
                hint = next(made, _TTA_HINT)
        elif isinstance(got, torch.Tensor) and got.shape[:2] == expected.shape[:2]:
            hint = "resize every run's logits back to the images' own H x W before averaging."
        compare(name, got, expected, hint=hint)
    passed(len(cases), "your TTA equals deeplab_utils.inference.predict.")
