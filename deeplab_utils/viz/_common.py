"""What the figures of several notebooks share: types, array conversion, diagrams, line charts.

Teaching-aid layer. The scaffolding of image figures (tick-free panels, mask colours, class
legend) is in ``deeplab_utils.figures``, which the main job uses too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

Array = np.ndarray | torch.Tensor
Batch = torch.Tensor | Sequence[torch.Tensor]  # (B, ...) or a list of (...)
Values = Array | Sequence[float]  # 1-D numbers
Point = tuple[float, float]


def _to_numpy(array: Values, *, float64: bool = False) -> np.ndarray:
    """A detached CPU NumPy copy of a tensor (anything else goes through ``np.asarray``).

    ``float64=True`` converts a tensor in torch first, so dtypes NumPy lacks (bfloat16) work.
    """
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu()
        array = (array.double() if float64 else array).numpy()
    return np.asarray(array, dtype=np.float64 if float64 else None)


def _hwc(image: Array) -> np.ndarray:
    """An RGB picture for imshow: a ``(3, H, W)`` tensor becomes ``(H, W, 3)``, an array stays."""
    picture = _to_numpy(image)
    return picture.transpose(1, 2, 0) if isinstance(image, torch.Tensor) else picture


def _arrow(ax: plt.Axes, start: Point, end: Point, label: str = "") -> None:
    """An arrow from ``start`` to ``end``, its label above it (horizontal) or to its right."""
    ax.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "->", "lw": 1.5})
    if label:
        middle = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
        horizontal = start[1] == end[1]
        ax.annotate(
            label,
            middle,
            xytext=(0, 5) if horizontal else (8, 0),
            textcoords="offset points",
            ha="center" if horizontal else "left",
            va="bottom" if horizontal else "center",
            fontsize=8,
            color="C3",
        )


def _diagram(
    figsize: Point,
    size: Point,
    boxes: Iterable[tuple[float, float, str, str]],
    arrows: Iterable[tuple[Point, Point] | tuple[Point, Point, str]],
) -> tuple[Figure, plt.Axes]:
    """A box-and-arrow diagram on a ``size`` (width, height) canvas without axes.

    ``boxes``: ``(x, y, text, colour)``, rounded and centred on ``(x, y)``; ``arrows``:
    ``(start, end)`` or ``(start, end, label)``.
    """
    fig, ax = plt.subplots(figsize=figsize)
    ax.set_xlim(0, size[0])
    ax.set_ylim(0, size[1])
    ax.axis("off")
    for x, y, text, colour in boxes:
        style = {"boxstyle": "round,pad=0.5", "facecolor": colour, "edgecolor": "0.3"}
        ax.text(x, y, text, ha="center", va="center", fontsize=9, bbox=style)
    for arrow in arrows:
        _arrow(ax, *arrow)
    return fig, ax


def _line_chart(
    figsize: Point,
    lines: Iterable[tuple[str, Any, Any, dict[str, Any]]],
    *,
    legend: dict[str, Any] | None = None,
    **props: Any,
) -> tuple[Figure, plt.Axes]:
    """One axes with a line per ``(label, x, y, style)``, ``props`` set, a light grid, a legend."""
    fig, ax = plt.subplots(figsize=figsize)
    for label, x, y, style in lines:
        ax.plot(x, y, label=label, **style)
    ax.set(**props)
    ax.grid(alpha=0.3)
    ax.legend(**(legend or {}))
    return fig, ax
