"""Figures for notebook 01 (atrous convolution): taps at each rate and receptive fields."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from ..figures import _hide_ticks
from ._common import Array, _line_chart, _to_numpy


def plot_atrous_1d(
    signal: Array,
    *,
    rates: Sequence[int] = (1, 2, 3),
    kernel_size: int = 3,
    position: int | None = None,
) -> Figure:
    """Draw which samples of a 1-D signal one output ``y[position]`` reads at each rate.

    Atrous convolution (paper, Sec. 3.1, Eq. 1) reads ``x[i + r k]``: the same ``kernel_size``
    taps, spread ``r`` samples apart. One row per rate. Taught in notebook 01.

    Args:
        signal: 1-D signal ``(L,)``.
        kernel_size: taps per kernel (odd, so the output sits on the middle tap).
        position: the output index to explain; the middle of the signal by default.
    """
    values = _to_numpy(signal)
    if values.ndim != 1:
        raise ValueError(f"signal must be 1-D (L,), got shape {values.shape}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size}")
    position = len(values) // 2 if position is None else position
    half = (kernel_size - 1) // 2
    tap_label = {"textcoords": "offset points", "ha": "center", "fontsize": 9, "color": "C1"}
    fig, axes = plt.subplots(len(rates), 1, sharex=True, figsize=(8, 1.8 * len(rates)))
    axes = np.atleast_1d(axes)
    for ax, rate in zip(axes, rates, strict=True):
        taps = position + rate * (np.arange(kernel_size) - half)
        if taps.min() < 0 or taps.max() >= len(values):
            raise ValueError(
                f"rate {rate} puts taps at {taps.tolist()}, outside the signal 0..{len(values) - 1}"
            )
        ax.vlines(np.arange(len(values)), 0, values, color="0.7")
        ax.plot(np.arange(len(values)), values, "o", color="0.6", ms=4)
        ax.axvspan(taps.min() - 0.4, taps.max() + 0.4, color="C1", alpha=0.15)
        ax.plot(taps, values[taps], "o", color="C1", ms=10)
        for k, tap in enumerate(taps):
            ax.annotate(f"w{k}", (tap, values[tap]), xytext=(0, 8), **tap_label)
        span = rate * (kernel_size - 1) + 1
        ax.set_title(f"rate r={rate}: {kernel_size} weights see {span} samples", fontsize=10)
        ax.set_ylabel("x")
    axes[-1].set_xlabel(f"sample index (output y[{position}] sits at the centre)")
    fig.tight_layout()
    return fig


def plot_dilated_kernels(rates: Sequence[int] = (1, 2, 3), kernel_size: int = 3) -> Figure:
    """Draw a ``kernel_size`` x ``kernel_size`` kernel's taps on the pixel grid at each rate.

    The ``k^2`` taps (orange) stay; only the gaps between them grow, so the window seen is
    ``r (k - 1) + 1`` pixels wide (paper, Fig. 3). Taught in notebook 01.
    """
    if kernel_size < 1 or not rates or min(rates) < 1:
        raise ValueError(
            f"kernel_size and every rate must be ints >= 1, got {kernel_size} and {rates}"
        )
    size = max(rates) * (kernel_size - 1) + 3  # the widest window plus a 1-pixel margin
    fig, axes = plt.subplots(1, len(rates), figsize=(3 * len(rates), 3.2))
    axes = np.atleast_1d(axes)
    for ax, rate in zip(axes, rates, strict=True):
        grid = np.zeros((size, size))
        start = (size - rate * (kernel_size - 1)) // 2
        taps = start + rate * np.arange(kernel_size)
        grid[np.ix_(taps, taps)] = 1.0
        ax.imshow(grid, cmap="Oranges", vmin=0, vmax=1.4)
        _pixel_grid(ax, size)
        span = rate * (kernel_size - 1) + 1
        ax.set_title(f"rate {rate}: {kernel_size}x{kernel_size} taps, {span}x{span} view")
    _hide_ticks(axes)
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
    """Draw, for one output pixel, the input pixels it depends on (one panel per map).

    Each map is ``(H, W)``, typically the gradient of one output pixel with respect to the
    input: non-zero where the output looks. With ``counts=True`` the values are a heat map with
    a colour bar (how many paths lead to each input pixel: the gridding effect), on a log scale
    from 1 path up with unseen pixels white; otherwise seen / not seen. The centre pixel is
    marked. Taught in notebook 01.
    """
    if len(maps) != len(titles) or not maps:
        raise ValueError(
            f"maps and titles must be non-empty and of equal length, got {len(maps)} maps "
            f"and {len(titles)} titles"
        )
    fig, axes = plt.subplots(1, len(maps), figsize=(3.2 * len(maps), 3.4))
    for ax, field, title in zip(np.atleast_1d(axes), maps, titles, strict=True):
        values = _to_numpy(field).astype(float)
        if values.ndim != 2:
            raise ValueError(f"each map must be 2-D (H, W), got shape {values.shape}")
        if counts:
            # log colours from 1 path up, unseen pixels white: a one-path pixel must not look
            # like a hole beside a centre reached by hundreds
            cmap = plt.get_cmap("viridis").with_extremes(bad="white")
            norm = LogNorm(vmin=1, vmax=max(values.max(), 2.0))
            image = ax.imshow(np.ma.masked_equal(values, 0), cmap=cmap, norm=norm)
            bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
            bar.set_label("paths (log scale); white: none", fontsize=8)
            bar.ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda t, _: f"{t:g}"))
            bar.ax.yaxis.set_minor_formatter(NullFormatter())
        else:
            ax.imshow(values != 0, cmap="Blues", vmin=0, vmax=1.3)
        if max(values.shape) <= 41:  # finer grids would be all lines
            _pixel_grid(ax, max(values.shape))
        _hide_ticks([ax])
        ax.plot(values.shape[1] // 2, values.shape[0] // 2, "s", color="C3", ms=3)
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_receptive_field_growth(curves: dict[str, list[int]], *, log_y: bool = False) -> Figure:
    """Plot receptive field (pixels per side) against depth, one line per stack of layers.

    ``curves`` maps a label to the receptive field after layers 1, 2, ..., e.g. the output of
    ``deeplab_utils.receptive_fields``. Taught in notebook 01.
    """
    if not curves:
        raise ValueError("curves must hold at least one labelled sequence, got none")
    lines = [
        (label, np.arange(1, len(fields) + 1), fields, {"marker": "o", "linestyle": "-"})
        for label, fields in curves.items()
    ]
    fig, ax = _line_chart(
        (6, 4), lines, xlabel="depth (layers)", ylabel="receptive field (pixels per side)"
    )
    if log_y:
        from matplotlib.ticker import ScalarFormatter  # local: only the log axis needs it

        ax.set_yscale("log", base=2)
        ax.yaxis.set_major_formatter(ScalarFormatter())  # 512, not 2^9: pixels read plainly
    fig.tight_layout()
    return fig
