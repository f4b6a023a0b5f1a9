"""Figures for notebook 04 (decoder and full model): costs per component, upsampling error."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ..figures import _hide_ticks
from ._common import Array, _to_numpy


def plot_decoder_costs(
    params: dict[str, dict[str, int]],
    macs: dict[str, dict[str, int]],
    *,
    input_size: tuple[int, int],
) -> Figure:
    """Stacked bars of parameters and multiply-adds per model, by component. Taught in notebook 04.

    Args:
        params: model name (e.g. "DeepLabV3+") -> component (e.g. "backbone") -> parameters.
        macs: same keys -> multiply-accumulates of one forward pass at ``input_size``.
        input_size: ``(H, W)`` the MACs were counted at, for the title.
    """
    if not params or list(params) != list(macs):
        raise ValueError(
            f"params and macs must name the same models, got {list(params)} and {list(macs)}"
        )
    models = list(params)
    components = list(dict.fromkeys(c for m in models for c in params[m]))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    panels = [
        (axes[0], params, 1e6, "parameters (millions)"),
        (axes[1], macs, 1e9, f"multiply-adds at {input_size[0]}×{input_size[1]} (billions)"),
    ]
    for ax, counts, scale, label in panels:
        bottom = np.zeros(len(models))
        for i, component in enumerate(components):
            values = np.array([counts[m].get(component, 0) / scale for m in models])
            ax.bar(models, values, bottom=bottom, label=component, color=f"C{i}")
            bottom += values
        for x, total in enumerate(bottom):
            ax.text(x, total, f"{total:.3g}", ha="center", va="bottom", fontsize=9)
        ax.set_ylim(0, bottom.max() * 1.3)  # headroom for the totals and the legend
        ax.set_title(label)
        ax.tick_params(axis="x", labelsize=9)
    axes[0].legend(frameon=False, loc="upper center", ncol=len(components), fontsize=9)
    fig.tight_layout()
    return fig


def plot_decoder_upsampling(
    mask: Array, upsampled: dict[str, Array], *, scores: dict[str, float] | None = None
) -> Figure:
    """A full-resolution binary mask next to coarse versions of it brought back to full size.

    Pixels where a version disagrees with the mask are red, so the boundary error of
    upsampling from 1/16 versus 1/4 of the resolution shows at a glance. Taught in notebook 04.

    Args:
        mask: ``(H, W)`` binary ground truth.
        upsampled: name (e.g. "×16 bilinear") -> ``(H, W)`` binary mask.
        scores: optional name -> IoU with ``mask``, shown in the panel titles.
    """
    truth = _to_numpy(mask).astype(bool)
    if truth.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {truth.shape}")
    fig, axes = plt.subplots(1, len(upsampled) + 1, figsize=(2.6 * (len(upsampled) + 1), 2.9))
    axes = np.atleast_1d(axes)
    axes[0].imshow(truth, cmap="gray", interpolation="nearest")
    axes[0].set_title(f"ground truth {truth.shape[0]}×{truth.shape[1]}", fontsize=9)
    for ax, (name, coarse) in zip(axes[1:], upsampled.items(), strict=True):
        pred = _to_numpy(coarse).astype(bool)
        if pred.shape != truth.shape:
            raise ValueError(f"upsampled[{name!r}] has shape {pred.shape}, expected {truth.shape}")
        picture = np.stack([pred, pred, pred], axis=-1).astype(float)
        picture[pred != truth] = (0.85, 0.1, 0.1)  # red: wrong pixels
        ax.imshow(picture, interpolation="nearest")
        score = "" if scores is None or name not in scores else f"\nIoU {scores[name]:.3f}"
        ax.set_title(f"{name}{score}", fontsize=9)
    _hide_ticks(axes)
    fig.tight_layout()
    return fig
