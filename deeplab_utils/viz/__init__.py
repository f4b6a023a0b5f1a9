"""The course's figures: one module per notebook, one function per kind of figure, each returning
a matplotlib Figure. Teaching-aid layer: nothing in the package imports it. Notebooks import the
figures from here: ``from deeplab_utils import viz; viz.show_samples(...)``.
"""

# ruff: noqa: F401 (the front door: every figure a notebook calls, re-exported)
from ..figures import overlay_mask
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
from .data import plot_class_balance, show_augmentations, show_predictions, show_samples
from .evaluation import (
    plot_ablations,
    plot_inference_speed,
    plot_per_class_iou,
    plot_trimap,
    show_segmented_image,
)
from .model import plot_decoder_costs, plot_decoder_upsampling
from .objectives import plot_confusion_matrix, plot_gradient_maps, plot_loss_vs_overlap
from .training import (
    plot_lr_range,
    plot_lr_schedules,
    plot_training_curves,
    show_predictions_before_after,
)
from .welcome import draw_architecture, plot_segmentation_example
