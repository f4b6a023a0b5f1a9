"""Figures for notebook 07 (training): LR schedules, training curves, predictions before/after."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ..figures import Palette, draw_mask_grid
from ._common import Batch, Values, _line_chart


def plot_lr_schedules(
    curves: Mapping[str, Values], *, title: str = "Learning-rate schedules"
) -> Figure:
    """Learning-rate multiplier against the optimiser step, per schedule. Taught in notebook 07.

    Args:
        curves: label -> multiplier of the base learning rate at steps 0, 1, 2, ...
    """
    if not curves:
        raise ValueError("curves must hold at least one schedule, got none")
    # Dashes tell apart schedules that overlap (e.g. with and without warm-up after W steps).
    styles = ("-", "--", "-.", ":")
    lines = [
        (label, np.arange(len(values)), np.asarray(values, dtype=float), {"linestyle": style})
        for (label, values), style in zip(curves.items(), itertools.cycle(styles))
    ]
    fig, _ = _line_chart(
        (6.5, 3.2),
        lines,
        legend={"frameon": False},
        xlabel="optimiser step",
        ylabel="lr / base lr",
        ylim=(0, 1.05),
        title=title,
    )
    fig.tight_layout()
    return fig


def _history_field(history: Any, name: str) -> list[Any]:
    """``history.name`` for a :class:`~deeplab_utils.training.History`, or ``history[name]``."""
    value = history[name] if isinstance(history, Mapping) else getattr(history, name, None)
    if value is None:
        raise ValueError(f"history must have a {name!r} field (a History or its to_dict())")
    return list(value)


def plot_training_curves(history: Any, *, smooth: int = 10) -> Figure:
    """Training loss (raw and smoothed), learning rate, validation mIoU. Taught in notebook 07.

    Args:
        history: a :class:`~deeplab_utils.training.History` (or its ``to_dict()``).
        smooth: width of the moving average drawn over the noisy per-step loss (>= 1).
    """
    if not isinstance(smooth, int) or isinstance(smooth, bool) or smooth < 1:
        raise ValueError(f"smooth must be a positive int, got {smooth!r}")
    steps = np.asarray(_history_field(history, "step"), dtype=float)
    loss = np.asarray(_history_field(history, "loss"), dtype=float)
    lr = np.asarray(_history_field(history, "lr"), dtype=float)
    if len(steps) == 0:
        raise ValueError("history holds no step: train first (fit returns the history)")
    eval_steps = _history_field(history, "eval_step")
    miou = [np.nan if v.get("miou") is None else v["miou"] for v in _history_field(history, "val")]

    fig, (ax_loss, ax_lr, ax_val) = plt.subplots(1, 3, figsize=(12, 3.3))
    ax_loss.plot(steps, loss, color="0.75", lw=0.8, label="per step")
    if len(loss) >= smooth > 1:
        # Trailing mean of the last `smooth` steps: the curve never looks ahead.
        mean = np.convolve(loss, np.ones(smooth) / smooth, mode="valid")
        ax_loss.plot(steps[smooth - 1 :], mean, color="C0", label=f"mean of {smooth} steps")
    ax_loss.set(xlabel="step", ylabel="training loss", title="Loss")
    ax_loss.legend(frameon=False)
    ax_lr.plot(steps, lr, color="C1")
    ax_lr.set(xlabel="step", ylabel="learning rate", title="Learning rate (poly)")
    ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    if eval_steps:
        ax_val.plot(eval_steps, miou, "o-", color="C2")
        for x, y in zip(eval_steps, miou, strict=True):
            ax_val.annotate(f"{y:.2f}", (x, y), textcoords="offset points", xytext=(0, 6),
                            ha="center", fontsize=8)  # fmt: skip
    else:
        ax_val.text(0.5, 0.5, "no validation run", ha="center", va="center")
    ax_val.set(xlabel="step", ylabel="mIoU", title="Validation mIoU", ylim=(0, 1))
    for ax in (ax_loss, ax_lr, ax_val):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def show_predictions_before_after(
    images: Batch,
    masks: Batch,
    before: Batch,
    after: Batch,
    palette: Palette,
    class_names: Sequence[str],
    *,
    normalized: bool = True,
) -> Figure:
    """One row per sample: image, ground truth, prediction before and after training.

    Masks in the palette's pure colours. Taught in notebook 07.

    Args:
        images: ``(B, 3, H, W)`` (normalised float by default, or uint8).
        masks, before, after: ``(B, H, W)`` class indices: truth, and the two predictions.
        palette, class_names: class colours and names, for the masks and the legend.
    """
    columns = {"ground truth": masks, "before training": before, "after training": after}
    return draw_mask_grid(
        plt.figure(), images, columns, palette, class_names, normalized=normalized
    )
