"""What the figures of several notebooks share: array conversion, diagram boxes, legends.

Teaching-aid layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..figures import _class_legend, display_image

_display_image = display_image  # the figures' own name, kept for viz's modules
__all__ = ["_class_legend", "_display_image"]


def _to_numpy(
    array: np.ndarray | torch.Tensor | Sequence[float], *, float64: bool = False
) -> np.ndarray:
    """A detached CPU NumPy copy of a tensor (arrays and sequences go through ``np.asarray``).

    With ``float64=True`` the result is float64; a tensor is converted by torch first, so
    dtypes NumPy lacks (bfloat16) work too.
    """
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu()
        array = (array.double() if float64 else array).numpy()
    return np.asarray(array, dtype=np.float64 if float64 else None)


def _box(ax: plt.Axes, x: float, y: float, text: str, colour: str) -> None:
    """A rounded, labelled box centred on ``(x, y)``."""
    style = {"boxstyle": "round,pad=0.5", "facecolor": colour, "edgecolor": "0.3"}
    ax.text(x, y, text, ha="center", va="center", fontsize=9, bbox=style)


def _arrow(
    ax: plt.Axes, start: tuple[float, float], end: tuple[float, float], label: str = ""
) -> None:
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
