"""Tests for deeplab_utils.data.palette: colour maps and colorize_mask."""

import numpy as np
import pytest
import torch

from deeplab_utils.data.palette import (
    IGNORE_COLOR,
    SHAPES_PALETTE,
    VOC_PALETTE,
    colorize_mask,
    voc_palette,
)


def test_voc_palette_matches_the_devkit_colours():
    """The VOC colour map has the devkit's well-known colours (e.g. person = (192, 128, 128))."""
    assert len(VOC_PALETTE) == 21
    assert VOC_PALETTE[0] == (0, 0, 0)
    assert VOC_PALETTE[1] == (128, 0, 0)  # aeroplane
    assert VOC_PALETTE[15] == (192, 128, 128)  # person
    assert VOC_PALETTE[20] == (0, 64, 128)  # tvmonitor
    assert voc_palette(256)[255] == (224, 224, 192)  # the void-border colour of VOC's PNGs


@pytest.mark.parametrize("batch", [None, 1, 3])
def test_colorize_mask_matches_numpy_lookup(batch):
    """Each pixel gets its class's palette colour, channels first, for (H, W) and (B, H, W)."""
    shape = (5, 7) if batch is None else (batch, 5, 7)
    mask = torch.randint(0, len(SHAPES_PALETTE), shape)
    out = colorize_mask(mask, SHAPES_PALETTE)
    expected = np.array(SHAPES_PALETTE, dtype=np.uint8)[mask.numpy()]  # (..., H, W, 3)
    assert out.dtype == torch.uint8
    np.testing.assert_array_equal(out.numpy(), np.moveaxis(expected, -1, -3))


def test_colorize_mask_paints_ignore_white():
    """Pixels labelled 255 get IGNORE_COLOR (white), not a class colour."""
    mask = torch.tensor([[0, 255], [1, 2]])
    out = colorize_mask(mask, SHAPES_PALETTE)
    assert IGNORE_COLOR == (255, 255, 255)
    assert out[:, 0, 1].tolist() == [255, 255, 255]
    assert out[:, 1, 0].tolist() == list(SHAPES_PALETTE[1])


def test_colorize_mask_rejects_labels_outside_the_palette():
    """A label with no colour raises a ValueError naming the label."""
    with pytest.raises(ValueError, match="label 7"):
        colorize_mask(torch.tensor([[0, 7]]), SHAPES_PALETTE)


def test_colorize_mask_rejects_float_masks_and_bad_shapes():
    """Float masks (probabilities, not yet an arg-max: they would paint as class 0) are a
    TypeError; a 4-D mask is a ValueError naming its shape."""
    with pytest.raises(TypeError, match="float32"):
        colorize_mask(torch.rand(4, 4), SHAPES_PALETTE)
    with pytest.raises(ValueError, match=r"\(1, 1, 4, 4\)"):
        colorize_mask(torch.zeros(1, 1, 4, 4, dtype=torch.int64), SHAPES_PALETTE)
