"""Tests for notebook 08's self-check: check_flip_tta."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from deeplab_utils.checks import CheckFailed, check_flip_tta


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


def test_check_flip_tta_not_implemented():
    """The student stub gives "not implemented yet"."""
    with pytest.raises(CheckFailed, match="not implemented yet"):
        check_flip_tta(not_written)


def test_check_flip_tta_reports_learner_errors():
    """An exception in the learner's code becomes a CheckFailed naming the case."""
    with pytest.raises(CheckFailed, match="case '3x3 conv, batch 2, 9x13' raised RuntimeError"):
        check_flip_tta(crashes)
