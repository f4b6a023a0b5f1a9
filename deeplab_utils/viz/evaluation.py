"""Figures for notebook 08 (evaluation and inference): per-class IoU, speed, a segmented image."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator

from ..figures import Palette, _class_legend, _hide_ticks, _mask_rgb, display_image
from ._common import Array, Values, _line_chart, _to_numpy
from .data import overlay_mask


def plot_per_class_iou(
    iou: Values,
    class_names: Sequence[str],
    palette: Palette,
    *,
    pixel_share: Values | None = None,
    title: str = "IoU per class",
) -> Figure:
    """Bar chart of per-class IoU with the mIoU as a dashed line. Taught in notebook 08.

    Args:
        iou: ``(C,)`` IoU per class (NaN for a class absent from target and prediction: no bar).
        class_names, palette: names and RGB colours of the ``C`` classes.
        pixel_share: optional ``(C,)`` fraction of target pixels per class, written under each
            name, so that a high mIoU driven by a dominant class is visible.
    """
    values = _to_numpy(iou, float64=True)
    if values.ndim != 1 or len(values) != len(class_names):
        raise ValueError(
            f"need one IoU per class: {len(class_names)} classes, got shape {values.shape}"
        )
    labels = list(class_names)
    if pixel_share is not None:
        share = _to_numpy(pixel_share, float64=True)
        if share.shape != values.shape:
            raise ValueError(
                f"pixel_share must have shape {values.shape} like iou, got {share.shape}"
            )
        labels = [f"{name}\n{s:.0%} of pixels" for name, s in zip(labels, share, strict=True)]
    fig, ax = plt.subplots(figsize=(1.3 * len(labels) + 2, 3.2))
    colours = [np.asarray(c) / 255 for c in palette[: len(labels)]]
    bars = ax.bar(labels, np.nan_to_num(values), color=colours, edgecolor="grey")
    ax.bar_label(bars, labels=["n/a" if np.isnan(v) else f"{v:.2f}" for v in values])
    miou = float(np.nanmean(values)) if not np.isnan(values).all() else float("nan")
    ax.axhline(miou, color="black", linestyle="--", linewidth=1, label=f"mIoU = {miou:.2f}")
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("IoU")
    ax.set_title(title)
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def plot_inference_speed(
    sizes: Sequence[int], times_ms: dict[str, Sequence[float]], *, title: str | None = None
) -> Figure:
    """Inference time against image side, one line per setting. Taught in notebook 08.

    Args:
        sizes: image sides in pixels (square images).
        times_ms: per setting (e.g. ``"plain"``, ``"MS + flip"``), one time in ms per size.
    """
    if not times_ms:
        raise ValueError("times_ms must hold at least one setting")
    for name, times in times_ms.items():
        if len(times) != len(sizes):
            raise ValueError(
                f"setting {name!r} has {len(times)} times for {len(sizes)} sizes; give one each"
            )
    lines = [(name, sizes, times, {"marker": "o"}) for name, times in times_ms.items()]
    # What the work would predict: x4 per doubling of the side, from the first setting's first time
    first = next(iter(times_ms.values()))[0]
    work = [first * (s / sizes[0]) ** 2 for s in sizes]
    lines.append(("x4 per doubling (the work)", sizes, work, {"linestyle": "--", "color": "gray"}))
    fig, ax = _line_chart(
        (5, 3.4),
        lines,
        xlabel="image size (pixels)",
        ylabel="time per image (ms, log scale)",
        title=title or "inference time (batch 1, median)",
    )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(list(sizes), labels=[f"{s}²" for s in sizes])
    ax.minorticks_off()
    # 1-2-5 ticks with plain labels: a decade's single tick would leave the axis unreadable
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda t, _: f"{t:g}"))
    fig.tight_layout()
    return fig


def show_segmented_image(
    image: Array, labels: Array, palette: Palette, class_names: Sequence[str]
) -> Figure:
    """A picture, its predicted classes, and the picture with the objects outlined.

    Classes in the palette's pure colours. Taught in notebook 08.

    Args:
        image: uint8 ``(H, W, 3)`` (as read from a file) or ``(3, H, W)``.
        labels: predicted classes ``(H, W)``, e.g. from ``segment_image``.
    """
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
    else:  # a copy: arrays from PIL are read-only
        image = torch.from_numpy(np.array(image))
    if image.ndim == 3 and image.shape[-1] == 3 and image.shape[0] != 3:
        image = image.permute(2, 0, 1)  # (H, W, 3) -> (3, H, W)
    if image.dtype != torch.uint8:
        raise TypeError(f"image must be uint8 (H, W, 3) or (3, H, W), got {image.dtype}")
    labels = torch.as_tensor(labels).detach().cpu()
    panels = [
        display_image(image),
        _mask_rgb(labels, palette),
        overlay_mask(image, labels, palette),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.6))
    for ax, panel, name in zip(axes, panels, ("image", "labels", "outlines"), strict=True):
        ax.imshow(panel)
        ax.set_title(name)
    _hide_ticks(axes)
    _class_legend(fig, palette, class_names)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig
