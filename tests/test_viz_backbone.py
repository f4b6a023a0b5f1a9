"""Tests for the notebook-03 figures in deeplab_utils.viz: right panels, labels and errors."""

import matplotlib

matplotlib.use("Agg")  # headless: no display in CI

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from deeplab_utils.viz import (
    draw_backbone_bottleneck,
    plot_backbone_feature_maps,
    plot_backbone_output_stride_cost,
)


@pytest.fixture(autouse=True)
def _close_figures():
    """Every test leaves no figure open."""
    yield
    plt.close("all")


def test_bottleneck_diagram_names_the_three_convs_and_the_sum():
    """The diagram is one axes showing 1x1, 3x3 (with dilation), 1x1, the sum and the shortcut."""
    fig = draw_backbone_bottleneck()
    assert len(fig.axes) == 1
    text = " ".join(t.get_text() for t in fig.axes[0].texts)
    for word in ("1×1 conv", "3×3 conv", "dilation r", "4·planes", "+", "downsample"):
        assert word in text


def test_cost_chart_has_one_bar_per_output_stride_with_ratios():
    """Each panel has a bar per output stride, heights in G / MiB, ratio labels to the first."""
    fig = plot_backbone_output_stride_cost(
        (32, 16, 8), (1e9, 2e9, 5e9), (2**20, 3 * 2**20, 8 * 2**20), input_size=(65, 65)
    )
    macs_ax, memory_ax = fig.axes
    assert [p.get_height() for p in macs_ax.patches] == pytest.approx([1, 2, 5])
    assert [p.get_height() for p in memory_ax.patches] == pytest.approx([1, 3, 8])
    assert [t.get_text() for t in macs_ax.get_xticklabels()] == ["OS 32", "OS 16", "OS 8"]
    labels = [t.get_text() for t in macs_ax.texts]
    assert labels[2].endswith("×5")


def test_feature_maps_show_the_most_varying_channels_at_their_size():
    """One row per feature map: the image, then the channels with the largest variance."""
    low = torch.zeros(1, 8, 5, 5)
    low[0, 6] = torch.randn(5, 5) * 10  # the most varying channel
    low[0, 2] = torch.randn(5, 5)
    fig = plot_backbone_feature_maps(
        np.zeros((20, 20, 3)), {"low_level": low, "out": torch.rand(4, 2, 2)}, channels=2
    )
    assert len(fig.axes) == 6
    assert fig.axes[1].get_title() == "low_level ch 6\n5×5"
    assert fig.axes[2].get_title() == "low_level ch 2\n5×5"
    assert fig.axes[4].get_title().endswith("2×2")
