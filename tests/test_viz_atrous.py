"""Tests for the notebook 00/01 figures in deeplab_utils.viz: right panels, clean closing."""

import matplotlib

matplotlib.use("Agg")  # headless: no display in CI

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from deeplab_utils.data import SHAPES_PALETTE
from deeplab_utils.viz import (
    draw_architecture,
    plot_atrous_1d,
    plot_dilated_kernels,
    plot_receptive_field_growth,
    plot_receptive_field_maps,
    plot_segmentation_example,
)


@pytest.fixture(autouse=True)
def _close_figures():
    """Every test leaves no figure open."""
    yield
    plt.close("all")


def test_segmentation_example_two_panels_and_legend():
    """The image/mask figure has two panels and a legend entry per class, plus ignore if present."""
    mask = np.zeros((8, 8), dtype=np.int64)
    mask[2:5, 2:5] = 1
    mask[0, 0] = 255
    fig = plot_segmentation_example(
        torch.rand(3, 8, 8), mask, palette=SHAPES_PALETTE[:2], class_names=["bg", "circle"]
    )
    assert len(fig.axes) == 2
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert legend == ["bg", "circle", "ignore (255)"]


def test_architecture_is_one_axes_with_all_blocks():
    """The block diagram is a single axes naming the backbone, ASPP and the mask."""
    fig = draw_architecture()
    assert len(fig.axes) == 1
    text = " ".join(t.get_text() for t in fig.axes[0].texts)
    for word in ("ResNet-50", "ASPP", "48 channels", "OS 16", "OS 4", "classifier", "K", "mask"):
        assert word in text


@pytest.mark.parametrize("rates", [(1,), (1, 2, 3)])
def test_atrous_1d_one_row_per_rate_and_taps_at_gaps(rates):
    """One panel per rate; its highlighted taps sit r samples apart around the centre."""
    fig = plot_atrous_1d(torch.arange(11.0), rates=rates)
    assert len(fig.axes) == len(rates)
    for ax, rate in zip(fig.axes, rates, strict=True):
        taps = ax.lines[-1].get_xdata()  # the orange tap markers are drawn last
        np.testing.assert_array_equal(taps, [5 - rate, 5, 5 + rate])


def test_atrous_1d_rejects_taps_off_the_signal():
    """A rate whose taps leave the signal is an error naming that rate."""
    with pytest.raises(ValueError, match="rate 4 puts taps"):
        plot_atrous_1d(np.zeros(7), rates=(4,))


@pytest.mark.parametrize("rates", [(1,), (1, 2, 3)])
def test_dilated_kernels_draw_k_squared_taps(rates):
    """Each panel marks exactly 9 taps, spread over a (2r + 1)-wide window."""
    fig = plot_dilated_kernels(rates)
    assert len(fig.axes) == len(rates)
    for ax, rate in zip(fig.axes, rates, strict=True):
        grid = ax.images[0].get_array()
        rows, cols = np.nonzero(grid)
        assert len(rows) == 9
        assert rows.max() - rows.min() + 1 == 2 * rate + 1
        assert cols.max() - cols.min() + 1 == 2 * rate + 1


@pytest.mark.parametrize("counts, n_axes", [(False, 2), (True, 4)])
def test_receptive_field_maps_panels(counts, n_axes):
    """Two maps give two panels, plus a colour bar each when drawing counts."""
    maps = [torch.ones(5, 5), np.eye(5)]
    fig = plot_receptive_field_maps(maps, ["a", "b"], counts=counts)
    assert len(fig.axes) == n_axes
    assert fig.axes[0].get_title() == "a"


def test_receptive_field_counts_show_one_path_apart_from_none():
    """On the counts' colour scale a one-path pixel is coloured and an unseen one white."""
    counts = np.zeros((5, 5))
    counts[2, 2], counts[0, 0] = 400.0, 1.0
    fig = plot_receptive_field_maps([counts], ["a"], counts=True)
    rgba = fig.axes[0].images[0].to_rgba(fig.axes[0].images[0].get_array())
    assert tuple(rgba[0, 1]) == (1.0, 1.0, 1.0, 1.0)  # no path: white
    assert rgba[0, 0, :3].max() < 0.9  # one path: a clear colour, not white


def test_receptive_field_maps_rejects_mismatched_titles():
    """Two maps with one title is an error naming both counts."""
    with pytest.raises(ValueError, match="2 maps and 1 titles"):
        plot_receptive_field_maps([np.ones((3, 3))] * 2, ["a"])


def test_receptive_field_growth_one_line_per_curve():
    """Each labelled curve becomes one line with its values, in a legend."""
    fig = plot_receptive_field_growth({"rate 1": [3, 5, 7], "doubling": [3, 7, 15]}, log_y=True)
    (ax,) = fig.axes
    assert [line.get_label() for line in ax.lines] == ["rate 1", "doubling"]
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), [3, 7, 15])
    assert ax.get_yscale() == "log"
