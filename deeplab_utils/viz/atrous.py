"""Figures for notebook 01 (atrous convolution): taps at each rate and receptive fields."""

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, ScalarFormatter

from ..figures import Array, hide_ticks, line_chart, plain_log_ticks, to_numpy


def plot_atrous_1d(
    signal: Array, *, rates: Sequence[int] = (1, 2, 3), kernel_size: int = 3
) -> Figure:
    """A row per rate: the samples of an ``(L,)`` signal that its middle output reads.

    Atrous convolution reads ``x[i + r k]`` (paper, Sec. 3.1, Eq. 1): the same ``kernel_size``
    taps, odd so that the output sits on the middle one, ``r`` samples apart. Notebook 01.
    """
    values = to_numpy(signal)
    samples = np.arange(len(values))
    position = len(values) // 2
    tap_label = {"textcoords": "offset points", "ha": "center", "fontsize": 9, "color": "C1"}
    fig, axes = plt.subplots(len(rates), 1, sharex=True, figsize=(8, 1.8 * len(rates)))
    for ax, rate in zip(np.atleast_1d(axes), rates, strict=True):
        taps = position + rate * (np.arange(kernel_size) - kernel_size // 2)
        if taps.min() < 0 or taps.max() >= len(values):
            raise ValueError(
                f"rate {rate} puts taps at {taps.tolist()}, outside the signal 0..{len(values) - 1}"
            )
        ax.vlines(samples, 0, values, color="0.7")
        ax.plot(samples, values, "o", color="0.6", ms=4)
        ax.axvspan(taps.min() - 0.4, taps.max() + 0.4, color="C1", alpha=0.15)
        ax.plot(taps, values[taps], "o", color="C1", ms=10)
        for k, tap in enumerate(taps):
            ax.annotate(f"w{k}", (tap, values[tap]), xytext=(0, 8), **tap_label)
        span = rate * (kernel_size - 1) + 1
        ax.set_title(f"rate r={rate}: {kernel_size} weights see {span} samples", fontsize=10)
        ax.set_ylabel("x")
    ax.set_xlabel(f"sample index (output y[{position}] sits at the centre)")
    fig.tight_layout()
    return fig


def plot_dilated_kernels(rates: Sequence[int] = (1, 2, 3), kernel_size: int = 3) -> Figure:
    """A panel per rate ``r``: a ``k`` x ``k`` kernel's taps on the pixel grid, which see a window
    ``r (k - 1) + 1`` pixels wide: the gaps grow, not the taps (paper, Fig. 3). Notebook 01."""
    size = max(rates) * (kernel_size - 1) + 3  # the widest window plus a 1-pixel margin
    fig, axes = plt.subplots(1, len(rates), figsize=(3 * len(rates), 3.2), squeeze=False)
    for ax, rate in zip(axes[0], rates, strict=True):
        grid = np.zeros((size, size))
        taps = (size - rate * (kernel_size - 1)) // 2 + rate * np.arange(kernel_size)
        grid[np.ix_(taps, taps)] = 1.0
        ax.imshow(grid, cmap="Oranges", vmin=0, vmax=1.4)
        _pixel_grid(ax, size)
        span = rate * (kernel_size - 1) + 1
        ax.set_title(f"rate {rate}: {kernel_size}x{kernel_size} taps, {span}x{span} view")
    hide_ticks(axes[0])
    fig.tight_layout()
    return fig


def _pixel_grid(ax: plt.Axes, size: int) -> None:
    """Thin lines between the pixels of a ``size`` x ``size`` image."""
    ax.set_xticks(np.arange(-0.5, size, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, size, 1), minor=True)
    ax.grid(which="minor", color="0.85", linewidth=0.5)
    ax.tick_params(which="both", length=0)


def plot_receptive_field_maps(
    maps: Sequence[Array], titles: Sequence[str], *, counts: bool = False
) -> Figure:
    """A panel per ``(H, W)`` map, e.g. the gradient of the centre output pixel (marked) with
    respect to the input: the pixels it sees, or with ``counts`` how many paths reach each one
    (the gridding effect), on a log scale from 1 path, unseen pixels white. Notebook 01."""
    if len(maps) != len(titles):
        raise ValueError(f"need one title per map, got {len(maps)} maps and {len(titles)} titles")
    fig, axes = plt.subplots(1, len(maps), figsize=(3.2 * len(maps), 3.4), squeeze=False)
    for ax, field, title in zip(axes[0], maps, titles, strict=True):
        values = to_numpy(field)
        if counts:  # log colours: a one-path pixel must not look like a hole beside hundreds
            cmap = plt.get_cmap("viridis").with_extremes(bad="white")
            norm = LogNorm(vmin=1, vmax=max(values.max(), 2.0))
            image = ax.imshow(np.ma.masked_equal(values, 0), cmap=cmap, norm=norm)
            bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
            bar.set_label("paths (log scale); white: none", fontsize=8)
            plain_log_ticks(bar.ax.yaxis)
            bar.ax.yaxis.set_minor_formatter(NullFormatter())
        else:
            ax.imshow(values != 0, cmap="Blues", vmin=0, vmax=1.3)
        if max(values.shape) <= 41:  # finer grids would be all lines
            _pixel_grid(ax, max(values.shape))
        hide_ticks([ax])
        ax.plot(values.shape[1] // 2, values.shape[0] // 2, "s", color="C3", ms=3)
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_receptive_field_growth(curves: dict[str, list[int]], *, log_y: bool = False) -> Figure:
    """Receptive field (pixels per side) after layers 1, 2, ..., a line per stack of layers, as
    ``receptive_fields`` gives it. Notebook 01."""
    style = {"marker": "o", "linestyle": "-"}
    lines = [(label, np.arange(1, len(f) + 1), f, style) for label, f in curves.items()]
    ylabel = "receptive field (pixels per side)"
    fig, ax = line_chart((6, 4), lines, xlabel="depth (layers)", ylabel=ylabel)
    if log_y:
        ax.set_yscale("log", base=2)
        ax.yaxis.set_major_formatter(ScalarFormatter())  # 512, not 2^9: pixels read plainly
        fig.tight_layout()
    return fig
