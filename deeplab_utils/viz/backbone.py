"""Figures for notebook 03 (ResNet-50 backbone): the bottleneck, output-stride cost, features."""

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from ..figures import Array, diagram, display_image, hide_ticks, to_numpy


def draw_backbone_bottleneck() -> Figure:
    """Diagram of a ResNet bottleneck and its shortcut (He et al. 2016, Fig. 5 right), without which
    conv carries the stride or the 3x3's padding: the exercise of notebook 03 asks for them."""
    blue, grey, orange = "#cfe2f3", "#eeeeee", "#fce5cd"
    boxes = [
        (3.5, 9.3, "x: (B, C_in, H, W)", grey),
        (3.5, 7.6, "1×1 conv, C_in → planes\nBN, ReLU", blue),
        (3.5, 5.7, "3×3 conv, planes → planes\ndilation r\nBN, ReLU", blue),
        (3.5, 3.8, "1×1 conv, planes → 4·planes\nBN", blue),
        (3.5, 2.3, "+", orange),
        (3.5, 0.7, "ReLU → (B, 4·planes, H/s, W/s)", grey),
        (8.0, 5.7, "shortcut:\nidentity, or\n1×1 conv, stride s\n+ BN (downsample)", orange),
    ]
    arrows = [
        ((3.5, 8.95), (3.5, 8.15), "reduce"),
        ((3.5, 7.1), (3.5, 6.4), ""),
        ((3.5, 5.0), (3.5, 4.3), "expand ×4"),
        ((3.5, 3.3), (3.5, 2.65), "F(x)"),
        ((3.5, 1.95), (3.5, 1.1), ""),
        ((4.9, 9.3), (8.0, 6.7), ""),
        ((8.0, 4.7), (3.9, 2.3), "x (or downsample(x))"),
    ]
    fig, ax = diagram((7, 6.5), (10, 10), boxes, arrows)
    ax.set_title("Bottleneck block: y = ReLU(F(x) + x)", fontsize=11)
    fig.tight_layout()
    return fig


def plot_backbone_output_stride_cost(
    output_strides: Sequence[int],
    macs: Sequence[int],
    activation_bytes: Sequence[int],
    *,
    input_size: tuple[int, int],
) -> Figure:
    """Bars of one forward pass's multiply-adds and feature-map memory per output stride, each
    labelled with its ratio to the first; ``input_size`` (H, W) goes in the title. Notebook 03."""
    panels = {
        "multiply-adds (G)": np.asarray(macs, dtype=float) / 1e9,
        "activation memory (MiB)": np.asarray(activation_bytes, dtype=float) / 2**20,
    }
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for ax, (title, values) in zip(axes, panels.items(), strict=True):
        colours = [f"C{i}" for i in range(len(values))]
        bars = ax.bar([f"OS {s}" for s in output_strides], values, color=colours)
        ax.bar_label(bars, [f"{v:.3g}\n×{v / values[0]:.2g}" for v in values], fontsize=9)
        ax.set(ylim=(0, values.max() * 1.3), title=title)  # room for the labels
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"ResNet-50 backbone, one {input_size[0]}×{input_size[1]} image")
    fig.tight_layout()
    return fig


def plot_backbone_feature_maps(
    image: Array, features: dict[str, torch.Tensor], *, channels: int = 4
) -> Figure:
    """A row per ``(1, C, h, w)`` feature map (name -> map): the RGB image in [0, 1], then the
    map's most varying ``channels``, each at its own size. Notebook 03."""
    rows, cols = len(features), channels + 1
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.7 * rows), squeeze=False)
    for row, (name, feature) in zip(axes, features.items(), strict=True):
        maps = to_numpy(feature).reshape(-1, *feature.shape[-2:])  # (C, h, w)
        # the most varying channels say the most; many are near-constant after ReLU
        chosen = np.argsort(-maps.reshape(len(maps), -1).var(axis=1), kind="stable")[:channels]
        row[0].imshow(display_image(image, normalized=False))
        row[0].set_title("input", fontsize=9)
        for ax, c in zip(row[1:], chosen, strict=False):
            ax.imshow(maps[c], cmap="viridis", interpolation="nearest")
            ax.set_title(f"{name} ch {c}\n{maps.shape[1]}×{maps.shape[2]}", fontsize=9)
        hide_ticks(row)
    fig.tight_layout()
    return fig
