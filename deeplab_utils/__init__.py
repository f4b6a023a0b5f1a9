"""deeplab_utils: the reference implementation behind the "DeepLabv3+ from scratch" course.

Each notebook builds one piece in front of the learner; the next notebook imports the
finished piece from here. Layers (imports only go downwards): model, objectives, data,
training, teaching aids. See the README for the course map.
"""

# --- runtime (device, seeding) ---
from .runtime import amp_is_fast, pick_device, seed_everything
from .colab import environment_report

# --- model layer (notebooks 01-04) ---
from .aspp import ASPP, ASPPConv, ASPPPooling, aspp_rates, scaled_aspp_rates
from .atrous import atrous_conv2d, receptive_field, receptive_fields
from .backbone import (
    IMAGENET,
    Bottleneck,
    ResNet50Backbone,
    WeightsNotFoundError,
    backbone_state_dict,
    imagenet_cache_path,
    load_backbone_weights,
)
from .complexity import count_macs, count_parameters, macs_by_module
from .decoder import LOW_LEVEL_CHANNELS, Decoder
from .model import DeepLabV3, DeepLabV3Plus, Deeplabv3Plus, ModelConfig, build_model
from .separable import SeparableConv2d

# --- objectives (notebook 05) ---
from .losses import IOU, DiceBCELoss, DiceCELoss, IoULoss
from .metrics import SegmentationMetrics

# --- data (notebook 06) ---
from .data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PETS_PALETTE,
    SHAPES_CLASSES,
    SHAPES_PALETTE,
    VOC_CLASSES,
    VOC_PALETTE,
    DatasetNotFoundError,
    OxfordPetSegmentation,
    ShapesDataset,
    VOCSegmentationDataset,
    VOCTrainAugDataset,
    build_dataset,
    collate_original_size,
    colorize_mask,
    denormalize,
    eval_transforms,
    train_transforms,
)

# --- training (notebooks 07-08) ---
from .inference import (
    PAPER_SCALES,
    export_model,
    load_exported,
    predict,
    save_exported,
    segment_image,
)
from .evaluation import evaluate, restore_original_size
from .checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from .config import RunConfig
from .training import History, NonFiniteLossError, fit, poly_lr_lambda
from .run import Run, build_run

__version__ = "0.1.0"
