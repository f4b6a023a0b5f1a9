"""Data layer (layer 3): the built-in ShapesDataset, real datasets, joint transforms, palettes.
Depends on torch, torchvision, NumPy, Pillow (scipy for VOC + SBD), never on the model or the
losses. Taught in notebook 06."""

from .datasets import (
    DatasetNotFoundError,
    OxfordPetSegmentation,
    VOCSegmentationDataset,
    VOCTrainAugDataset,
    build_dataset,
    collate_original_size,
)
from .palette import IGNORE_INDEX, SHAPES_PALETTE, VOC_PALETTE, colorize_mask
from .shapes import SHAPES_CLASSES, ShapesDataset
from .transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    denormalize,
    eval_transforms,
    longer_side_size,
    normalize,
    random_scale_crop_flip,
    train_transforms,
)

__all__ = [
    "DatasetNotFoundError",
    "IGNORE_INDEX",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "OxfordPetSegmentation",
    "SHAPES_CLASSES",
    "SHAPES_PALETTE",
    "ShapesDataset",
    "VOCSegmentationDataset",
    "VOCTrainAugDataset",
    "VOC_PALETTE",
    "build_dataset",
    "collate_original_size",
    "colorize_mask",
    "denormalize",
    "eval_transforms",
    "longer_side_size",
    "normalize",
    "random_scale_crop_flip",
    "train_transforms",
]
