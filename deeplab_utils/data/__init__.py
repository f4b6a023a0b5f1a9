"""Data layer (layer 3): the built-in ShapesDataset, real datasets, joint transforms, palettes.

Depends on torch, torchvision, NumPy and Pillow only (and scipy, lazily, for VOC + SBD
"trainaug"); never on the model, losses or training.
Taught in notebook 06.
"""

from .datasets import (
    DATASET_NAMES,
    PETS_BINARY_CLASSES,
    PETS_MODES,
    PETS_TRIMAP_CLASSES,
    VOC_CLASSES,
    DatasetNotFoundError,
    OxfordPetSegmentation,
    VOCSegmentationDataset,
    VOCTrainAugDataset,
    build_dataset,
    collate_original_size,
)
from .palette import (
    IGNORE_COLOR,
    IGNORE_INDEX,
    PETS_PALETTE,
    SHAPES_PALETTE,
    VOC_PALETTE,
    colorize_mask,
    voc_palette,
)
from .shapes import SHAPES_CLASSES, ShapesDataset
from .transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PadToSize,
    RandomScale,
    ResizeLongerSide,
    denormalize,
    eval_transforms,
    longer_side_size,
    normalize,
    original_size_eval_transforms,
    random_scale_crop_flip,
    train_transforms,
)

__all__ = [
    "DATASET_NAMES",
    "DatasetNotFoundError",
    "IGNORE_COLOR",
    "IGNORE_INDEX",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "OxfordPetSegmentation",
    "PETS_BINARY_CLASSES",
    "PETS_MODES",
    "PETS_PALETTE",
    "PETS_TRIMAP_CLASSES",
    "PadToSize",
    "RandomScale",
    "ResizeLongerSide",
    "SHAPES_CLASSES",
    "SHAPES_PALETTE",
    "ShapesDataset",
    "VOCSegmentationDataset",
    "VOCTrainAugDataset",
    "VOC_CLASSES",
    "VOC_PALETTE",
    "build_dataset",
    "collate_original_size",
    "colorize_mask",
    "denormalize",
    "eval_transforms",
    "longer_side_size",
    "normalize",
    "original_size_eval_transforms",
    "random_scale_crop_flip",
    "train_transforms",
    "voc_palette",
]
