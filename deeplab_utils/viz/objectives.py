"""Figures for notebook 05 (losses and metrics): loss curves, gradient maps, confusion matrix."""

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ..figures import Array, Values, hide_ticks, line_chart, to_numpy


def plot_loss_vs_overlap(
    overlaps: Values,
    curves: dict[str, Values],
    *,
    xlabel: str = "overlap: IoU of predicted and target square",
    title: str = "Loss versus overlap",
) -> Figure:
    """A line per loss (name -> a value per overlap) against the overlap, e.g. the IoU of a
    sliding predicted square with the target. Notebook 05."""
    style = {"marker": "o", "markersize": 3}
    lines = [(name, to_numpy(overlaps), to_numpy(y), style) for name, y in curves.items()]
    return line_chart((6, 4), lines, xlabel=xlabel, ylabel="loss", title=title)[0]


def plot_gradient_maps(
    gradients: dict[str, dict[str, Array]], *, targets: dict[str, Array] | None = None
) -> Figure:
    """``|∂L/∂logit|`` per pixel, a row per case ("small object"), a column per loss: ``(H, W)``
    maps, each on its own scale (losses differ by orders of magnitude), the binary ``targets``
    outlined white. Notebook 05."""
    rows, cols = len(gradients), len(next(iter(gradients.values())))
    targets = targets or {}
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
    cm: Array,
    class_names: Sequence[str] | None = None,
    *,
    normalize: bool = True,
    title: str | None = None,
    annotate: bool | None = None,
) -> Figure:
    """The ``(C, C)`` counts of ``SegmentationMetrics``, rows target classes, columns predictions.

    ``normalize`` divides each row by its sum: the diagonal is per-class recall. ``annotate``
    writes the values, by default when ``C <= 12``. Notebooks 05 and 08.
    """
    matrix = to_numpy(cm)
    names = [str(i) for i in range(len(matrix))] if class_names is None else list(class_names)
    if matrix.shape != (len(names), len(names)):
        raise ValueError(f"cm must be (C, C) for the {len(names)} classes, got {matrix.shape}")
    if normalize:
        row_sums = matrix.sum(axis=1, keepdims=True)  # rows without pixels stay 0
        matrix = np.divide(matrix, row_sums, out=np.zeros_like(matrix), where=row_sums > 0)
    size = max(4.0, 0.5 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(len(names)), labels=names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), labels=names)
    default = "confusion matrix (row-normalised)" if normalize else "confusion matrix"
    ax.set(xlabel="predicted class", ylabel="target class", title=title or default)
    if annotate is None:
        annotate = len(names) <= 12
    if annotate:
        threshold = matrix.max() / 2 if matrix.max() > 0 else 1
        for (i, j), value in np.ndenumerate(matrix):
            text = f"{value:.2f}" if normalize else f"{int(value)}"
            colour = "white" if value > threshold else "black"
            ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=8)
    fig.tight_layout()
    return fig
