"""Figures for notebook 06 (data pipeline): mask overlays, samples, class balance, augmentation."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torchvision import tv_tensors

from ..figures import Palette, _hide_ticks, _mask_rgb, display_image, draw_mask_grid, mask_outlines
from ._common import Array, Batch, Values, _to_numpy


def overlay_mask(
    image: Array, mask: Array, palette: Palette, *, normalized: bool = True
) -> np.ndarray:
    """The image with each object outlined in its class's pure colour. Taught in notebook 06.

    Outlines, not a blend: a blend changes the hue, so it would no longer match the legend.

    Args:
        image: ``(3, H, W)``: uint8, or float (ImageNet-normalised if ``normalized`` else [0, 1]).
        mask: ``(H, W)`` class indices; class 0 (background) and 255 (ignore) get no outline.
        palette: ``(K, 3)`` RGB colours.

    Returns:
        uint8 array ``(H, W, 3)``.
    """
    return mask_outlines(image, mask, palette, normalized=normalized)


def show_samples(
    images: Batch,
    masks: Batch,
    palette: Palette,
    class_names: Sequence[str],
    *,
    preds: Batch | None = None,
    ncols: int = 2,
    normalized: bool = True,
) -> Figure:
    """Samples in rows: image, ground-truth mask (and prediction, if given) in pure colours.

    Taught in notebook 06; reused for predictions in notebooks 07-08.

    Args:
        images: ``(B, 3, H, W)`` (normalised float by default, or uint8) or a list of ``(3, H, W)``.
        masks: ``(B, H, W)`` ground-truth class indices.
        palette, class_names: class colours and names, for the masks and the legend.
        preds: optional ``(B, H, W)`` predicted classes, drawn in a third column.
        ncols: samples side by side (at most as many as fit 4 panels in a row).
    """
    if len(images) != len(masks) or (preds is not None and len(preds) != len(images)):
        raise ValueError(
            f"need as many masks/preds as images, got {len(images)} images, {len(masks)} masks"
            + ("" if preds is None else f", {len(preds)} preds")
        )
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    columns = {"ground truth": masks}
    if preds is not None:
        columns["prediction"] = preds
    groups = max(1, min(ncols, 4 // (1 + len(columns))))
    return draw_mask_grid(
        plt.figure(), images, columns, palette, class_names, normalized=normalized, groups=groups
    )


def show_predictions(
    images: Batch,
    masks: Batch,
    preds: Batch,
    palette: Palette,
    class_names: Sequence[str],
    *,
    ncols: int = 1,
) -> Figure:
    """Image, ground truth and prediction for each sample. Taught in notebooks 07-08."""
    return show_samples(images, masks, palette, class_names, preds=preds, ncols=ncols)


def plot_class_balance(
    fractions: Values,
    class_names: Sequence[str],
    palette: Palette,
    *,
    title: str = "Share of pixels per class",
) -> Figure:
    """Bar chart of the fraction of pixels in each class. Taught in notebook 06."""
    fractions = _to_numpy(fractions, float64=True)
    if fractions.ndim != 1 or len(fractions) != len(class_names):
        raise ValueError(
            f"need one fraction per class: {len(class_names)} classes, got shape {fractions.shape}"
        )
    fig, ax = plt.subplots(figsize=(1.2 * len(class_names) + 2, 3))
    colours = [np.asarray(c) / 255 for c in palette[: len(class_names)]]
    bars = ax.bar(class_names, fractions, color=colours, edgecolor="grey")
    ax.bar_label(bars, labels=[f"{f:.1%}" for f in fractions])
    ax.set_ylabel("fraction of pixels")
    ax.set_ylim(0, min(1.0, fractions.max() * 1.2 + 0.02))
    ax.set_title(title)
    fig.tight_layout()
    return fig


def show_augmentations(
    image: torch.Tensor,
    mask: torch.Tensor,
    transform: Callable,
    palette: Palette,
    *,
    n: int = 4,
    seed: int = 0,
) -> Figure:
    """Several random draws of a joint transform on one sample: image above its mask.

    The first column is the input; the draws are seeded without touching the global RNG, so
    the figure is reproducible. Taught in notebook 06.

    Args:
        image: uint8 ``(3, H, W)`` before any transform.
        mask: ``(H, W)`` class indices.
        transform: joint transform ``(Image, Mask) -> (normalised float image, mask)``.
    """
    pairs = [(image, mask, False)]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(n):
            out = transform(tv_tensors.Image(image), tv_tensors.Mask(mask))
            pairs.append((out[0], out[1], True))
    fig, axes = plt.subplots(2, n + 1, figsize=(1.8 * (n + 1), 3.9), squeeze=False)
    for j, (img, msk, normalized) in enumerate(pairs):
        axes[0, j].imshow(display_image(img, normalized=normalized))
        axes[1, j].imshow(_mask_rgb(msk, palette))
        axes[0, j].set_title("input" if j == 0 else f"draw {j}")
    _hide_ticks(axes.flat)
    axes[0, 0].set_ylabel("image")
    axes[1, 0].set_ylabel("mask\n(white = ignore)")
    fig.tight_layout()
    return fig
