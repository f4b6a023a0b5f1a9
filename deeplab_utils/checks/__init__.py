"""Self-checks for the exercises: compare a learner's code with the reference on several cases.

Teaching-aid layer. A notebook calls e.g. ``check_atrous_conv2d(my_atrous_conv2d)`` right after
the cell the learner wrote. On success the check prints one friendly line; on failure it raises
:class:`CheckFailed` whose message names the case, what was expected and what came back, and a
hint -- never a bare assertion from deep inside torch.

One module per notebook (``atrous``: 01, ``aspp``: 02, ``backbone``: 03, ``decoder``: 04,
``objectives``: 05, ``data``: 06, ``training``: 07, ``evaluation``: 08); what several of them
share lives in ``_common``. Import the checks from here: ``from deeplab_utils.checks import ...``.
"""

from ._common import NOT_IMPLEMENTED, CheckFailed
from .aspp import check_aspp, check_aspp_pooling
from .atrous import check_atrous_conv2d, check_receptive_field
from .backbone import check_bottleneck, check_stage_dilations
from .data import check_pad_and_crop
from .decoder import check_decoder, check_deeplabv3plus_forward
from .evaluation import check_flip_tta
from .objectives import check_dice_bce_loss, check_iou_loss, check_miou
from .training import check_poly_lr, check_train_step

__all__ = [
    "NOT_IMPLEMENTED",
    "CheckFailed",
    "check_aspp",
    "check_aspp_pooling",
    "check_atrous_conv2d",
    "check_bottleneck",
    "check_decoder",
    "check_deeplabv3plus_forward",
    "check_dice_bce_loss",
    "check_flip_tta",
    "check_iou_loss",
    "check_miou",
    "check_pad_and_crop",
    "check_poly_lr",
    "check_receptive_field",
    "check_stage_dilations",
    "check_train_step",
]
