"""Tests for the notebook-06 self-check: check_pad_and_crop."""

import pytest
import torch
import torch.nn.functional as F

from deeplab_utils.checks import CheckFailed, check_pad_and_crop


def _pad_amounts(image, size):
    return max(0, size - image.shape[-2]), max(0, size - image.shape[-1])


def good_pad_and_crop(image, mask, size, top, left):
    """Pad bottom/right (image 0, mask 255), then cut the same window: written with F.pad."""
    pad_h, pad_w = _pad_amounts(image, size)
    image = F.pad(image, (0, pad_w, 0, pad_h), value=0)
    mask = F.pad(mask, (0, pad_w, 0, pad_h), value=255)
    return image[:, top : top + size, left : left + size], mask[
        top : top + size, left : left + size
    ]


def by_hand_pad_and_crop(image, mask, size, top, left):
    """The same with preallocated canvases instead of F.pad."""
    c, h, w = image.shape
    canvas = image.new_zeros(c, max(h, size), max(w, size))
    labels = mask.new_full((max(h, size), max(w, size)), 255)
    canvas[:, :h, :w], labels[:h, :w] = image, mask
    return canvas[:, top : top + size, left : left + size], labels[
        top : top + size, left : left + size
    ]


def mask_padded_with_zero(image, mask, size, top, left):
    pad_h, pad_w = _pad_amounts(image, size)
    image = F.pad(image, (0, pad_w, 0, pad_h))
    mask = F.pad(mask, (0, pad_w, 0, pad_h))  # padding labelled background
    return image[:, top : top + size, left : left + size], mask[
        top : top + size, left : left + size
    ]


def padded_on_both_sides(image, mask, size, top, left):
    pad_h, pad_w = _pad_amounts(image, size)
    pads = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
    image, mask = F.pad(image, pads), F.pad(mask, pads, value=255)
    return image[:, top : top + size, left : left + size], mask[
        top : top + size, left : left + size
    ]


def mask_window_swapped(image, mask, size, top, left):
    image, mask = good_pad_and_crop(image, mask, max(image.shape[-2:]) + size, 0, 0)
    return image[:, top : top + size, left : left + size], mask[
        left : left + size, top : top + size
    ]


def mask_as_float(image, mask, size, top, left):
    image, mask = good_pad_and_crop(image, mask, size, top, left)
    return image, mask.float()


def not_written(image, mask, size, top, left):
    raise NotImplementedError("Exercise: write this part, then run the check below.")


@pytest.mark.parametrize("fn", [good_pad_and_crop, by_hand_pad_and_crop])
def test_check_passes_on_correct_implementations(fn, capsys):
    """Two independent correct implementations pass with one ✓ line."""
    check_pad_and_crop(fn)
    assert capsys.readouterr().out.startswith("✓ check_pad_and_crop")


def test_reference_behaviour_by_hand():
    """On a 1x2x3 example the correct version gives the hand-written padded crop."""
    image = torch.tensor([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]])  # (1, 2, 3)
    mask = torch.tensor([[1, 2, 3], [4, 0, 1]])  # (2, 3) int64
    crop_image, crop_mask = good_pad_and_crop(image, mask, 3, 0, 0)
    assert torch.equal(crop_image, torch.tensor([[[1.0, 2, 3], [4, 5, 6], [0, 0, 0]]]))
    assert torch.equal(crop_mask, torch.tensor([[1, 2, 3], [4, 0, 1], [255, 255, 255]]))


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (mask_padded_with_zero, "must be 255"),
        (padded_on_both_sides, "padding on both axes"),
        (mask_window_swapped, "same window"),
        (mask_as_float, "came back as torch.float32"),
    ],
)
def test_check_catches_wrong_implementations(fn, message):
    """Padding the mask with 0, centred padding, misaligned windows and a float mask all fail."""
    with pytest.raises(CheckFailed, match=message):
        check_pad_and_crop(fn)


def test_check_reports_not_implemented():
    """The student stub is reported as 'not implemented yet'."""
    with pytest.raises(CheckFailed, match="not implemented yet"):
        check_pad_and_crop(not_written)


def test_check_rejects_a_single_return_value():
    """Returning only the image (not the pair) names what was expected."""
    with pytest.raises(CheckFailed, match=r"expected a pair \(image_crop, mask_crop\)"):
        check_pad_and_crop(lambda image, mask, size, top, left: image)
