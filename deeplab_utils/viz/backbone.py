"""Figures for notebook 03 (ResNet-50 backbone): the bottleneck, output-stride cost, features."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from ..figures import _hide_ticks
from ._common import Array, _diagram, _hwc, _to_numpy


def draw_backbone_bottleneck() -> Figure:
    """Diagram of a ResNet bottleneck: 1x1 reduce, 3x3 (stride s, dilation r), 1x1 expand, + x.

    The shortcut is the identity, or a strided 1x1 conv + BN when the shape changes; the sum
    goes through the last ReLU (He et al. 2016, Fig. 5 right). Taught in notebook 03.
    """
    blue, grey, orange = "#cfe2f3", "#eeeeee", "#fce5cd"
    boxes = [
        (3.5, 9.3, "x: (B, C_in, H, W)", grey),
        (3.5, 7.6, "1×1 conv, C_in → planes\nBN, ReLU", blue),
        (3.5, 5.7, "3×3 conv, planes → planes\nstride s, dilation r, padding r\nBN, ReLU", blue),
        (3.5, 3.8, "1×1 conv, planes → 4·planes\nBN", blue),
        (3.5, 2.3, "+", orange),
        (3.5, 0.7, "ReLU → (B, 4·planes, H/s, W/s)", grey),
        (8.0, 5.7, "shortcut:\nidentity, or\n1×1 conv, stride s\n+ BN (downsample)", orange),
    ]
    arrows = [
        ((3.5, 8.95), (3.5, 8.15), "reduce"),
        ((3.5, 7.1), (3.5, 6.4)),
        ((3.5, 5.0), (3.5, 4.3), "expand ×4"),
        ((3.5, 3.3), (3.5, 2.65), "F(x)"),
        ((3.5, 1.95), (3.5, 1.1)),
        ((4.9, 9.3), (8.0, 6.7)),
        ((8.0, 4.7), (3.9, 2.3), "x (or downsample(x))"),
    ]
    fig, ax = _diagram((7, 6.5), (10, 10), boxes, arrows)
    ax.set_title("Bottleneck block: y = ReLU(F(x) + x)", fontsize=11)
    fig.tight_layout()
    return fig


def plot_backbone_output_stride_cost(
    output_strides: Sequence[int],
    macs: Sequence[int],
    activation_bytes: Sequence[int],
    *,
    input_size: tuple[int, int] | None = None,
) -> Figure:
    """Bar charts of multiply-adds (G) and activation memory (MiB) for each output stride.

    Each bar is labelled with its value and its ratio to the first. Taught in notebook 03.

    Args:
        output_strides: e.g. ``(32, 16, 8)``.
        macs, activation_bytes: multiply-accumulates and bytes of the feature maps of one
            forward pass, one per output stride.
        input_size: ``(H, W)`` the numbers were measured at, for the title.
    """
    if not output_strides or not len(output_strides) == len(macs) == len(activation_bytes):
        raise ValueError(
            "output_strides, macs and activation_bytes must be non-empty and of equal length, "
            f"got {len(output_strides)}, {len(macs)} and {len(activation_bytes)}"
        )
    labels = [f"OS {s}" for s in output_strides]
    panels = [
        (np.asarray(macs, dtype=float) / 1e9, "multiply-adds (G)"),
        (np.asarray(activation_bytes, dtype=float) / 2**20, "activation memory (MiB)"),
    ]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for ax, (values, title) in zip(axes, panels, strict=True):
        bars = ax.bar(labels, values, color=[f"C{i}" for i in range(len(values))])
        ax.bar_label(bars, [f"{v:.3g}\n×{v / values[0]:.2g}" for v in values], fontsize=9)
        ax.set_ylim(0, values.max() * 1.3)  # room for the labels
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    if input_size is not None:
        fig.suptitle(f"ResNet-50 backbone, one {input_size[0]}×{input_size[1]} image")
    fig.tight_layout()
    return fig


def plot_backbone_feature_maps(
    image: Array, features: dict[str, torch.Tensor], *, channels: int = 4
) -> Figure:
    """Show an image and, per feature map, the ``channels`` channels that vary the most.

    One row per entry of ``features`` (e.g. the backbone's ``"low_level"`` and ``"out"``): the
    input image, then the channels at their own resolution. Taught in notebook 03.

    Args:
        image: RGB in ``[0, 1]``, ``(3, H, W)`` tensor or ``(H, W, 3)`` array.
        features: name -> feature map ``(1, C, h, w)`` or ``(C, h, w)``.
    """
    if not features or channels < 1:
        raise ValueError(
            f"features must be non-empty and channels >= 1, got {len(features)} feature maps "
            f"and channels={channels}"
        )
    picture = _hwc(image)
    fig, axes = plt.subplots(
        len(features), channels + 1, figsize=(2.2 * (channels + 1), 2.7 * len(features))
    )
    axes = np.atleast_2d(axes)
    for row, (name, feature) in zip(axes, features.items(), strict=True):
        maps = _to_numpy(feature.squeeze(0) if feature.dim() == 4 else feature)  # (C, h, w)
        if maps.ndim != 3:
            raise ValueError(
                f"feature {name!r} must be (1, C, h, w) or (C, h, w), got {maps.shape}"
            )
        # the most varying channels say the most; many are near-constant after ReLU
        chosen = np.argsort(-maps.reshape(len(maps), -1).var(axis=1), kind="stable")[:channels]
        row[0].imshow(picture.clip(0, 1))
        row[0].set_title("input", fontsize=9)
        for ax, c in zip(row[1:], chosen, strict=False):
            ax.imshow(maps[c], cmap="viridis", interpolation="nearest")
            ax.set_title(f"{name} ch {c}\n{maps.shape[1]}×{maps.shape[2]}", fontsize=9)
        _hide_ticks(row)
    fig.tight_layout()
    return fig
