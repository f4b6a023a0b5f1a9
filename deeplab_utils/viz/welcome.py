"""Figures for notebook 00 (welcome): a segmentation example and the DeepLabv3+ diagram."""

from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from ..data import IGNORE_INDEX
from ..data.palette import IGNORE_COLOR
from ..figures import Array, Palette, class_legend, diagram, display_image, hide_ticks, mask_rgb


def plot_segmentation_example(
    image: Array, mask: Array, *, palette: Palette, class_names: Sequence[str]
) -> Figure:
    """An RGB image in [0, 1] beside its ``(H, W)`` class mask, with a legend of the classes
    (``palette`` and ``class_names`` in the same order) and of 255, ignore. Notebook 00."""
    fig, (ax_img, ax_mask) = plt.subplots(1, 2, figsize=(8, 4))
    ax_img.imshow(display_image(image, normalized=False))
    ax_img.set_title("input image (H, W, 3)")
    ax_mask.imshow(mask_rgb(mask, palette), interpolation="nearest")
    ax_mask.set_title("class mask (H, W): one label per pixel")
    if (mask == IGNORE_INDEX).any():
        palette, class_names = [*palette, IGNORE_COLOR], [*class_names, f"ignore ({IGNORE_INDEX})"]
    class_legend(ax_mask, palette, class_names, loc="upper left", bbox_to_anchor=(1.02, 1), ncol=1)
    hide_ticks((ax_img, ax_mask))
    fig.tight_layout()
    return fig


def draw_architecture() -> Figure:
    """Block diagram of DeepLabv3+ (paper, Fig. 2), the encoder above the decoder, with the output
    stride (OS) of each stage. Notebook 00."""
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
        ((1.6, 4.5), (2.3, 4.5), ""),
        ((4.95, 4.5), (5.65, 4.5), "OS 16"),
        ((9.55, 4.5), (10.65, 4.5), ""),
        ((3.6, 3.95), (3.6, 2.05), "low-level features, OS 4"),
        ((4.5, 1.5), (5.9, 1.5), ""),
        ((11.6, 3.95), (7.8, 2.2), "upsample ×4: OS 16 → 4"),
        ((8.1, 1.5), (9.1, 1.5), ""),
        ((11.1, 1.5), (11.65, 1.5), "OS 4"),
        ((13.15, 1.5), (14.0, 1.5), "OS 1"),
    ]
    fig, ax = diagram((13.5, 4.5), (16.3, 6), boxes, arrows)
    ax.text(0.2, 5.7, "Encoder (DeepLabv3)", fontsize=11, weight="bold", color="#3d6fa5")
    ax.text(0.2, 0.3, "Decoder (the '+')", fontsize=11, weight="bold", color="#4d8a3a")
    return fig
