"""Figures for the course: one function per kind of figure, each returning a matplotlib Figure.

Teaching-aid layer: may use every other layer; nothing in the package imports it.
Figures are drawn as PNG by the notebooks' inline backend (never SVG: nbval compares SVG text).

One module per notebook (``welcome``: 00, ``atrous``: 01, ``aspp``: 02, ``backbone``: 03,
``model``: 04, ``objectives``: 05, ``data``: 06, ``training``: 07, ``evaluation``: 08); what
several of them share lives in ``_common``. Import the figures from here:
``from deeplab_utils import viz; viz.show_samples(...)``.
"""

from .aspp import plot_aspp_cost, plot_aspp_footprints, plot_aspp_valid_weights
from .atrous import (
    plot_atrous_1d,
    plot_dilated_kernels,
    plot_receptive_field_growth,
    plot_receptive_field_maps,
)
from .backbone import (
    draw_backbone_bottleneck,
    plot_backbone_feature_maps,
    plot_backbone_output_stride_cost,
)
from .data import (
    overlay_mask,
    plot_class_balance,
    show_augmentations,
    show_predictions,
    show_samples,
)
from .evaluation import plot_inference_speed, plot_per_class_iou, show_segmented_image
from .model import plot_decoder_costs, plot_decoder_upsampling
from .objectives import plot_confusion_matrix, plot_gradient_maps, plot_loss_vs_overlap
from .training import plot_lr_schedules, plot_training_curves, show_predictions_before_after
from .welcome import draw_architecture, plot_segmentation_example

__all__ = [
    "draw_architecture",
    "draw_backbone_bottleneck",
    "overlay_mask",
    "plot_aspp_cost",
    "plot_aspp_footprints",
    "plot_aspp_valid_weights",
    "plot_atrous_1d",
    "plot_backbone_feature_maps",
    "plot_backbone_output_stride_cost",
    "plot_class_balance",
    "plot_confusion_matrix",
    "plot_decoder_costs",
    "plot_decoder_upsampling",
    "plot_dilated_kernels",
    "plot_gradient_maps",
    "plot_inference_speed",
    "plot_loss_vs_overlap",
    "plot_lr_schedules",
    "plot_per_class_iou",
    "plot_receptive_field_growth",
    "plot_receptive_field_maps",
    "plot_segmentation_example",
    "plot_training_curves",
    "show_augmentations",
    "show_predictions",
    "show_predictions_before_after",
    "show_samples",
    "show_segmented_image",
]
