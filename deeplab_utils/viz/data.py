"""Figures for notebook 06 (data pipeline): samples, class balance, augmentations."""

from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torchvision import tv_tensors

from ..figures import Palette, Values, display_image, draw_mask_grid, hide_ticks, mask_rgb, to_numpy

Batch = torch.Tensor | Sequence[torch.Tensor]  # (B, ...) or a list of (...)


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
    """A sample's ``(3, H, W)`` image (normalised, or in [0, 1], or uint8), its ``(H, W)`` mask
    and prediction, up to ``ncols`` samples and 4 panels a row. Notebooks 06-08."""
    columns = {"ground truth": masks} | ({} if preds is None else {"prediction": preds})
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
    """Image, ground truth and prediction for each sample. Notebooks 07-08."""
    return show_samples(images, masks, palette, class_names, preds=preds, ncols=ncols)


def plot_class_balance(
    fractions: Values,
    class_names: Sequence[str],
    palette: Palette,
    *,
    title: str = "Share of pixels per class",
) -> Figure:
    """Bars of the fraction of pixels in each class, in its colour. Notebook 06."""
    fractions = to_numpy(fractions)
    fig, ax = plt.subplots(figsize=(1.2 * len(class_names) + 2, 3))
    colours = [np.asarray(c) / 255 for c in palette[: len(class_names)]]
    bars = ax.bar(class_names, fractions, color=colours, edgecolor="grey")
    ax.bar_label(bars, labels=[f"{f:.1%}" for f in fractions])
    ax.set(ylabel="fraction of pixels", ylim=(0, min(1.0, fractions.max() * 1.2 + 0.02)))
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
    """A uint8 ``(3, H, W)`` image above its ``(H, W)`` mask, then ``n`` draws of a joint transform
    (to a normalised image), seeded apart from the global RNG: reproducible. Notebook 06."""
    pairs = [(image, mask, False)]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(n):
            out = transform(tv_tensors.Image(image), tv_tensors.Mask(mask))
            pairs.append((out[0], out[1], True))
    fig, axes = plt.subplots(2, n + 1, figsize=(1.8 * (n + 1), 3.9), squeeze=False)
    for j, (img, msk, normalized) in enumerate(pairs):
        axes[0, j].imshow(display_image(img, normalized=normalized))
        axes[1, j].imshow(mask_rgb(msk, palette))
        axes[0, j].set_title("input" if j == 0 else f"draw {j}")
    hide_ticks(axes.flat)
    axes[0, 0].set_ylabel("image")
    axes[1, 0].set_ylabel("mask\n(white = ignore)")
    fig.tight_layout()
    return fig
