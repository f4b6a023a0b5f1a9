"""Real datasets (Oxford-IIIT Pet, PASCAL VOC 2012, VOC + SBD) over torchvision's classes, and
``build_dataset``. Data layer (layer 3), taught in notebook 06. Each yields ``(image float32
(3, H, W) normalised, mask int64 (H, W))``, 255 = ignore, and has ``num_classes``,
``class_names`` and ``palette``. Nothing is downloaded unless ``download=True``."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import datasets, tv_tensors
from torchvision.transforms.v2 import functional as F

from .palette import IGNORE_INDEX, PETS_PALETTE, VOC_PALETTE, Palette
from .shapes import ShapesDataset
from .transforms import eval_transforms, original_size_eval_transforms, train_transforms

Sample = tuple[torch.Tensor, torch.Tensor]  # (image float32 (3, H, W), mask int64 (H, W))

VOC_CLASSES: tuple[str, ...] = tuple(
    "background aeroplane bicycle bird boat bottle bus car cat chair cow diningtable dog horse "
    "motorbike person pottedplant sheep sofa train tvmonitor".split()
)
PETS_TRIMAP_CLASSES: tuple[str, ...] = ("background", "pet", "border")  # "binary": the first 2
DATASET_NAMES: tuple[str, ...] = ("shapes", "pets", "voc")
PETS_MODES: tuple[str, ...] = ("trimap", "binary")
PETS_SPLITS: tuple[str, ...] = ("train", "val", "trainval", "test")

PETS_URL = "https://www.robots.ox.ac.uk/~vgg/data/pets/"
VOC_URL = "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/"
# The Semantic Boundaries Dataset (Hariharan et al. 2011), as torchvision's SBDataset downloads it.
SBD_URL = (
    "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/"
    "benchmark.tgz"
)
PETS_LAYOUT = """\
  ROOT/oxford-iiit-pet/images/Abyssinian_1.jpg ...
  ROOT/oxford-iiit-pet/annotations/trimaps/Abyssinian_1.png ...
  ROOT/oxford-iiit-pet/annotations/trainval.txt, test.txt"""
VOC_LAYOUT = """\
  ROOT/VOCdevkit/VOC2012/JPEGImages/2007_000032.jpg ...
  ROOT/VOCdevkit/VOC2012/SegmentationClass/2007_000032.png ...
  ROOT/VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt, val.txt"""
SBD_LAYOUT = """\
  SBD_ROOT/benchmark_RELEASE/dataset/img/2008_000002.jpg ...
  SBD_ROOT/benchmark_RELEASE/dataset/cls/2008_000002.mat ...
  SBD_ROOT/benchmark_RELEASE/dataset/train.txt, val.txt
  (or img/, cls/, train.txt, val.txt directly in SBD_ROOT, as torchvision's SBDataset
  leaves them)"""

# Oxford-IIIT Pet has no validation list: the course holds out this fraction of trainval, the
# same images on every run (368 of 3680), chosen by a seeded hash of their names (_pets_val_ids).
PETS_VAL_FRACTION = 0.1
PETS_VAL_SEED = 0

# ShapesDataset sizes chosen by build_dataset: samples are free, validation costs model time.
SHAPES_TRAIN_SAMPLES = 5000
SHAPES_VAL_SAMPLES = 256
SHAPES_VAL_SEED_OFFSET = 1_000_003  # val scenes come from seed + offset, never a training one


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's folder is missing or incomplete; the message says where and how to get it."""


def _require(root: Path, name: str, url: str, layout: str, *paths: Path) -> None:
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise DatasetNotFoundError(
            f"{name} not found: {missing[0]} is missing. Pass download=True to download it "
            f"(e.g. on Colab), or download it from {url} and unpack it so that this layout exists "
            f"(ROOT = {str(root)!r}):\n{layout}"
        )


class _Listed(Dataset):
    """The first ``num_samples`` listed items of a real dataset, each a picture and its labels
    handed to ``transform`` (which takes ``(Image uint8, Mask int64)``; ``None`` normalises)."""

    def __init__(self, items: list, transform: Callable | None, num_samples: int | None) -> None:
        if num_samples is not None and num_samples < 1:
            raise ValueError(f"num_samples must be a positive int or None, got {num_samples!r}")
        self._items, self.transform = items[:num_samples], transform

    def __len__(self) -> int:
        return len(self._items)

    def _sample(self, image: Image.Image, mask: np.ndarray, where: object) -> Sample:
        if image.size[::-1] != mask.shape:
            raise ValueError(
                f"image and mask (H, W) differ for {where}: {image.size[::-1]}, {mask.shape}"
            )
        image = tv_tensors.Image(F.pil_to_tensor(image))  # (3, H, W) uint8
        mask = tv_tensors.Mask(torch.from_numpy(mask.astype(np.int64)))  # (H, W) int64
        return (self.transform or eval_transforms())(image, mask)


def _pets_val_ids(image_ids: Sequence[str]) -> set[str]:
    """Pets' validation images: the ``ceil(PETS_VAL_FRACTION * n)`` names of trainval that hash
    lowest with ``PETS_VAL_SEED``, so neither the list's order nor a library's RNG moves them."""
    count = math.ceil(PETS_VAL_FRACTION * len(image_ids))
    ranked = sorted(
        image_ids, key=lambda i: hashlib.sha256(f"{PETS_VAL_SEED}/{i}".encode()).digest()
    )
    return set(ranked[:count])


class OxfordPetSegmentation(_Listed):
    """Oxford-IIIT Pet (37 cat and dog breeds, trimap masks; CC BY-SA 4.0, Parkhi et al. 2012)
    over ``torchvision.datasets.OxfordIIITPet``, in ``root`` as ``PETS_LAYOUT`` (or downloaded,
    ~800 MB). Pets lists only ``trainval`` (3680 images) and ``test`` (3669): the course trains
    on ``"train"`` (3312) and validates on ``"val"`` (368), a fixed held-out tenth of trainval,
    in list order (``image_ids``); ``"test"`` is for one final score. ``mode="trimap"``:
    background 0, pet 1, border 2; ``"binary"``: the border is 255 = ignore (ambiguous by
    design). Taught in notebook 06.
    """

    def __init__(
        self,
        root: str | Path = "data",
        *,
        split: Literal["train", "val", "trainval", "test"] = "trainval",
        mode: Literal["trimap", "binary"] = "trimap",
        transform: Callable | None = None,
        download: bool = False,
        num_samples: int | None = None,
    ) -> None:
        if split not in PETS_SPLITS:
            raise ValueError(f"split must be one of {PETS_SPLITS}, got {split!r}")
        if mode not in PETS_MODES:
            raise ValueError(f"mode must be one of {PETS_MODES}, got {mode!r}")
        root, listed = Path(root), "test" if split == "test" else "trainval"
        annotations = root / "oxford-iiit-pet" / "annotations"
        listing, self._trimaps = annotations / f"{listed}.txt", annotations / "trimaps"
        if not download:
            images = root / "oxford-iiit-pet" / "images"
            _require(root, "Oxford-IIIT Pet", PETS_URL, PETS_LAYOUT, images, self._trimaps, listing)
        self._base = datasets.OxfordIIITPet(
            root, split=listed, target_types="segmentation", download=download
        )
        # torchvision keeps its list's order; a line is "name class species breed".
        names = [line.split()[0] for line in listing.read_text().splitlines() if line.strip()]
        indices = list(range(len(names)))
        if split in ("train", "val"):  # val: the held-out names; train: all the others
            held_out = _pets_val_ids(names)
            indices = [i for i in indices if (names[i] in held_out) == (split == "val")]
        super().__init__(indices, transform, num_samples)
        self.image_ids: list[str] = [names[i] for i in self._items]
        # Trimap values: 2 background, 1 pet, 3 the "not sure" band around it; others ignored.
        self._lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
        self._lut[[2, 1, 3]] = (0, 1, 2 if mode == "trimap" else IGNORE_INDEX)
        self.num_classes = 3 if mode == "trimap" else 2
        self.class_names = PETS_TRIMAP_CLASSES[: self.num_classes]
        self.palette: Palette = PETS_PALETTE[: self.num_classes]

    def __getitem__(self, index: int) -> Sample:
        image, trimap = self._base[self._items[index]]
        mask = self._lut[np.asarray(trimap, dtype=np.uint8)]  # (H, W) class labels
        return self._sample(image, mask, self._trimaps / f"{self.image_ids[index]}.png")


class _VOCLabels(_Listed):
    """Items ``(torchvision dataset, index)`` whose masks' values are VOC's 21 class labels."""

    class_names: tuple[str, ...] = VOC_CLASSES
    num_classes: int = len(VOC_CLASSES)
    palette: Palette = VOC_PALETTE

    def __getitem__(self, index: int) -> Sample:
        base, item = self._items[index]
        image, target = base[item]
        if target.mode not in ("P", "L"):
            raise ValueError(
                f"VOC mask {base.masks[item]} has mode {target.mode!r}; expected a palette ('P') "
                "PNG whose indices are the class labels (an RGB-converted mask loses them)"
            )
        mask = np.asarray(target, dtype=np.uint8)  # (H, W) palette indices = labels
        return self._sample(image, mask, base.masks[item])


def _voc_split(root: Path, split: str, download: bool) -> datasets.VOCSegmentation:
    if not download:
        voc = root / "VOCdevkit" / "VOC2012"
        listing = voc / "ImageSets" / "Segmentation" / f"{split}.txt"
        paths = (voc / "JPEGImages", voc / "SegmentationClass", listing)
        _require(root, "PASCAL VOC 2012", VOC_URL, VOC_LAYOUT, *paths)
    return datasets.VOCSegmentation(root, year="2012", image_set=split, download=download)


class VOCSegmentationDataset(_VOCLabels):
    """PASCAL VOC 2012 segmentation, 20 object classes + background (images under their Flickr
    owners' terms) over ``torchvision.datasets.VOCSegmentation``, in ``root`` as ``VOC_LAYOUT``
    (or downloaded, ~2 GB): ``"train"`` (1464 images) or ``"val"`` (1449). The masks' palette
    *indices* are the labels (255 = the void border). Taught in notebook 06.
    """

    def __init__(
        self,
        root: str | Path = "data",
        *,
        split: Literal["train", "val"] = "train",
        transform: Callable | None = None,
        download: bool = False,
        num_samples: int | None = None,
    ) -> None:
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        base = _voc_split(Path(root), split, download)
        super().__init__([(base, i) for i in range(len(base))], transform, num_samples)


def _find_sbd(sbd_root: Path) -> Path:
    """The folder holding SBD's ``img/``, ``cls/``, ``train.txt`` and ``val.txt``."""
    candidates = [sbd_root, sbd_root / "benchmark_RELEASE" / "dataset"]
    for folder in candidates:
        if all((folder / p).exists() for p in ("img", "cls", "train.txt", "val.txt")):
            return folder
    raise DatasetNotFoundError(
        f"SBD (for VOC trainaug) not found: neither {candidates[0]} nor {candidates[1]} holds "
        f"img/, cls/, train.txt and val.txt. Download {SBD_URL} (1.4 GB) and extract it in "
        f"{str(sbd_root)!r} (or pass sbd_root), so that this layout exists:\n{SBD_LAYOUT}"
    )


class VOCTrainAugDataset(_VOCLabels):
    """PASCAL VOC 2012 "trainaug", the 10,582 training images of the DeepLab papers: VOC
    ``train``, then every image of SBD's lists (Hariharan et al. 2011, via
    ``torchvision.datasets.SBDataset``, which needs scipy) in neither VOC ``train`` nor ``val``,
    so scoring on VOC ``val`` stays fair (mmsegmentation's ``voc_aug``). SBD is never downloaded:
    ``sbd_root`` (``None`` = ``root``) holds it as ``SBD_LAYOUT`` shows. Taught in notebook 06.
    """

    def __init__(
        self,
        root: str | Path = "data",
        *,
        sbd_root: str | Path | None = None,
        transform: Callable | None = None,
        download: bool = False,
        num_samples: int | None = None,
    ) -> None:
        root = Path(root)
        voc = _voc_split(root, "train", download)
        val_file = root / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation" / "val.txt"
        _require(root, "PASCAL VOC 2012", VOC_URL, VOC_LAYOUT, val_file)
        sbd_dir = _find_sbd(Path(sbd_root or root))
        sbd = [datasets.SBDataset(sbd_dir, s, mode="segmentation") for s in ("train", "val")]
        items, image_ids, seen = [], [], set(val_file.read_text().split())
        for base in (voc, *sbd):
            for index, image_id in enumerate(Path(p).stem for p in base.images):
                if image_id not in seen:  # each image once, VOC's first; never a VOC val image
                    seen.add(image_id)
                    items.append((base, index))
                    image_ids.append(image_id)
        super().__init__(items, transform, num_samples)
        self.image_ids: list[str] = image_ids[: len(self._items)]


def collate_original_size(batch: Sequence[Sample]) -> tuple[torch.Tensor, Any]:
    """DataLoader ``collate_fn`` for masks of any size: images stacked ``(B, 3, S, S)``; masks
    stacked ``(B, S, S)`` when they share a size, else (``original_size_masks``) left a list of
    ``(H_i, W_i)``, for :func:`deeplab_utils.evaluation.evaluate` to score each at its own size.
    Taught in notebook 08."""
    images, masks = torch.stack([s[0] for s in batch]), [s[1] for s in batch]
    return images, torch.stack(masks) if len({m.shape for m in masks}) == 1 else masks


def _check_options(name: str, split: str, voc_trainaug: bool, original_size_masks: bool) -> None:
    if name not in DATASET_NAMES:
        raise ValueError(f"name must be one of {DATASET_NAMES}, got {name!r}")
    splits = ("train", "val", "test") if name == "pets" else ("train", "val")
    if split not in splits:  # VOC's test labels are not public, shapes need no test split
        raise ValueError(f"split must be one of {splits} for {name!r}, got {split!r}")
    if voc_trainaug and name != "voc":
        raise ValueError(f"voc_trainaug=True needs name='voc', got name={name!r}")
    if original_size_masks and split == "train":
        raise ValueError(
            "original_size_masks=True is for split='val' or 'test' (training crops need masks "
            f"aligned with the images), got split={split!r}"
        )


def build_dataset(
    name: Literal["shapes", "pets", "voc"],
    *,
    split: Literal["train", "val", "test"],
    root: str | Path = "data",
    image_size: int = 128,
    download: bool = False,
    seed: int = 0,
    num_samples: int | None = None,
    pets_mode: Literal["trimap", "binary"] = "trimap",
    voc_trainaug: bool = False,
    sbd_root: str | Path | None = None,
    original_size_masks: bool = False,
) -> Dataset:
    """A dataset of ``(image float32 (3, S, S), mask int64 (S, S))``, ``S = image_size``, with the
    course's transforms. Taught in notebook 06.

    Real datasets (in ``root``): ``"train"`` gets ``train_transforms``, the others
    ``eval_transforms``, or with ``original_size_masks`` masks at their picture's size (the VOC
    protocol; batch them with :func:`collate_original_size`); ``voc_trainaug`` trains on
    :class:`VOCTrainAugDataset`; ``download`` fetches Pets or VOC, never SBD. Shapes get no
    augmentation: scenes already have random places, sizes, angles and colours, so scaling and
    cropping would only add ignore borders and cut shapes.
    """
    _check_options(name, split, voc_trainaug, original_size_masks)
    train = split == "train"
    if name == "shapes":
        if num_samples is None:
            num_samples = SHAPES_TRAIN_SAMPLES if train else SHAPES_VAL_SAMPLES
        val_seed = seed + SHAPES_VAL_SEED_OFFSET
        return ShapesDataset(num_samples, image_size=image_size, seed=seed if train else val_seed)
    if train:
        transform = train_transforms(image_size)
    elif original_size_masks:
        transform = original_size_eval_transforms(image_size)
    else:
        transform = eval_transforms(image_size)
    common = {"transform": transform, "download": download, "num_samples": num_samples}
    if name == "pets":
        return OxfordPetSegmentation(root, split=split, mode=pets_mode, **common)
    if train and voc_trainaug:
        return VOCTrainAugDataset(root, sbd_root=sbd_root, **common)
    return VOCSegmentationDataset(root, split=split, **common)
