"""Self-checks for the exercises, one module per notebook (``atrous``: 01 ... ``evaluation``: 08).

A notebook keeps what a check returns, ``my_fn = check_fn(my_fn)``: the learner's code after a
``✓`` line, or the package's version after a ``✗ ... not implemented yet`` line; wrong code raises
:class:`CheckFailed` naming the case, with a hint. Under nbgrader every failure raises. What
passes is also saved in the work folder's ``my_pieces/``, for later notebooks (:mod:`.pieces`).
"""

from ._common import FALLBACK, NOT_IMPLEMENTED, CheckFailed, Hint, exercise_check, keep_piece
from .aspp import check_aspp, check_aspp_pooling
from .atrous import check_atrous_conv2d, check_receptive_fields
from .backbone import check_block_settings, check_bottleneck
from .data import check_random_scale_crop_flip
from .decoder import check_decoder, check_deeplabv3plus_forward, load_reference_weights
from .evaluation import check_confusion_matrix, check_tta
from .objectives import check_dice_bce_loss, check_dice_ce_loss, check_iou_loss, check_miou
from .pieces import load_piece
from .training import check_poly_lr, check_train_loop, check_train_step

__all__ = ["FALLBACK", "NOT_IMPLEMENTED", "CheckFailed", "Hint", "exercise_check"]
__all__ += ["keep_piece", "load_piece"]  # your pieces, carried from notebook to notebook
__all__ += ["check_atrous_conv2d", "check_receptive_fields"]  # notebook 01
__all__ += ["check_aspp", "check_aspp_pooling"]  # 02
__all__ += ["check_block_settings", "check_bottleneck"]  # 03
__all__ += ["check_decoder", "check_deeplabv3plus_forward", "load_reference_weights"]  # 04
__all__ += ["check_dice_bce_loss", "check_dice_ce_loss", "check_iou_loss", "check_miou"]  # 05
__all__ += ["check_random_scale_crop_flip"]  # 06
__all__ += ["check_poly_lr", "check_train_loop", "check_train_step"]  # 07
__all__ += ["check_confusion_matrix", "check_tta"]  # 08
