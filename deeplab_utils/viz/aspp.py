"""Figures for notebook 02 (ASPP): branch footprints, valid weights per rate, cost."""

from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..figures import Values, hide_ticks, line_chart, to_numpy


def plot_aspp_footprints(size: int, rates: Sequence[int], pixel: tuple[int, int]) -> Figure:
    """A panel per ASPP branch: where it reads a ``size``-square map for one (row, col) ``pixel``;
    taps in the zero padding, hollow, carry no signal (DeepLabv3, Sec. 3.3). Notebook 02."""
    row, col = pixel
    margin = max(rates) + 1
    branches: list[tuple[str, int | None]] = [("1x1 conv", 0)]
    branches += [(f"3x3 conv, rate {r}", r) for r in rates] + [("image pooling", None)]
    fig, axes = plt.subplots(1, len(branches), figsize=(2.4 * len(branches), 2.8))
    for ax, (title, rate) in zip(axes, branches, strict=True):
        ax.add_patch(Rectangle((-0.5, -0.5), size, size, color="C0" if rate is None else "0.85"))
        steps = (-rate, 0, rate) if rate else (0,)  # one tap for the 1x1 conv and the pooling
        taps = [(row + dr, col + dc) for dr in steps for dc in steps]
        on_map = [0 <= r < size and 0 <= c < size for r, c in taps]
        for (r, c), filled in zip(taps, on_map, strict=True):
            ax.plot(c, r, "s", ms=5, mfc="C3" if filled else "none", mec="C3")
        ax.plot(col, row, "k+", ms=8)
        ax.set(xlim=(-margin, size - 1 + margin), ylim=(size - 1 + margin, -margin), aspect=1)
        detail = "all pixels" if rate is None else f"{sum(on_map)}/{len(taps)} taps on the map"
        ax.set_title(f"{title}\n{detail}", fontsize=9)
    hide_ticks(axes)
    fig.suptitle(f"What output pixel {pixel} reads from a {size}x{size} feature map")
    fig.tight_layout()
    return fig


def plot_aspp_valid_weights(rates: Values, curves: dict[str, Values], *, size: int = 65) -> Figure:
    """DeepLabv3, Fig. 4: how many of a 3x3 kernel's taps land on a ``size``-square map, by rate;
    ``curves``: label ("9 valid weights") -> fraction of output pixels at each rate. Notebook 02."""
    lines = [(label, to_numpy(rates), to_numpy(y), {}) for label, y in curves.items()]
    title = f"Valid weights of a 3x3 kernel on a {size}x{size} feature map"
    fig, _ = line_chart((6, 3.5), lines, xlabel="atrous rate", ylabel="fraction of output pixels",
                        title=title, ylim=(-0.02, 1.02))  # fmt: skip
    return fig


def plot_aspp_cost(costs: dict[str, dict[str, float]]) -> Figure:
    """A panel per measure ("parameters (M)"), a bar per variant ("regular ASPP"): ``costs`` maps
    a variant to its value of each measure, the same measures for all. Notebook 02."""
    variants = list(costs)
    measures = list(costs[variants[0]])
    fig, axes = plt.subplots(1, len(measures), figsize=(3.2 * len(measures), 3.2), squeeze=False)
    for ax, measure in zip(axes[0], measures, strict=True):
        heights = [costs[v][measure] for v in variants]
        bars = ax.bar(variants, heights, color=[f"C{i}" for i in range(len(variants))])
        ax.bar_label(bars, labels=[f"{h:.3g}" for h in heights])
        ax.set(title=measure, ylim=(0, 1.2 * max(heights) or 1))
    fig.tight_layout()
    return fig
