"""Figures for notebook 00 (welcome): a segmentation example and the DeepLabv3+ diagram."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ..data import IGNORE_INDEX
from ..figures import Palette, _hide_ticks, _mask_rgb
from ._common import Array, _diagram, _hwc, _to_numpy


def plot_segmentation_example(
    image: Array, mask: Array, *, palette: Palette, class_names: Sequence[str]
) -> Figure:
    """Show an image next to its per-pixel class mask, with a class legend. Taught in notebook 00.

    Args:
        image: RGB in ``[0, 1]``, either a ``(H, W, 3)`` array or a ``(3, H, W)`` tensor.
        mask: class indices ``(H, W)``, integer; 255 (ignore) is drawn white.
        palette: one ``(r, g, b)`` colour in 0..255 per class.
        class_names: one name per class, same order as ``palette``.
    """
    if len(class_names) != len(palette):
        raise ValueError(
            f"class_names and palette must have one entry per class, got {len(class_names)} "
            f"names and {len(palette)} colours"
        )
    picture = _hwc(image)
    if picture.ndim != 3 or picture.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3) or a (3, H, W) tensor, got {picture.shape}")
    colours = _mask_rgb(mask, palette)

    fig, (ax_img, ax_mask) = plt.subplots(1, 2, figsize=(8, 4))
    ax_img.imshow(picture.clip(0, 1))
    ax_img.set_title("input image (H, W, 3)")
    ax_mask.imshow(colours, interpolation="nearest")
    ax_mask.set_title("class mask (H, W): one label per pixel")
    handles = [plt.Rectangle((0, 0), 1, 1, color=np.asarray(c) / 255) for c in palette]
    names = list(class_names)
    if (_to_numpy(mask) == IGNORE_INDEX).any():
        handles.append(plt.Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="0.5"))
        names.append(f"ignore ({IGNORE_INDEX})")
    ax_mask.legend(handles, names, loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False)
    _hide_ticks((ax_img, ax_mask))
    fig.tight_layout()
    return fig


def draw_architecture() -> Figure:
    """Block diagram of DeepLabv3+ (paper, Fig. 2), annotated with output strides (OS).

    Encoder (top row): DeepLabv3, an atrous ResNet-50 ending at OS 16, then ASPP. Decoder:
    upsample by 4, join the backbone's OS-4 features, refine, a 1×1 classifier to K logits,
    upsample by 4. Taught in notebook 00.
    """
    blue, green, grey = "#cfe2f3", "#d9ead3", "#eeeeee"
    boxes = [
        (0.9, 4.5, "image\nH × W × 3", grey),
        (3.6, 4.5, "ResNet-50 backbone\n(atrous in stage 4)", blue),
        (7.6, 4.5, "ASPP\n1×1 conv, 3×3 convs at\nrates 6, 12, 18, image pooling", blue),
        (11.6, 4.5, "1×1 conv\n256 channels", blue),
        (3.6, 1.5, "1×1 conv\n48 channels", green),
        (7.0, 1.5, "concat\n+ two 3×3 convs\n256 channels", green),
        (10.1, 1.5, "1×1 classifier\nK channels", green),
        (12.4, 1.5, "upsample ×4", green),
        (15.1, 1.5, "logits H × W × K\nargmax: mask H × W", grey),
    ]
    arrows = [
        ((1.6, 4.5), (2.3, 4.5)),
        ((4.95, 4.5), (5.65, 4.5), "OS 16"),
        ((9.55, 4.5), (10.65, 4.5)),
        ((3.6, 3.95), (3.6, 2.05), "low-level features, OS 4"),
        ((4.5, 1.5), (5.9, 1.5)),
        ((11.6, 3.95), (7.8, 2.2), "upsample ×4: OS 16 → 4"),
        ((8.1, 1.5), (9.1, 1.5)),
        ((11.1, 1.5), (11.65, 1.5), "OS 4"),
        ((13.15, 1.5), (14.0, 1.5), "OS 1"),
    ]
    fig, ax = _diagram((13.5, 4.5), (16.3, 6), boxes, arrows)
    ax.text(0.2, 5.7, "Encoder (DeepLabv3)", fontsize=11, weight="bold", color="#3d6fa5")
    ax.text(0.2, 0.3, "Decoder (the '+')", fontsize=11, weight="bold", color="#4d8a3a")
    return fig
