"""Tests for notebook 08's self-check: check_flip_tta."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from deeplab_utils.checks import CheckFailed, check_confusion_matrix, check_flip_tta, check_tta


def correct(model, images):
    """A correct flip TTA written independently of deeplab_utils.inference."""
    with torch.no_grad():
        plain = F.softmax(model(images), dim=1)
        mirrored = F.softmax(torch.flip(model(torch.flip(images, dims=[3])), dims=[3]), dim=1)
    return 0.5 * (plain + mirrored)


def no_flip_back(model, images):
    return 0.5 * (model(images).softmax(1) + model(images.flip(-1)).softmax(1))


def averages_logits(model, images):
    return (0.5 * (model(images) + model(images.flip(-1)).flip(-1))).softmax(1)


def vertical_flip(model, images):
    return 0.5 * (model(images).softmax(1) + model(images.flip(-2)).flip(-2).softmax(1))


def returns_logits(model, images):
    return 0.5 * (model(images) + model(images.flip(-1)).flip(-1))


def no_flip(model, images):
    return model(images).softmax(1)


def wrong_shape(model, images):
    return correct(model, images)[0]


def not_written(model, images):
    raise NotImplementedError("Exercise: write this part, then run the check below.")


def crashes(model, images):
    return model(images[:, :2])  # two channels: the convolution raises


def test_check_flip_tta_passes_on_correct_code(capsys):
    """An independent correct implementation passes and gets one friendly line."""
    check_flip_tta(correct)
    assert capsys.readouterr().out.startswith("✓ check_flip_tta: all 3 cases match")


@pytest.mark.parametrize(
    ("fn", "hint"),
    [
        (no_flip_back, "must be flipped back"),
        (averages_logits, "average the probabilities"),
        (vertical_flip, "not upside down"),
        (returns_logits, "return probabilities"),
        (no_flip, "also run the model on the flipped images"),
        (wrong_shape, r"expected shape \(2, 3, 9, 13\), got \(3, 9, 13\)"),
    ],
)
def test_check_flip_tta_fails_on_wrong_code(fn, hint):
    """Each plausible mistake fails, naming the case and giving the matching hint."""
    with pytest.raises(CheckFailed, match=rf"case '3x3 conv, batch 2, 9x13'.*{hint}"):
        check_flip_tta(fn)


def test_check_flip_tta_reports_learner_errors():
    """An exception in the learner's code becomes a CheckFailed naming the case."""
    with pytest.raises(CheckFailed, match="case '3x3 conv, batch 2, 9x13' raised RuntimeError"):
        check_flip_tta(crashes)


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
        ({"eval_mode": False}, r"ran in training mode.*model.eval\(\)"),
        ({"no_grad": False}, r"autograd on.*torch.no_grad\(\)"),
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
):
    """Multi-scale + flip TTA, right by default, with one plausible mistake (or a valid
    variant: resizing by scale_factor, softmax before resizing back) switched on."""
    import torch.nn.functional as F

    def run(model, images, scales=(1.0,), flip=False):
        h, w = images.shape[-2:]
        resize = {"mode": "bilinear", "align_corners": align_corners}
        maps = []
        with torch.no_grad():
            for s in scales:
                if by_factor:
                    x = images if s == 1 else F.interpolate(images, scale_factor=s, **resize)
                else:
                    size = (round(s * h), round(s * w))
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
    [{}, {"by_factor": True}, {"softmax_first": True}, {"by_factor": True, "softmax_first": True}],
    ids=["size=", "scale_factor=", "softmax, then resize", "both"],
)
def test_check_tta_passes_a_correct_tta(variant, capsys):
    """The paper's TTA passes, whether the input is resized by size= or scale_factor= and
    whether each run's softmax comes before or after resizing it back."""
    tta = _tta(**variant)
    assert check_tta(tta) is tta
    assert "✓ check_tta" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("mistake", "hint"),
    [
        ({"probs": False}, "average the probabilities"),
        ({"unflip": False}, "mirror the flipped run's output back"),
        ({"align_corners": True}, "align_corners=False"),
        ({"resize_back": False}, r"raised RuntimeError"),  # runs of several sizes: no mean
    ],
)
def test_check_tta_rejects_known_mistakes(mistake, hint):
    """Averaged logits, an un-mirrored flip, align_corners=True and outputs left at the scaled
    size each fail with the hint that names the mistake."""
    with pytest.raises(CheckFailed, match=hint):
        check_tta(_tta(**mistake))
