"""Self-checks for the exercises: compare a learner's code with the reference on several cases.

Teaching-aid layer. A notebook checks an exercise right after the cell the learner wrote, and
keeps what the check returns::

    my_atrous_conv2d = check_atrous_conv2d(my_atrous_conv2d)

On success the check prints one ``✓`` line and returns the learner's code. When the exercise is
not written yet it prints one ``✗ ... not implemented yet`` line and returns the package's
version, so that "Run all" goes on and the later cells use a working implementation. When the
code runs but is wrong, it raises :class:`CheckFailed`, whose message names the case, what was
expected and what came back, and a short hint; the same case failing again (or
``check_x(..., hint=True)``) gives the full answer. Code that subclasses or calls the package's
version it is compared with fails: the exercise is to implement it.

One module per notebook (``atrous``: 01, ``aspp``: 02, ``backbone``: 03, ``decoder``: 04,
``objectives``: 05, ``data``: 06, ``training``: 07, ``evaluation``: 08); what several of them
share lives in ``_common``. Import the checks from here: ``from deeplab_utils.checks import ...``.
"""

from ._common import FALLBACK, NOT_IMPLEMENTED, CheckFailed, Hint, exercise_check
from .aspp import check_aspp, check_aspp_pooling
from .atrous import check_atrous_conv2d, check_receptive_fields
from .backbone import check_block_settings, check_bottleneck
from .data import check_random_scale_crop_flip
from .decoder import check_decoder, check_deeplabv3plus_forward
from .evaluation import check_confusion_matrix, check_flip_tta, check_tta
from .objectives import check_dice_bce_loss, check_dice_ce_loss, check_iou_loss, check_miou
from .training import check_poly_lr, check_train_loop, check_train_step

__all__ = [
    "FALLBACK",
    "NOT_IMPLEMENTED",
    "CheckFailed",
    "Hint",
    "check_aspp",
    "check_aspp_pooling",
    "check_atrous_conv2d",
    "check_block_settings",
    "check_bottleneck",
    "check_confusion_matrix",
    "check_decoder",
    "check_deeplabv3plus_forward",
    "check_dice_bce_loss",
    "check_dice_ce_loss",
    "check_flip_tta",
    "check_iou_loss",
    "check_miou",
    "check_poly_lr",
    "check_random_scale_crop_flip",
    "check_receptive_fields",
    "check_train_loop",
    "check_train_step",
    "check_tta",
    "exercise_check",
]
