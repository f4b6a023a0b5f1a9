"""Tests for deeplab_utils.figures: image and mask conversion, and the main job's PNG grid."""

import io

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from deeplab_utils.data import SHAPES_CLASSES, SHAPES_PALETTE, normalize
from deeplab_utils.figures import (
    LEGEND_INCHES,
    PANEL_INCHES,
    class_legend,
    display_image,
    mask_rgb,
    prediction_grid_png,
)


def test_display_image_reads_every_layout_and_scale():
    """uint8 (3, H, W), uint8 (H, W, 3), float in [0, 1] and ImageNet-normalised float all give
    the same uint8 (H, W, 3) picture (floats within rounding)."""
    raw = torch.randint(0, 256, (3, 4, 5), dtype=torch.uint8)
    expected = raw.permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(display_image(raw), expected)
    np.testing.assert_array_equal(display_image(expected.copy()), expected)
    np.testing.assert_array_equal(display_image(raw / 255, normalized=False), expected)
    normalised = display_image(normalize(raw / 255)).astype(int)
    assert np.abs(normalised - expected).max() <= 1


def test_mask_rgb_paints_pure_palette_colours_and_ignore_white():
    """Each class gets its palette colour exactly, 255 (ignore) white: a NumPy lookup."""
    mask = torch.tensor([[0, 1, 2], [3, 4, 255]])
    expected = np.asarray([*SHAPES_PALETTE, (255, 255, 255)])[[[0, 1, 2], [3, 4, 5]]]
    np.testing.assert_array_equal(mask_rgb(mask, SHAPES_PALETTE), expected)


def test_class_legend_names_each_class_in_its_colour():
    """One entry per class name, its patch in the class's colour; placement options pass on."""
    fig = Figure()
    ax = fig.subplots()
    class_legend(ax, SHAPES_PALETTE, SHAPES_CLASSES[:3], loc="upper left")
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == list(SHAPES_CLASSES[:3])
    colour = legend.legend_handles[2].get_facecolor()[:3]
    np.testing.assert_allclose(colour, np.asarray(SHAPES_PALETTE[2]) / 255)


@pytest.mark.parametrize("columns", [1, 2])
def test_prediction_grid_png_is_a_png_one_row_per_image(columns):
    """The bytes are a PNG sized to the grid: a panel per image and mask, a row per sample, and
    the legend's strip below."""
    images = torch.randn(3, 3, 8, 8)
    masks = {f"mask {i}": torch.randint(0, 5, (3, 8, 8)) for i in range(columns)}
    png = prediction_grid_png(images, masks, SHAPES_PALETTE, SHAPES_CLASSES)
    with Image.open(io.BytesIO(png)) as picture:
        assert picture.format == "PNG"
        width, height = picture.size
    assert width == pytest.approx(PANEL_INCHES * (1 + columns) * 100, abs=1)
    assert height == pytest.approx((PANEL_INCHES * 3 + LEGEND_INCHES) * 100, abs=1)
