"""Tests for the notebook-05 figure helpers in deeplab_utils.viz (losses and metrics)."""

import matplotlib

matplotlib.use("Agg")  # no display in CI

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from deeplab_utils.viz import plot_confusion_matrix, plot_gradient_maps, plot_loss_vs_overlap


@pytest.fixture(autouse=True)
def _close_figures():
    """Close every figure a test opened, so tests do not leak memory."""
    yield
    plt.close("all")


def test_loss_vs_overlap_draws_one_line_per_loss():
    """plot_loss_vs_overlap draws each curve with the given x and y values."""
    overlaps = [0.0, 0.5, 1.0]
    curves = {"BCE": [2.0, 1.0, 0.1], "Dice": torch.tensor([1.0, 0.5, 0.0])}
    fig = plot_loss_vs_overlap(overlaps, curves)
    lines = fig.axes[0].get_lines()
    assert isinstance(fig, Figure) and len(lines) == 2
    np.testing.assert_allclose(lines[1].get_ydata(), [1.0, 0.5, 0.0])
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["BCE", "Dice"]


@pytest.mark.parametrize("normalize", [True, False])
def test_confusion_matrix_values_and_labels(normalize):
    """plot_confusion_matrix shows row-normalised fractions (or raw counts) and the class names."""
    cm = torch.tensor([[3, 1, 0], [0, 0, 0], [2, 2, 4]])
    fig = plot_confusion_matrix(cm, ["bg", "cat", "dog"], normalize=normalize)
    shown = fig.axes[0].get_images()[0].get_array()
    if normalize:
        expected = np.array([[0.75, 0.25, 0], [0, 0, 0], [0.25, 0.25, 0.5]])  # by hand
    else:
        expected = cm.numpy()
    np.testing.assert_allclose(np.asarray(shown), expected)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["bg", "cat", "dog"]
    assert len(fig.axes[0].texts) == 9  # one annotation per cell for a small matrix


def test_confusion_matrix_bad_inputs():
    """A non-square matrix or a wrong number of class names raises naming both sizes."""
    with pytest.raises(ValueError, match=r"2 classes, got \(2, 3\)"):
        plot_confusion_matrix(np.zeros((2, 3)), ["a", "b"])
    with pytest.raises(ValueError, match=r"2 classes, got \(3, 3\)"):
        plot_confusion_matrix(np.eye(3), ["a", "b"])


def test_gradient_maps_grid_shape():
    """plot_gradient_maps draws one panel per (case, loss), showing |gradient|."""
    grad = -torch.arange(16.0).reshape(4, 4)
    gradients = {
        "small": {"BCE": grad, "Dice": grad * 2},
        "empty": {"BCE": grad, "Dice": torch.zeros(4, 4)},
    }
    fig = plot_gradient_maps(gradients, targets={"small": torch.eye(4)})
    panels = [ax for ax in fig.axes if ax.get_images()]
    assert len(panels) == 4
    np.testing.assert_allclose(np.asarray(panels[0].get_images()[0].get_array()), grad.abs())
