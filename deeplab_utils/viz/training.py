"""Figures for notebook 07 (training): LR schedules, the LR range test, training curves,
predictions before/after."""

import itertools
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ..figures import Batch, Palette, Values, draw_mask_grid, line_chart
from ..training import History


def plot_lr_schedules(curves: Mapping[str, Values]) -> Figure:
    """A line per schedule: label -> multiplier of the base LR at steps 0, 1, ... Notebook 07."""
    # Dashes tell apart schedules that overlap (e.g. with and without warm-up after W steps).
    styles = itertools.cycle({"linestyle": s} for s in ("-", "--", "-.", ":"))
    lines = [(label, np.arange(len(y)), y, next(styles)) for label, y in curves.items()]
    fig, _ = line_chart((6.5, 3.2), lines, legend={"frameon": False}, ylim=(0, 1.05),
                        xlabel="optimiser step", ylabel="lr / base lr",
                        title="Learning-rate schedules")  # fmt: skip
    return fig


def plot_lr_range(lrs: Values, losses: Values, *, chosen: float) -> Figure:
    """A learning-rate range test (Smith, arXiv 1506.01186, Sec. 3.3; here fastai's variant, one
    step per rate): each step's loss against its rate on a log axis, a dashed line at the
    ``chosen`` rate. Notebook 07."""
    lines = [("loss of the step", lrs, losses, {"marker": ".", "color": "C0"})]
    fig, ax = line_chart((6.5, 3.2), lines, legend={"frameon": False}, xscale="log",
                         xlabel="learning rate", ylabel="training loss",
                         title="Learning-rate range test")  # fmt: skip
    ax.axvline(chosen, color="C3", linestyle="--", label=f"chosen: {chosen:g}")
    ax.legend(frameon=False)
    return fig


def plot_training_curves(history: History, *, smooth: int = 10) -> Figure:
    """A ``History``'s loss (per step, a trailing mean of ``smooth`` steps, and the validation
    loss where it was measured), learning rate and validation mIoU. Notebook 07."""
    steps, loss = np.asarray(history.step), np.asarray(history.loss, dtype=float)
    miou = [np.nan if v.get("miou") is None else v["miou"] for v in history.val]
    fig, (ax_loss, ax_lr, ax_val) = plt.subplots(1, 3, figsize=(12, 3.3))
    ax_loss.plot(steps, loss, color="0.75", lw=0.8, label="per step")
    if len(loss) >= smooth > 1:  # a trailing mean: the curve never looks ahead
        mean = np.convolve(loss, np.ones(smooth) / smooth, mode="valid")
        ax_loss.plot(steps[smooth - 1 :], mean, color="C0", label=f"mean of {smooth} steps")
    marked = [(x, v.get("loss")) for x, v in zip(history.eval_step, history.val, strict=True)]
    if marked and all(value is not None for _, value in marked):  # None: no loss measured
        ax_loss.plot(*np.transpose(marked), "o-", color="C3", label="validation")
    ax_loss.set(xlabel="step", ylabel="loss", title="Loss")
    ax_loss.legend(frameon=False)
    ax_lr.plot(steps, history.lr, color="C1")
    ax_lr.set(xlabel="step", ylabel="learning rate", title="Learning rate (poly)")
    ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    if history.eval_step:
        ax_val.plot(history.eval_step, miou, "o-", color="C2")
    else:
        ax_val.text(0.5, 0.5, "no validation run", ha="center", va="center")
    for x, y in zip(history.eval_step, miou, strict=True):
        ax_val.annotate(f"{y:.2f}", (x, y), textcoords="offset points", xytext=(0, 6),
                        ha="center", fontsize=8)  # fmt: skip
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
) -> Figure:
    """A row per sample: image, ground truth, the predictions before and after training, all
    shaped as for ``show_samples``. Notebook 07."""
    columns = {"ground truth": masks, "before training": before, "after training": after}
    return draw_mask_grid(plt.figure(), images, columns, palette, class_names)
