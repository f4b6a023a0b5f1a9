"""The drawing helpers of every figure, and the main job's grid of predictions (predictions.png).

Training layer, for that grid; the notebooks' figures (``deeplab_utils.viz``) draw with these
helpers. Masks are in the palette's pure colours, ignored pixels (255) white, beside the image or
as outlines, never blended: a blend changes the hue, so the legend's colours would not match.
"""

import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator

from .data import IGNORE_INDEX, colorize_mask, denormalize

Array = np.ndarray | torch.Tensor
Values = Array | Sequence[float]  # 1-D numbers
Batch = torch.Tensor | Sequence[torch.Tensor]  # (B, ...) or a list of (...)
Palette = Sequence[Sequence[int]]
Point = tuple[float, float]
Box = tuple[float, float, str, str]  # x, y (its centre), text, colour
Arrow = tuple[Point, Point, str]  # start, end, label
Line = tuple[str, Any, Any, dict[str, Any]]  # label, x, y, style
PANEL_INCHES = 1.9  # side of one image panel of a mask grid
LEGEND_INCHES = 0.45  # the strip below the panels that holds the legend
ROW_GAP = 0.08  # least space between rows of panels, as a fraction of a panel's height


def to_numpy(values: Values) -> np.ndarray:
    """Float64 NumPy numbers; a tensor is detached and moved to the CPU first."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double()
    return np.asarray(values, dtype=np.float64)


def display_image(image: Array, *, normalized: bool = True) -> np.ndarray:
    """A ``(3, H, W)`` or ``(H, W, 3)`` RGB image as uint8 ``(H, W, 3)``, for ``imshow``.

    uint8 stays; float is ImageNet-normalised (``normalized``, as datasets give it) or in [0, 1].
    """
    # a copy of an array: those read from PIL are read-only, which torch warns about
    image = torch.tensor(image) if isinstance(image, np.ndarray) else image.detach().cpu()
    if image.shape[-1] == 3 and image.shape[0] != 3:
        image = image.permute(2, 0, 1)
    if image.dtype != torch.uint8:
        image = denormalize(image) if normalized else image.float().clamp(0.0, 1.0)
        image = (image * 255 + 0.5).to(torch.uint8)
    return image.permute(1, 2, 0).numpy()


def mask_rgb(mask: Array, palette: Palette) -> np.ndarray:
    """``(H, W)`` class indices -> uint8 ``(H, W, 3)`` in the palette's colours, 255 white."""
    return colorize_mask(torch.as_tensor(mask).cpu(), palette).permute(1, 2, 0).numpy()


def hide_ticks(axes: Iterable[Axes]) -> None:
    """No ticks on image panels: pixel coordinates say nothing there."""
    for ax in axes:
        ax.set(xticks=[], yticks=[])


def plain_log_ticks(axis: Axis) -> None:
    """Ticks at 1, 2, 5 x 10^k, labelled plainly: one tick a decade leaves a log axis unreadable."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda t, _: f"{t:g}"))


def overlay_mask(image: Array, mask: Array, palette: Palette) -> np.ndarray:
    """The image with each object's outline in its class's pure colour. Notebook 06.

    ``image`` as for :func:`display_image`, ``mask`` ``(H, W)``; returns uint8 ``(H, W, 3)``. An
    outline pixel is neither background (0) nor ignored (255), and a 4-neighbour's class differs.
    """
    rgb = display_image(image).copy()
    mask = torch.as_tensor(mask).cpu().long()
    if tuple(mask.shape) != rgb.shape[:2]:
        raise ValueError(f"mask shape {tuple(mask.shape)} differs from image's {rgb.shape[:2]}")
    padded = torch.nn.functional.pad(mask[None, None].float(), (1, 1, 1, 1), mode="replicate")[0, 0]
    height, width = mask.shape
    edge = torch.zeros_like(mask, dtype=torch.bool)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):  # up, down, left, right neighbours
        edge |= padded[dy : dy + height, dx : dx + width] != mask
    edge = (edge & (mask != 0) & (mask != IGNORE_INDEX)).numpy()
    rgb[edge] = mask_rgb(mask, palette)[edge]
    return rgb


def class_legend(
    owner: Figure | Axes, palette: Palette, class_names: Sequence[str], **placement: Any
) -> None:
    """A legend entry per class in its colour; along the bottom unless ``placement`` says else."""
    handles = [
        Patch(facecolor=np.asarray(colour) / 255, edgecolor="grey", label=name)
        for colour, name in zip(palette, class_names, strict=False)
    ]
    options = {"loc": "lower center", "ncol": min(len(handles), 7), "frameon": False}
    owner.legend(handles=handles, **(options | placement))


def diagram(
    figsize: Point, size: Point, boxes: Iterable[Box], arrows: Iterable[Arrow]
) -> tuple[Figure, Axes]:
    """Boxes and arrows on a ``size`` (width, height) canvas; a label above a flat arrow, to the
    right of another."""
    fig, ax = plt.subplots(figsize=figsize)
    ax.set(xlim=(0, size[0]), ylim=(0, size[1]))
    ax.axis("off")
    for x, y, text, colour in boxes:
        style = {"boxstyle": "round,pad=0.5", "facecolor": colour, "edgecolor": "0.3"}
        ax.text(x, y, text, ha="center", va="center", fontsize=9, bbox=style)
    for start, end, label in arrows:
        ax.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "->", "lw": 1.5})
        flat = start[1] == end[1]
        middle = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
        ax.annotate(label, middle, xytext=(0, 5) if flat else (8, 0), textcoords="offset points",
                    ha="center" if flat else "left", va="bottom" if flat else "center",
                    fontsize=8, color="C3")  # fmt: skip
    return fig, ax


def line_chart(
    figsize: Point, lines: Iterable[Line], *, legend: dict[str, Any] | None = None, **props: Any
) -> tuple[Figure, Axes]:
    """One axes with a line per ``(label, x, y, style)``, ``props`` set, a light grid, a legend."""
    fig, ax = plt.subplots(figsize=figsize)
    for label, x, y, style in lines:
        ax.plot(x, y, label=label, **style)
    ax.set(**props)
    ax.grid(alpha=0.3)
    ax.legend(**(legend or {}))
    fig.tight_layout()
    return fig, ax


def draw_mask_grid(
    fig: Figure,
    images: Batch,
    masks: Mapping[str, Batch],
    palette: Palette,
    class_names: Sequence[str],
    *,
    groups: int = 1,
) -> Figure:
    """Fill ``fig`` (resized to fit) with a row per sample: its image, then each of its masks.

    ``images`` ``(B, 3, H, W)``, ImageNet-normalised or uint8 (see :func:`display_image`);
    ``masks``: column title -> ``(B, H, W)`` class indices; ``groups`` samples side by side.
    """
    n = len(images)
    lengths = {title: len(m) for title, m in masks.items()}
    if any(length != n for length in lengths.values()):
        raise ValueError(f"need one mask per image in each column, got {n} images, {lengths}")
    groups = min(groups, n)
    titles = ["image", *masks]
    rows, cols = -(-n // groups), groups * len(titles)
    height = PANEL_INCHES * rows + LEGEND_INCHES
    fig.set_size_inches(PANEL_INCHES * cols, height)
    axes = fig.subplots(rows, cols, squeeze=False)
    for i in range(n):
        panels = [display_image(images[i]), *(mask_rgb(m[i], palette) for m in masks.values())]
        for k, panel in enumerate(panels):
            axes[i // groups, (i % groups) * len(titles) + k].imshow(panel, interpolation="nearest")
    for c, ax in enumerate(axes[0]):
        ax.set_title(titles[c % len(titles)], fontsize=10)
    hide_ticks(axes.flat)
    for ax in axes.flat:
        if not ax.images:
            ax.axis("off")
    class_legend(fig, palette, class_names)
    fig.tight_layout(rect=(0, LEGEND_INCHES / height, 1, 1))
    # tight_layout leaves no gap between rows of untitled panels: one sample's mask would run into
    # the next one's
    fig.subplots_adjust(hspace=max(fig.subplotpars.hspace, ROW_GAP))
    return fig


def prediction_grid_png(
    images: Batch, masks: Mapping[str, Batch], palette: Palette, class_names: Sequence[str]
) -> bytes:
    """:func:`draw_mask_grid` as PNG bytes, drawn without pyplot (safe in scripts and threads)."""
    fig = draw_mask_grid(Figure(), images, masks, palette, class_names)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()
