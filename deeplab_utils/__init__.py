"""deeplab_utils: the reference implementation behind the "DeepLabv3+ from scratch" course.

Each notebook builds one piece in front of the learner; the next notebook imports the
finished piece from here. Layers (imports only go downwards): model, objectives, data,
training, teaching aids; each module's docstring says which notebook teaches it. The data
layer is ``deeplab_utils.data``, the figures ``deeplab_utils.viz``, the self-checks
``deeplab_utils.checks``, inference ``deeplab_utils.inference``. See the README's course map.
"""

# --- where the code runs ---
from .runtime import amp_is_fast, pick_device, seed_everything
from .colab import environment_report

# --- model layer (notebooks 01-04) ---
from .atrous import atrous_conv2d, receptive_field, receptive_fields
from .separable import SeparableConv2d
from .aspp import ASPP, ASPPConv, ASPPPooling, aspp_rates, scaled_aspp_rates
from .backbone import Bottleneck, ResNet50Backbone
from .decoder import LOW_LEVEL_CHANNELS, Decoder
from .model import DeepLabV3, DeepLabV3Plus, Deeplabv3Plus, ModelConfig, build_model
from .complexity import count_macs, count_parameters, macs_by_module

# --- objectives (notebook 05) ---
from .losses import IOU, DiceBCELoss, DiceCELoss, IoULoss
from .metrics import SegmentationMetrics

# --- training (notebooks 07-08) ---
from .config import RunConfig
from .run import Run, build_run
from .training import History, fit
from .evaluation import evaluate
from .checkpoint import load_model

__version__ = "0.1.0"
