"""Light tests for the notebook-07 figures in deeplab_utils.viz."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from deeplab_utils import viz
from deeplab_utils.data import SHAPES_CLASSES, SHAPES_PALETTE
from deeplab_utils.training import History


def _history(steps=30, evals=(10, 20, 30)):
    return History(
        step=list(range(1, steps + 1)),
        loss=[2.0 / s for s in range(1, steps + 1)],
        lr=[1e-3 * (1 - (s - 1) / steps) ** 0.9 for s in range(1, steps + 1)],
        eval_step=list(evals),
        val=[{"miou": 0.1 * (i + 1)} for i in range(len(evals))],
    )


def test_lr_schedules_draws_one_line_per_schedule():
    """Each schedule becomes one line holding its values at steps 0, 1, 2, ..."""
    curves = {"power 0.9": [1.0, 0.6, 0.0], "power 1": [1.0, 0.5, 0.0]}
    fig = viz.plot_lr_schedules(curves)
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2
    np.testing.assert_array_equal(lines[1].get_xydata(), [[0, 1.0], [1, 0.5], [2, 0.0]])
    plt.close(fig)


def test_training_curves_panels():
    """Three panels: raw + smoothed loss, LR per step, one mIoU point per evaluation."""
    history = _history()
    fig = viz.plot_training_curves(history, smooth=5)
    ax_loss, ax_lr, ax_val = fig.axes
    raw, smoothed = ax_loss.get_lines()
    assert len(raw.get_xdata()) == 30
    # smoothed point at step 5 = mean of the first five losses, by hand
    assert smoothed.get_xdata()[0] == 5
    assert smoothed.get_ydata()[0] == pytest.approx(np.mean([2.0 / s for s in range(1, 6)]))
    np.testing.assert_allclose(ax_lr.get_lines()[0].get_ydata(), history.lr)
    np.testing.assert_allclose(
        ax_val.get_lines()[0].get_xydata(), [[10, 0.1], [20, 0.2], [30, 0.3]]
    )
    plt.close(fig)


def test_training_curves_draw_the_validation_loss_where_it_was_measured():
    """Histories whose evaluations carry a loss get a validation line on the loss panel, one
    point per evaluation; older histories (no "loss") draw as before."""
    history = _history()
    for i, metrics in enumerate(history.val):
        metrics["loss"] = 1.0 - 0.1 * i
    fig = viz.plot_training_curves(history, smooth=5)
    validation = fig.axes[0].get_lines()[-1]
    np.testing.assert_allclose(validation.get_xydata(), [[10, 1.0], [20, 0.9], [30, 0.8]])
    plt.close(fig)
    fig = viz.plot_training_curves(_history(), smooth=5)
    assert len(fig.axes[0].get_lines()) == 2  # per step and smoothed only
    plt.close(fig)


def test_lr_range_plots_loss_against_rate_on_a_log_axis():
    """One point per step at (rate, loss), a log rate axis, and the chosen rate's dashed line."""
    fig = viz.plot_lr_range([1e-4, 1e-3, 1e-2], [2.0, 1.5, 3.0], chosen=5e-3)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    curve, chosen = ax.get_lines()
    np.testing.assert_allclose(curve.get_xydata(), [[1e-4, 2.0], [1e-3, 1.5], [1e-2, 3.0]])
    assert chosen.get_linestyle() == "--" and chosen.get_xdata()[0] == 5e-3
    plt.close(fig)


def test_training_curves_without_validation():
    """A history without evaluations still draws (the mIoU panel says so)."""
    fig = viz.plot_training_curves(_history(evals=()))
    assert "no validation" in fig.axes[2].texts[0].get_text()
    plt.close(fig)


def test_before_after_grid():
    """One row per sample: image, truth, before, after."""
    images = torch.randn(3, 3, 8, 8)
    masks = torch.randint(0, 5, (3, 8, 8))
    fig = viz.show_predictions_before_after(
        images, masks, torch.zeros_like(masks), masks, SHAPES_PALETTE, SHAPES_CLASSES
    )
    assert sum(1 for ax in fig.axes if ax.images) == 12
    plt.close(fig)


def test_before_after_length_mismatch():
    """Predictions for fewer samples than images are refused, naming the counts."""
    masks = torch.zeros(2, 4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="2 images.*'before training': 1"):
        viz.show_predictions_before_after(
            torch.randn(2, 3, 4, 4), masks, masks[:1], masks, SHAPES_PALETTE, SHAPES_CLASSES
        )
