"""Figures for notebook 02 (ASPP): branch footprints, valid weights per rate, cost."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..figures import _hide_ticks
from ._common import Values, _line_chart, _to_numpy


def plot_aspp_footprints(size: int, rates: Sequence[int], pixel: tuple[int, int]) -> Figure:
    """Where each ASPP branch reads the feature map for one output ``pixel`` (row, col).

    One panel per branch: the 1x1 conv, a 3x3 atrous conv per rate, and image pooling (the
    whole map). Taps on the ``size`` x ``size`` map are filled, those in the zero padding hollow
    (DeepLabv3 paper, Sec. 3.3: at large rates they carry no signal). Taught in notebook 02.
    """
    if size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    row, col = pixel
    if not (0 <= row < size and 0 <= col < size):
        raise ValueError(f"pixel must lie inside the {size}x{size} map, got {pixel!r}")
    if not rates or min(rates) < 1:
        raise ValueError(f"rates must be positive ints, got {rates!r}")
    margin = max(rates) + 1
    branches: list[tuple[str, int | None]] = [("1x1 conv", 0)]
    branches += [(f"3x3 conv, rate {r}", r) for r in rates]
    branches.append(("image pooling", None))
    fig, axes = plt.subplots(1, len(branches), figsize=(2.4 * len(branches), 2.8))
    for ax, (title, rate) in zip(axes, branches, strict=True):
        ax.add_patch(
            Rectangle((-0.5, -0.5), size, size, color="0.85" if rate is not None else "C0")
        )
        taps = (
            [(row, col)]
            if not rate
            else [(row + dr * rate, col + dc * rate) for dr in (-1, 0, 1) for dc in (-1, 0, 1)]
        )
        on_map = [0 <= r < size and 0 <= c < size for r, c in taps]
        for (r, c), filled in zip(taps, on_map, strict=True):
            ax.plot(c, r, "s", ms=5, mfc="C3" if filled else "none", mec="C3")
        ax.plot(col, row, "k+", ms=8)
        ax.set_xlim(-margin, size - 1 + margin)
        ax.set_ylim(size - 1 + margin, -margin)  # rows grow downwards, as in an image
        ax.set_aspect("equal")
        detail = "all pixels" if rate is None else f"{sum(on_map)}/{len(taps)} taps on the map"
        ax.set_title(f"{title}\n{detail}", fontsize=9)
    _hide_ticks(axes)
    fig.suptitle(f"What output pixel {pixel} reads from a {size}x{size} feature map")
    fig.tight_layout()
    return fig


def plot_aspp_valid_weights(rates: Values, curves: dict[str, Values], *, size: int = 65) -> Figure:
    """Fraction of output pixels vs atrous rate, one curve per label (e.g. "9 valid weights").

    Reproduces DeepLabv3, Fig. 4: how many of a 3x3 kernel's taps land on a ``size`` x ``size``
    map as the rate grows. Taught in notebook 02.
    """
    x = _to_numpy(rates)
    if not curves:
        raise ValueError("curves must hold at least one curve, got an empty mapping")
    lines = []
    for label, values in curves.items():
        y = _to_numpy(values)
        if y.shape != x.shape:
            raise ValueError(f"curve {label!r} has shape {y.shape}, rates have {x.shape}")
        lines.append((label, x, y, {}))
    fig, _ = _line_chart(
        (6, 3.5),
        lines,
        xlabel="atrous rate",
        ylabel="fraction of output pixels",
        title=f"Valid weights of a 3x3 kernel on a {size}x{size} feature map",
        ylim=(-0.02, 1.02),
    )
    fig.tight_layout()
    return fig


def plot_aspp_cost(costs: dict[str, dict[str, float]]) -> Figure:
    """Bar charts comparing model variants: one panel per measure, one bar per variant.

    ``costs`` maps a variant (e.g. "regular ASPP") to its value of each measure (e.g.
    "parameters (M)"); every variant must give the same measures. Taught in notebook 02.
    """
    if not costs:
        raise ValueError("costs must hold at least one variant, got an empty mapping")
    measures = list(next(iter(costs.values())))
    for variant, values in costs.items():
        if list(values) != measures:
            raise ValueError(
                f"every variant must give the measures {measures}, {variant!r} gives {list(values)}"
            )
    variants = list(costs)
    fig, axes = plt.subplots(1, len(measures), figsize=(3.2 * len(measures), 3.2), squeeze=False)
    for ax, measure in zip(axes[0], measures, strict=True):
        heights = [costs[v][measure] for v in variants]
        bars = ax.bar(variants, heights, color=[f"C{i}" for i in range(len(variants))])
        ax.bar_label(bars, labels=[f"{h:.3g}" for h in heights])
        ax.set_title(measure)
        ax.set_ylim(0, max(heights) * 1.2 if max(heights) > 0 else 1)
    fig.tight_layout()
    return fig
