"""Figures for notebook 04 (decoder and full model): costs per component, upsampling error."""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ..figures import Array, hide_ticks, to_numpy

Counts = dict[str, dict[str, int]]  # model name -> component -> count


def plot_decoder_costs(params: Counts, macs: Counts, *, input_size: tuple[int, int]) -> Figure:
    """Stacked bars of parameters and multiply-adds (one forward pass at ``input_size`` (H, W)) of
    each model ("DeepLabV3+"), by component ("backbone"). Notebook 04."""
    models = list(params)
    components = list(dict.fromkeys(c for m in models for c in params[m]))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    panels = [
        (params, 1e6, "parameters (millions)"),
        (macs, 1e9, f"multiply-adds at {input_size[0]}×{input_size[1]} (billions)"),
    ]
    for ax, (counts, scale, title) in zip(axes, panels, strict=True):
        bottom = np.zeros(len(models))
        for i, component in enumerate(components):
            values = np.array([counts[m].get(component, 0) / scale for m in models])
            ax.bar(models, values, bottom=bottom, label=component, color=f"C{i}")
            bottom += values
        for x, total in enumerate(bottom):
            ax.text(x, total, f"{total:.3g}", ha="center", va="bottom", fontsize=9)
        ax.set(ylim=(0, bottom.max() * 1.3), title=title)  # headroom: the totals, the legend
        ax.tick_params(axis="x", labelsize=9)
    axes[0].legend(frameon=False, loc="upper center", ncol=len(components), fontsize=9)
    fig.tight_layout()
    return fig


def plot_decoder_upsampling(
    mask: Array, upsampled: dict[str, Array], *, scores: dict[str, float]
) -> Figure:
    """A binary ``(H, W)`` mask beside coarse versions of it brought back to ``(H, W)``, wrong
    pixels red: upsampling from 1/16 loses more boundary than from 1/4. Notebook 04."""
    truth = to_numpy(mask).astype(bool)
    panels = {f"ground truth {truth.shape[0]}×{truth.shape[1]}": mask, **upsampled}
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.9))
    for ax, (name, coarse) in zip(axes, panels.items(), strict=True):
        pred = to_numpy(coarse).astype(bool)
        picture = np.stack([pred, pred, pred], axis=-1).astype(float)
        picture[pred != truth] = (0.85, 0.1, 0.1)  # red: wrong pixels (none in the truth)
        ax.imshow(picture, interpolation="nearest")
        score = f"\nIoU {scores[name]:.3f}" if name in scores else ""
        ax.set_title(f"{name}{score}", fontsize=9)
    hide_ticks(axes)
    fig.tight_layout()
    return fig
