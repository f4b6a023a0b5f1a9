"""Tests for notebook 08's self-checks: check_confusion_matrix and check_tta."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from deeplab_utils.checks import CheckFailed, check_confusion_matrix, check_tta

# --- the evaluation loop (check_confusion_matrix) ---------------------------------------------


def _counting(*, eval_mode=True, no_grad=True, transpose=False, count_ignored=False, dim=1):
    """An evaluation loop, right by default, with one plausible mistake switched on."""

    def run(model, loader, num_classes):
        c = num_classes
        if eval_mode:
            model.eval()
        matrix = torch.zeros(c, c, dtype=torch.int64)
        with torch.no_grad() if no_grad else torch.enable_grad():
            for images, masks in loader:
                logits = model(images)
                pred = logits.argmax(dim=dim).clamp(max=c - 1)
                if dim != 1:  # (B, C, H, W) argmax over H: broadcast back to the masks' shape
                    pred = pred[:, : masks.shape[1]].expand_as(masks)
                target = masks.clamp(max=c - 1) if count_ignored else masks
                keep = torch.ones_like(target, dtype=torch.bool) if count_ignored else masks != 255
                rows, cols = (pred, target) if transpose else (target, pred)
                matrix += torch.bincount(rows[keep] * c + cols[keep], minlength=c * c).reshape(c, c)
        return matrix

    return run


def test_check_confusion_matrix_passes_a_correct_loop(capsys):
    loop = _counting()
    assert check_confusion_matrix(loop) is loop
    assert "✓ check_confusion_matrix" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("mistake", "hint"),
    [
        ({"eval_mode": False}, r"ran in training mode.*in which mode does BatchNorm"),
        ({"no_grad": False}, r"autograd on.*need the gradients"),
        ({"transpose": True}, r"rows are the target class"),
        ({"count_ignored": True}, r"leave out the pixels whose target is 255"),
    ],
)
def test_check_confusion_matrix_rejects_known_mistakes(mistake, hint):
    """No eval mode, no no_grad, swapped axes and counted ignore pixels each fail by name."""
    with pytest.raises(CheckFailed, match=hint):
        check_confusion_matrix(_counting(**mistake))


# --- multi-scale + flip TTA (check_tta) --------------------------------------------------------


def _tta(
    *,
    probs=True,
    unflip=True,
    align_corners=False,
    resize_back=True,
    by_factor=False,
    softmax_first=False,
    side=lambda s, n: round(s * n),
):
    """Multi-scale + flip TTA, right by default, with one plausible mistake (or a valid
    variant: resizing by scale_factor, a scaled side rounded another way, softmax before
    resizing back) switched on."""

    def run(model, images, scales=(1.0,), flip=False):
        h, w = images.shape[-2:]
        resize = {"mode": "bilinear", "align_corners": align_corners}
        maps = []
        with torch.no_grad():
            for s in scales:
                if by_factor:
                    x = images if s == 1 else F.interpolate(images, scale_factor=s, **resize)
                else:
                    size = (side(s, h), side(s, w))
                    x = images if size == (h, w) else F.interpolate(images, size=size, **resize)
                for mirrored in (False, True) if flip else (False,):
                    logits = model(x.flip(-1) if mirrored else x)
                    if mirrored and unflip:
                        logits = logits.flip(-1)
                    if softmax_first:
                        logits = logits.softmax(1)
                    if resize_back:
                        logits = F.interpolate(logits, size=(h, w), **resize)
                    maps.append(logits if softmax_first or not probs else logits.softmax(1))
        mean = torch.stack(maps).mean(0)
        return mean if probs else mean.softmax(1)

    return run


@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"by_factor": True},
        {"softmax_first": True},
        {"by_factor": True, "softmax_first": True},
        {"side": lambda s, n: int(s * n)},
        {"side": lambda s, n: math.ceil(s * n), "softmax_first": True},
        {"side": lambda s, n: int((n - 1) * s) + 1},  # DeepLab's own scale_dimension
    ],
    ids=["size=", "scale_factor=", "softmax, then resize", "both", "int", "ceil", "official"],
)
def test_check_tta_passes_a_correct_tta(variant, capsys):
    """The paper's TTA passes, whether the input is resized by size= or scale_factor=, whatever
    rule within a pixel gives a scaled side's length, and whether each run's softmax comes before
    or after resizing it back."""
    tta = _tta(**variant)
    assert check_tta(tta) is tta
    assert "✓ check_tta" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("mistake", "hint"),
    [
        ({"probs": False}, "average the probabilities"),
        ({"unflip": False}, "mirror the flipped run's output back"),
        ({"align_corners": True}, "align_corners=False"),
        (
            {"align_corners": True, "side": lambda s, n: int((n - 1) * s) + 1},
            "align_corners=False",
        ),  # the official code's sizes, with its align_corners: named too
        ({"resize_back": False}, r"raised RuntimeError"),  # runs of several sizes: no mean
    ],
)
def test_check_tta_rejects_known_mistakes(mistake, hint):
    """Averaged logits, an un-mirrored flip, align_corners=True and outputs left at the scaled
    size each fail with the hint that names the mistake."""
    with pytest.raises(CheckFailed, match=hint):
        check_tta(_tta(**mistake))
