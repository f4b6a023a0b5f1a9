"""Tests for the data block of deeplab_utils.viz: overlays and sample/augmentation figures."""

import itertools

import numpy as np
import pytest
import torch
from matplotlib import pyplot as plt

from deeplab_utils import viz
from deeplab_utils.data import (
    SHAPES_CLASSES,
    SHAPES_PALETTE,
    ShapesDataset,
    normalize,
    train_transforms,
)


def test_overlay_mask_outlines_objects_in_their_pure_colour():
    """Outline pixels (a 4-neighbour has another class) take the exact palette colour; the rest,
    background edges and ignored pixels keep the image: no blend changes a hue."""
    image = torch.full((3, 6, 6), 100, dtype=torch.uint8)
    mask = torch.zeros(6, 6, dtype=torch.long)
    mask[1:5, 1:5] = 2
    mask[0, 5] = 255
    out = viz.overlay_mask(image, mask, SHAPES_PALETTE)
    assert out.shape == (6, 6, 3) and out.dtype == np.uint8
    m = mask.numpy()
    padded = np.pad(m, 1, mode="edge")
    neighbours = [padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]]
    edge = np.any([n != m for n in neighbours], axis=0) & (m != 0) & (m != 255)
    assert edge.sum() == 12  # the square's border ring, by NumPy
    np.testing.assert_array_equal(out[edge], np.tile(SHAPES_PALETTE[2], (12, 1)))
    np.testing.assert_array_equal(out[~edge], np.full((36 - 12, 3), 100))


def test_mask_panels_use_the_legend_colours():
    """show_predictions paints masks in the pure palette colours, titles its columns, and its
    legend names every class."""
    ds = ShapesDataset(2, image_size=16)
    images = torch.stack([ds[i][0] for i in range(2)])
    masks = torch.stack([ds[i][1] for i in range(2)])
    fig = viz.show_predictions(images, masks, masks, SHAPES_PALETTE, SHAPES_CLASSES)
    shown = fig.axes[1].images[0].get_array()  # the first sample's ground truth
    expected = np.asarray(SHAPES_PALETTE)[masks[0].numpy()]
    np.testing.assert_array_equal(shown, expected)
    assert [ax.get_title() for ax in fig.axes[:3]] == ["image", "ground truth", "prediction"]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == list(SHAPES_CLASSES)
    plt.close(fig)


def test_overlay_mask_denormalises_float_images():
    """A normalised float image gives the same overlay as its uint8 original (within rounding)."""
    raw = torch.randint(0, 256, (3, 4, 5), dtype=torch.uint8)
    mask = torch.randint(0, 5, (4, 5))
    a = viz.overlay_mask(raw, mask, SHAPES_PALETTE).astype(int)
    b = viz.overlay_mask(normalize(raw / 255.0), mask, SHAPES_PALETTE).astype(int)
    assert np.abs(a - b).max() <= 1


def test_overlay_mask_rejects_mismatched_shapes():
    """A mask whose size differs from the image's raises a ValueError naming both shapes."""
    with pytest.raises(ValueError, match=r"\(3, 3\).*\(4, 4\)"):
        viz.overlay_mask(torch.zeros(3, 4, 4, dtype=torch.uint8), torch.zeros(3, 3), SHAPES_PALETTE)


def _samples_figure(images, masks, with_preds):
    if with_preds:
        return viz.show_predictions(images, masks, masks.flip(-1), SHAPES_PALETTE, SHAPES_CLASSES)
    return viz.show_samples(images, masks, SHAPES_PALETTE, SHAPES_CLASSES, ncols=4)


@pytest.mark.parametrize(
    ("n", "with_preds", "axes"), [(3, False, 2 * 4), (5, False, 3 * 4), (5, True, 5 * 3)]
)
def test_show_samples_lays_out_rows(n, with_preds, axes):
    """show_samples draws each sample as image | truth, at most 4 panels a row; show_predictions
    adds the prediction, a sample a row."""
    ds = ShapesDataset(n, image_size=16)
    images = torch.stack([ds[i][0] for i in range(n)])
    masks = torch.stack([ds[i][1] for i in range(n)])
    fig = _samples_figure(images, masks, with_preds)
    axes_with_images = [ax for ax in fig.axes if ax.images]
    assert len(axes_with_images) == n * (3 if with_preds else 2)
    assert len(fig.axes) == axes
    plt.close(fig)


@pytest.mark.parametrize("with_preds", [False, True])
def test_show_samples_leaves_a_gap_between_rows(with_preds):
    """One sample's panels do not touch the next row's (the masks' black backgrounds would merge):
    measured on the drawn panels, after each image axis has shrunk to its square."""
    ds = ShapesDataset(4, image_size=16)
    images = torch.stack([ds[i][0] for i in range(4)])
    masks = torch.stack([ds[i][1] for i in range(4)])
    fig = _samples_figure(images, masks, with_preds)
    fig.canvas.draw()
    first_column = sorted(
        (ax.get_position() for ax in fig.axes if ax.images and ax.get_position().x0 < 0.1),
        key=lambda box: -box.y0,
    )
    assert len(first_column) >= 2
    for upper, lower in itertools.pairwise(first_column):
        gap_inches = (upper.y0 - lower.y1) * fig.get_size_inches()[1]
        assert gap_inches > 0.05, f"rows {gap_inches:.3f} in apart"
    plt.close(fig)


def test_show_samples_rejects_mismatched_lengths():
    """Fewer masks than images raises a ValueError giving both counts."""
    with pytest.raises(ValueError, match="2 images, {'ground truth': 1}"):
        viz.show_samples(torch.zeros(2, 3, 4, 4), torch.zeros(1, 4, 4), SHAPES_PALETTE, "ab")


def test_show_augmentations_is_reproducible_and_leaves_global_rng_alone():
    """Same seed -> same figure pixels, and the global torch RNG state is untouched."""
    image, mask = ShapesDataset(1, image_size=32).render(0)
    state = torch.get_rng_state()
    figs = [viz.show_augmentations(image, mask, train_transforms(32), SHAPES_PALETTE, n=3)]
    figs.append(viz.show_augmentations(image, mask, train_transforms(32), SHAPES_PALETTE, n=3))
    assert torch.equal(state, torch.get_rng_state())
    for a, b in zip(figs[0].axes, figs[1].axes, strict=True):
        np.testing.assert_array_equal(a.images[0].get_array(), b.images[0].get_array())
    assert len(figs[0].axes) == 2 * 4
    for fig in figs:
        plt.close(fig)


def test_plot_class_balance_bars_match_fractions():
    """One bar per class, with heights equal to the given fractions."""
    fractions = [0.6, 0.1, 0.1, 0.15, 0.05]
    fig = viz.plot_class_balance(fractions, SHAPES_CLASSES, SHAPES_PALETTE)
    heights = [p.get_height() for p in fig.axes[0].patches]
    np.testing.assert_allclose(heights, fractions)
    plt.close(fig)
