"""Figures for notebook 05 (losses and metrics): loss curves, gradient maps, confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ..figures import _hide_ticks
from ._common import Array, Values, _line_chart, _to_numpy


def plot_loss_vs_overlap(
    overlaps: Values,
    curves: dict[str, Values],
    *,
    xlabel: str = "overlap: IoU of predicted and target square",
    title: str = "Loss versus overlap",
) -> Figure:
    """One line per loss: its value against the overlap of prediction and target.

    Taught in notebook 05.

    Args:
        overlaps: x values, e.g. the hard IoU of a sliding predicted square with the target.
        curves: loss name -> loss values, one per overlap.
    """
    x = _to_numpy(overlaps, float64=True)
    if not curves:
        raise ValueError("curves must hold at least one loss, got an empty mapping")
    lines = []
    for name, values in curves.items():
        y = _to_numpy(values, float64=True)
        if y.shape != x.shape:
            raise ValueError(
                f"curve {name!r} has {y.shape} values but overlaps has {x.shape}; "
                "give one loss value per overlap"
            )
        lines.append((name, x, y, {"marker": "o", "markersize": 3}))
    fig, _ = _line_chart((6, 4), lines, xlabel=xlabel, ylabel="loss", title=title)
    fig.tight_layout()
    return fig


def plot_gradient_maps(
    gradients: dict[str, dict[str, Array]], *, targets: dict[str, Array] | None = None
) -> Figure:
    """Grid of gradient-magnitude maps ``|∂L/∂logit|``: one row per case, one column per loss.

    Each panel has its own colour scale (losses differ by orders of magnitude) and gives its
    largest magnitude in the title. The target's outline is drawn in white where ``targets``
    gives one for the row. Taught in notebook 05.

    Args:
        gradients: case name (e.g. "small object") -> loss name -> gradient ``(H, W)``.
        targets: optional case name -> binary target mask ``(H, W)``.
    """
    if not gradients:
        raise ValueError("gradients must hold at least one case, got an empty mapping")
    loss_names = list(next(iter(gradients.values())))
    for case, maps in gradients.items():
        if list(maps) != loss_names:
            raise ValueError(
                f"every case must give the same losses; {case!r} gives {list(maps)}, "
                f"expected {loss_names}"
            )
    rows, cols = len(gradients), len(loss_names)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.5 * rows), squeeze=False)
    for r, (case, maps) in enumerate(gradients.items()):
        for c, (loss_name, grad) in enumerate(maps.items()):
            magnitude = np.abs(_to_numpy(grad, float64=True))
            if magnitude.ndim != 2:
                raise ValueError(
                    f"gradient {case!r}/{loss_name!r} must be (H, W), got {magnitude.shape}"
                )
            ax = axes[r, c]
            peak = magnitude.max()
            ax.imshow(magnitude, cmap="magma", vmin=0, vmax=peak if peak > 0 else 1)
            if targets is not None and case in targets:
                outline = _to_numpy(targets[case], float64=True)
                if outline.any():
                    ax.contour(outline, levels=[0.5], colors="white", linewidths=0.8)
            ax.set_title(f"{loss_name}\nmax {peak:.1e}", fontsize=9)
        axes[r, 0].set_ylabel(case)
    _hide_ticks(axes.flat)
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
    """Confusion matrix as a heat map: rows are target classes, columns predictions.

    Taught in notebook 05 (and reused for evaluation in notebook 08).

    Args:
        cm: ``(C, C)`` counts, rows = target, columns = prediction (as in
            ``SegmentationMetrics.compute()["confusion_matrix"]``).
        class_names: ``C`` names for the ticks; ``None`` numbers the classes.
        normalize: divide each row by its sum, so the diagonal is per-class recall; rows with
            no pixels stay 0.
        title: figure title; by default it says whether values are counts or fractions.
        annotate: write the value in each cell; ``None`` does so when ``C <= 12``.
    """
    matrix = _to_numpy(cm, float64=True)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"cm must be a square (C, C) matrix, got shape {matrix.shape}")
    num_classes = matrix.shape[0]
    if class_names is None:
        class_names = [str(i) for i in range(num_classes)]
    if len(class_names) != num_classes:
        raise ValueError(
            f"class_names must have one name per class ({num_classes}), got {len(class_names)}"
        )
    if normalize:
        row_sums = matrix.sum(axis=1, keepdims=True)
        matrix = np.divide(matrix, row_sums, out=np.zeros_like(matrix), where=row_sums > 0)
    if annotate is None:
        annotate = num_classes <= 12
    size = max(4.0, 0.5 * num_classes + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ticks = np.arange(num_classes)
    ax.set_xticks(ticks, labels=list(class_names), rotation=45, ha="right")
    ax.set_yticks(ticks, labels=list(class_names))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("target class")
    default_title = "confusion matrix (row-normalised)" if normalize else "confusion matrix"
    ax.set_title(title or default_title)
    if annotate:
        threshold = matrix.max() / 2 if matrix.max() > 0 else 1
        for (i, j), value in np.ndenumerate(matrix):
            text = f"{value:.2f}" if normalize else f"{int(value)}"
            colour = "white" if value > threshold else "black"
            ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=8)
    fig.tight_layout()
    return fig
