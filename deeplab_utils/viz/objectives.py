"""Figures for notebook 05 (losses and metrics): loss curves, gradient maps, confusion matrix."""

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ..figures import Array, Values, hide_ticks, line_chart, to_numpy


def plot_loss_vs_overlap(overlaps: Values, curves: dict[str, Values]) -> Figure:
    """A line per loss (name -> a value per overlap) against the IoU of a sliding predicted
    square with the target. Notebook 05."""
    style = {"marker": "o", "markersize": 3}
    lines = [(name, to_numpy(overlaps), to_numpy(y), style) for name, y in curves.items()]
    xlabel = "overlap: IoU of predicted and target square"
    return line_chart((6, 4), lines, xlabel=xlabel, ylabel="loss", title="Loss versus overlap")[0]


def plot_gradient_maps(
    gradients: dict[str, dict[str, Array]], *, targets: dict[str, Array]
) -> Figure:
    """``|∂L/∂logit|`` per pixel, a row per case ("small object"), a column per loss: ``(H, W)``
    maps, each on its own scale (losses differ by orders of magnitude), the binary ``targets``
    outlined white. Notebook 05."""
    rows, cols = len(gradients), len(next(iter(gradients.values())))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.5 * rows), squeeze=False)
    for row, (case, maps) in zip(axes, gradients.items(), strict=True):
        for ax, (loss_name, grad) in zip(row, maps.items(), strict=True):
            magnitude = np.abs(to_numpy(grad))
            peak = magnitude.max()
            ax.imshow(magnitude, cmap="magma", vmin=0, vmax=peak if peak > 0 else 1)
            outline = to_numpy(targets.get(case, []))  # empty: no target for this case
            if outline.any():
                ax.contour(outline, levels=[0.5], colors="white", linewidths=0.8)
            ax.set_title(f"{loss_name}\nmax {peak:.1e}", fontsize=9)
        row[0].set_ylabel(case)
    hide_ticks(axes.flat)
    fig.suptitle("|∂ loss / ∂ logit| per pixel")
    fig.tight_layout()
    return fig


def plot_confusion_matrix(
    cm: Array, class_names: Sequence[str], *, normalize: bool = True, title: str | None = None
) -> Figure:
    """The ``(C, C)`` counts of ``SegmentationMetrics``, rows target classes, columns predictions.

    ``normalize`` divides each row by its sum: the diagonal is per-class recall. Up to 12 classes,
    each cell shows its value. Notebooks 05 and 08.
    """
    matrix = to_numpy(cm)
    if matrix.shape != (len(class_names), len(class_names)):
        raise ValueError(f"cm must be (C, C) for {len(class_names)} classes, got {matrix.shape}")
    if normalize:
        row_sums = matrix.sum(axis=1, keepdims=True)  # rows without pixels stay 0
        matrix = np.divide(matrix, row_sums, out=np.zeros_like(matrix), where=row_sums > 0)
    size = max(4.0, 0.5 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(len(class_names)), labels=class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), labels=class_names)
    default = "confusion matrix (row-normalised)" if normalize else "confusion matrix"
    ax.set(xlabel="predicted class", ylabel="target class", title=title or default)
    if len(class_names) <= 12:  # more values would not fit in their cells
        threshold = matrix.max() / 2 if matrix.max() > 0 else 1
        for (i, j), value in np.ndenumerate(matrix):
            text = f"{value:.2f}" if normalize else f"{int(value)}"
            colour = "white" if value > threshold else "black"
            ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=8)
    fig.tight_layout()
    return fig
