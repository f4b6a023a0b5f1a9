"""Figures for notebook 06 (data pipeline): samples, class balance, augmentations."""

from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torchvision import tv_tensors

from ..figures import (
    Batch,
    Palette,
    Values,
    display_image,
    draw_mask_grid,
    hide_ticks,
    mask_rgb,
    to_numpy,
)


def show_samples(
    images: Batch, masks: Batch, palette: Palette, class_names: Sequence[str], *, ncols: int = 2
) -> Figure:
    """Each sample's ``(3, H, W)`` image (normalised or uint8) beside its ``(H, W)`` mask, ``ncols``
    samples a row, at most 2 (4 panels). Notebook 06."""
    columns, groups = {"ground truth": masks}, max(1, min(ncols, 2))
    return draw_mask_grid(plt.figure(), images, columns, palette, class_names, groups=groups)


def show_predictions(
    images: Batch, masks: Batch, preds: Batch, palette: Palette, class_names: Sequence[str]
) -> Figure:
    """A row per sample: image, ground truth and prediction, shaped as for ``show_samples``.
    Notebooks 07-08."""
    columns = {"ground truth": masks, "prediction": preds}
    return draw_mask_grid(plt.figure(), images, columns, palette, class_names)


def plot_class_balance(fractions: Values, class_names: Sequence[str], palette: Palette) -> Figure:
    """Bars of the fraction of pixels in each class, in its colour. Notebook 06."""
    fractions = to_numpy(fractions)
    fig, ax = plt.subplots(figsize=(1.2 * len(class_names) + 2, 3))
    colours = [np.asarray(c) / 255 for c in palette[: len(class_names)]]
    bars = ax.bar(class_names, fractions, color=colours, edgecolor="grey")
    ax.bar_label(bars, labels=[f"{f:.1%}" for f in fractions])
    ax.set(ylabel="fraction of pixels", ylim=(0, min(1.0, fractions.max() * 1.2 + 0.02)))
    ax.set_title("Share of pixels per class")
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
    """A uint8 ``(3, H, W)`` image above its ``(H, W)`` mask, then ``n`` draws of a joint transform
    (to a normalised image), seeded apart from the global RNG: reproducible. Notebook 06."""
    pairs = [(image, mask)]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        pairs += [transform(tv_tensors.Image(image), tv_tensors.Mask(mask)) for _ in range(n)]
    fig, axes = plt.subplots(2, n + 1, figsize=(1.8 * (n + 1), 3.9), squeeze=False)
    for j, (img, msk) in enumerate(pairs):
        axes[0, j].imshow(display_image(img))  # the uint8 input stays, the draws are normalised
        axes[1, j].imshow(mask_rgb(msk, palette))
        axes[0, j].set_title("input" if j == 0 else f"draw {j}")
    hide_ticks(axes.flat)
    axes[0, 0].set_ylabel("image")
    axes[1, 0].set_ylabel("mask\n(white = ignore)")
    fig.tight_layout()
    return fig
