"""Tests for the notebook 02 figures in deeplab_utils.viz: right panels, right data, errors."""

import matplotlib

matplotlib.use("Agg")  # headless: no display in CI

import matplotlib.pyplot as plt
import numpy as np
import pytest

from deeplab_utils.viz import plot_aspp_cost, plot_aspp_footprints, plot_aspp_valid_weights


@pytest.fixture(autouse=True)
def _close_figures():
    """Every test leaves no figure open."""
    yield
    plt.close("all")


@pytest.mark.parametrize(("pixel", "inside"), [((16, 16), [9, 9, 1]), ((5, 20), [6, 6, 4])])
def test_footprints_panels_count_taps_on_the_map(pixel, inside):
    """One panel per branch, and each title counts the taps that land on the 33x33 map."""
    fig = plot_aspp_footprints(33, (6, 12, 18), pixel)
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 5
    assert titles[0].startswith("1x1 conv") and titles[-1].startswith("image pooling")
    # independent count: a tap at offset k*r is on the map when 0 <= p + k*r < 33
    for title, rate, expected in zip(titles[1:4], (6, 12, 18), inside, strict=True):
        rows = sum(0 <= pixel[0] + k * rate < 33 for k in (-1, 0, 1))
        cols = sum(0 <= pixel[1] + k * rate < 33 for k in (-1, 0, 1))
        assert rows * cols == expected
        assert f"{expected}/9 taps" in title


def test_valid_weights_one_line_per_curve():
    """Each curve becomes one line holding exactly the given values."""
    rates = np.arange(1, 6)
    curves = {"9 valid": [1.0, 0.9, 0.8, 0.7, 0.6], "1 valid": [0.0, 0.0, 0.1, 0.2, 0.3]}
    fig = plot_aspp_valid_weights(rates, curves)
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == list(curves)
    np.testing.assert_allclose(lines[1].get_ydata(), curves["1 valid"])


def test_cost_one_panel_per_measure_one_bar_per_variant():
    """Bars carry the given heights, one panel per measure."""
    costs = {"regular": {"params": 15.5, "macs": 16.3}, "separable": {"params": 3.0, "macs": 2.7}}
    fig = plot_aspp_cost(costs)
    assert [ax.get_title() for ax in fig.axes] == ["params", "macs"]
    heights = [patch.get_height() for patch in fig.axes[1].patches]
    np.testing.assert_allclose(heights, [16.3, 2.7])
