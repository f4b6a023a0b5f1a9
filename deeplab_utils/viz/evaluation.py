"""Figures for notebook 08 (evaluation and inference): per-class IoU, the trimap curve, speed, a
segmented image."""

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ..figures import (
    Array,
    Palette,
    Values,
    class_legend,
    display_image,
    hide_ticks,
    line_chart,
    mask_rgb,
    overlay_mask,
    plain_log_ticks,
    to_numpy,
)


def plot_per_class_iou(
    iou: Values,
    class_names: Sequence[str],
    palette: Palette,
    *,
    pixel_share: Values,
    title: str = "IoU per class",
) -> Figure:
    """Bars of the ``(C,)`` IoU per class (none for NaN), the mIoU as a dashed line. Notebook 08.

    ``pixel_share``, the ``(C,)`` fraction of target pixels per class, goes under each name, so
    that a high mIoU driven by a dominant class shows.
    """
    values = to_numpy(iou)
    if len(values) != len(class_names):
        raise ValueError(f"need one IoU per class: {len(class_names)} classes, got {len(values)}")
    shares = zip(class_names, to_numpy(pixel_share), strict=True)
    labels = [f"{name}\n{share:.0%} of pixels" for name, share in shares]
    fig, ax = plt.subplots(figsize=(1.3 * len(labels) + 2, 3.2))
    colours = [np.asarray(c) / 255 for c in palette[: len(labels)]]
    bars = ax.bar(labels, np.nan_to_num(values), color=colours, edgecolor="grey")
    ax.bar_label(bars, labels=["n/a" if np.isnan(v) else f"{v:.2f}" for v in values])
    miou = float(np.nanmean(values)) if not np.isnan(values).all() else float("nan")
    ax.axhline(miou, color="black", linestyle="--", linewidth=1, label=f"mIoU = {miou:.2f}")
    ax.set(ylim=(0, 1.1), ylabel="IoU", title=title)
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def plot_trimap(widths: Sequence[int], band_miou: Values, overall: float) -> Figure:
    """mIoU within ``w`` pixels of a ground-truth outline, against ``w`` (the trimap curve of
    DeepLab v1 and v3+), and a dashed line at the mIoU over whole images. Notebook 08."""
    lines = [("within w px of an outline", widths, band_miou, {"marker": "o"}),
             ("whole images", [widths[0], widths[-1]], [overall] * 2,
              {"linestyle": "--", "color": "gray"})]  # fmt: skip
    fig, _ = line_chart((5, 3.2), lines, legend={"frameon": False, "loc": "lower right"},
                        xlabel="band width w (pixels)", ylabel="mIoU", ylim=(0, 1),
                        title="mIoU near the objects' outlines")  # fmt: skip
    return fig


def plot_inference_speed(sizes: Sequence[int], times_ms: dict[str, Sequence[float]]) -> Figure:
    """Time per image (ms) against the side of square images, a line per setting, and a dashed
    line for what the work predicts: x4 per doubling of the side. Notebook 08."""
    lines = [(name, sizes, times, {"marker": "o"}) for name, times in times_ms.items()]
    first = next(iter(times_ms.values()))[0]  # the work's line starts at the first time
    work = [first * (s / sizes[0]) ** 2 for s in sizes]
    lines.append(("x4 per doubling (the work)", sizes, work, {"linestyle": "--", "color": "gray"}))
    fig, ax = line_chart((5, 3.4), lines, xlabel="image size (pixels)", yscale="log",
                         ylabel="time per image (ms, log scale)",
                         title="inference time (batch 1, median)")  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(sizes), labels=[f"{s}²" for s in sizes])
    ax.minorticks_off()
    plain_log_ticks(ax.yaxis)
    fig.tight_layout()
    return fig


def show_segmented_image(
    image: Array, labels: Array, palette: Palette, class_names: Sequence[str]
) -> Figure:
    """A picture (uint8 ``(H, W, 3)`` from a file, or floats in [0, 1]), its ``(H, W)`` predicted
    classes, and the picture with the objects outlined. Notebook 08."""
    picture = display_image(image, normalized=False)
    panels = {
        "image": picture,
        "labels": mask_rgb(labels, palette),
        "outlines": overlay_mask(picture, labels, palette),
    }
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.6))
    for ax, (name, panel) in zip(axes, panels.items(), strict=True):
        ax.imshow(panel)
        ax.set_title(name)
    hide_ticks(axes)
    class_legend(fig, palette, class_names)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def plot_ablations(summary: dict[str, dict], paper: dict[str, tuple]) -> Figure:
    """Left: each change's mIoU minus the full model's, a dot per seed and a bar at their mean,
    beside the paper's difference (a diamond, where it reports one); right: the trimap curve of
    each network (mean over seeds). ``summary`` is ``ablations.summarize``'s, ``paper``
    ``ablations.PAPER``. Notebook 08."""
    changes = [c for c in summary if c != "DeepLabV3+"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6), width_ratios=(1.1, 1))
    rows = range(len(changes))
    means = [np.mean(summary[c]["delta"]) for c in changes]
    left.barh(rows, means, color="lightsteelblue", height=0.5, label="mean over seeds")
    seeds = [(d, y) for y, c in enumerate(changes) for d in summary[c]["delta"]]
    left.plot(*np.transpose(seeds), "o", color="steelblue", ms=5, label="one seed")
    reported = [(paper[c][0] / 100, y) for y, c in enumerate(changes) if c in paper]
    if reported:
        paper_label = "the paper (PASCAL VOC)"
        left.plot(*np.transpose(reported), "D", color="firebrick", ms=6, label=paper_label)
    left.axvline(0, color="gray", lw=0.8)
    left.set_yticks(rows, labels=changes)
    left.set_xlabel("mIoU minus DeepLabV3+'s (the paper's: points / 100)")
    left.set_title("what each change does to mIoU")
    left.invert_yaxis()
    left.legend(frameon=False, fontsize=8, loc="center left")
    for change in [*changes, "DeepLabV3+"]:  # the reference drawn last, on top
        trimap = summary[change]["trimap"]
        style = {"lw": 2.5, "color": "black"} if change == "DeepLabV3+" else {"lw": 1.2}
        right.plot(list(trimap), list(trimap.values()), marker="o", label=change, **style)
    right.set_xticks(list(trimap))
    right.set(xlabel="band width w (pixels)", ylabel="mIoU within w px of an outline")
    right.set_title("the trimap, mean over seeds")
    right.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig
