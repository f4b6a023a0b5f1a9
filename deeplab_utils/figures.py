"""Mask figures: images beside their class masks, in the palette's pure colours, with a legend.

Training layer, because the main job writes one (``predictions.png``); the notebooks show them
through ``deeplab_utils.viz``. A mask is never blended with its image (a blend changes the hue,
so a blue square on a yellow background would look green): it is drawn beside it, or on it as
outlines. Ignored pixels (255) are white. Also the scaffolding every figure shares.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .data import colorize_mask, denormalize
from .targets import IGNORE_INDEX

__all__ = ["display_image", "draw_mask_grid", "mask_outlines", "prediction_grid_png"]

Palette = Sequence[Sequence[int]]
PANEL_INCHES = 1.9  # side of one image panel
LEGEND_INCHES = 0.45  # the strip below the panels that holds the legend
ROW_GAP = 0.08  # least space between rows of panels, as a fraction of a panel's height


def display_image(image: torch.Tensor | np.ndarray, *, normalized: bool = True) -> np.ndarray:
    """(3, H, W) image -> uint8 (H, W, 3): uint8 as is, float denormalised (or taken as [0, 1])."""
    image = torch.as_tensor(image).detach().cpu()
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be (3, H, W), got shape {tuple(image.shape)}")
    if image.dtype == torch.uint8:
        return image.permute(1, 2, 0).numpy()
    image = denormalize(image) if normalized else image.float().clamp(0.0, 1.0)
    return (image * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()


def _mask_rgb(mask: torch.Tensor | np.ndarray, palette: Palette) -> np.ndarray:
    """(H, W) class indices -> uint8 (H, W, 3) in the palette's colours."""
    return colorize_mask(torch.as_tensor(mask), palette).permute(1, 2, 0).numpy()


def _hide_ticks(axes: Iterable[Axes]) -> None:
    """No ticks on image panels."""
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])


def mask_outlines(
    image: torch.Tensor | np.ndarray,
    mask: torch.Tensor | np.ndarray,
    palette: Palette,
    *,
    normalized: bool = True,
    background: int = 0,
) -> np.ndarray:
    """The image with each object's outline drawn in its class's pure palette colour.

    A pixel is on an outline when its class is not ``background`` (nor ignored) and one of its
    4 neighbours has another class. Returns uint8 ``(H, W, 3)``.
    """
    rgb = display_image(image, normalized=normalized).copy()
    mask = torch.as_tensor(mask).detach().cpu().long()
    if tuple(mask.shape) != rgb.shape[:2]:
        raise ValueError(f"mask shape {tuple(mask.shape)} differs from image's {rgb.shape[:2]}")
    padded = torch.nn.functional.pad(mask[None, None].float(), (1, 1, 1, 1), mode="replicate")[0, 0]
    centre = padded[1:-1, 1:-1]
    edge = torch.zeros_like(mask, dtype=torch.bool)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):  # up, down, left, right neighbours
        edge |= padded[dy : dy + mask.shape[0], dx : dx + mask.shape[1]] != centre
    edge &= (mask != background) & (mask != IGNORE_INDEX)
    rgb[edge.numpy()] = _mask_rgb(mask, palette)[edge.numpy()]
    return rgb


def _class_legend(fig: Figure, palette: Palette, class_names: Sequence[str]) -> None:
    """One legend entry per class, centred along the bottom of the figure."""
    handles = [
        Patch(facecolor=np.asarray(c) / 255, edgecolor="grey", label=name)
        for c, name in zip(palette, class_names, strict=False)
    ]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 7), frameon=False)


def draw_mask_grid(
    fig: Figure,
    images: torch.Tensor | Sequence[torch.Tensor],
    masks: Mapping[str, torch.Tensor | Sequence[torch.Tensor]],
    palette: Palette,
    class_names: Sequence[str],
    *,
    normalized: bool = True,
    groups: int = 1,
) -> Figure:
    """Fill ``fig`` with one row per sample: the image, then each mask of ``masks``.

    Args:
        fig: an empty figure (e.g. ``plt.figure()`` in a notebook); it is resized to fit.
        images: ``(B, 3, H, W)``: normalised float (``normalized=True``), [0, 1] float or uint8.
        masks: column title -> ``(B, H, W)`` class indices, e.g. ``{"ground truth": masks,
            "prediction": preds}``.
        palette, class_names: class colours and names, for the masks and the legend.
        groups: samples side by side (``B / groups`` rows of ``groups`` samples each).

    Raises:
        ValueError: for mismatched lengths (naming them) or no sample.
    """
    n = len(images)
    lengths = {title: len(m) for title, m in masks.items()}
    if n == 0 or any(length != n for length in lengths.values()):
        raise ValueError(f"need as many masks as images (at least one), got {n} images, {lengths}")
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")
    groups = min(groups, n)
    titles = ["image", *masks]
    rows, cols = -(-n // groups), groups * len(titles)
    height = PANEL_INCHES * rows + LEGEND_INCHES
    fig.set_size_inches(PANEL_INCHES * cols, height)
    axes = fig.subplots(rows, cols, squeeze=False)
    for i in range(n):
        r, c0 = i // groups, (i % groups) * len(titles)
        panels = [display_image(images[i], normalized=normalized)]
        panels += [_mask_rgb(m[i], palette) for m in masks.values()]
        for k, panel in enumerate(panels):
            axes[r, c0 + k].imshow(panel, interpolation="nearest")
    for c in range(cols):
        axes[0, c].set_title(titles[c % len(titles)], fontsize=10)
    _hide_ticks(axes.flat)
    for ax in axes.flat:
        if not ax.images:
            ax.axis("off")
    _class_legend(fig, palette, class_names)
    fig.tight_layout(rect=(0, LEGEND_INCHES / height, 1, 1))
    # tight_layout leaves no gap between rows of untitled panels: one sample's mask would run into
    # the next one's.
    fig.subplots_adjust(hspace=max(fig.subplotpars.hspace, ROW_GAP))
    return fig


def prediction_grid_png(
    images: torch.Tensor,
    masks: Mapping[str, torch.Tensor],
    palette: Palette,
    class_names: Sequence[str],
    *,
    dpi: int = 100,
) -> bytes:
    """:func:`draw_mask_grid` as PNG bytes, drawn without pyplot (safe in scripts and threads)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = Figure()
    FigureCanvasAgg(fig)
    draw_mask_grid(fig, images, masks, palette, class_names)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
