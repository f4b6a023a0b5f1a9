"""Real datasets (Oxford-IIIT Pet, PASCAL VOC 2012, VOC + SBD "trainaug") over torchvision's
classes; ``build_dataset``.

Data layer (layer 3). Taught in notebook 06.

Every dataset of the course returns, after its transform, ``(image float32 (3, H, W) normalised
with ImageNet statistics, mask int64 (H, W))`` with 255 = ignore, and has ``num_classes``,
``class_names`` and ``palette`` attributes. Nothing is downloaded unless ``download=True``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import datasets, tv_tensors
from torchvision.transforms.v2 import functional as F

from .palette import IGNORE_INDEX, PETS_PALETTE, VOC_PALETTE, Palette
from .shapes import ShapesDataset
from .transforms import eval_transforms, original_size_eval_transforms, train_transforms

VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip
PETS_TRIMAP_CLASSES: tuple[str, ...] = ("background", "pet", "border")
PETS_BINARY_CLASSES: tuple[str, ...] = ("background", "pet")

# Trimap PNG values: 1 = pet, 2 = background, 3 = border ("not sure") band around the pet.
# "binary" ignores the border: its pixels are genuinely ambiguous, so neither training nor
# scoring should count them. Any other value maps to ignore.
_PETS_LUT = {"trimap": {1: 1, 2: 0, 3: 2}, "binary": {1: 1, 2: 0, 3: IGNORE_INDEX}}

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
PETS_SPLITS: tuple[str, ...] = ("train", "val", "trainval", "test")

# ShapesDataset sizes chosen by build_dataset: samples are free, validation costs model time.
SHAPES_TRAIN_SAMPLES = 5000
SHAPES_VAL_SAMPLES = 256
SHAPES_VAL_SEED_OFFSET = 1_000_003  # val scenes come from seed + offset: disjoint from train's


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's folder is missing or incomplete; the message says where and how to get it."""


# What a DatasetNotFoundError names: the dataset, where to download it, the layout it expects.
_PETS_SOURCE = ("Oxford-IIIT Pet", PETS_URL, PETS_LAYOUT)
_VOC_SOURCE = ("PASCAL VOC 2012", VOC_URL, VOC_LAYOUT)


def _require(root: Path, source: tuple[str, str, str], *paths: Path) -> None:
    missing = [p for p in paths if not p.exists()]
    if missing:
        name, url, layout = source
        raise DatasetNotFoundError(
            f"{name} not found: {missing[0]} is missing. Pass download=True to download it "
            f"(e.g. on Colab), or download it from {url} and unpack it so that this layout exists "
            f"(ROOT = {str(root)!r}):\n{layout}"
        )


def _transformed(
    transform: Callable | None, image: Image.Image, mask: np.ndarray, *, where: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check that image and mask sizes agree, wrap them as tv_tensors and apply ``transform``."""
    if image.size[::-1] != mask.shape:
        raise ValueError(
            f"image and mask sizes differ for {where}: image is {image.size[1]}x{image.size[0]}, "
            f"mask is {mask.shape[0]}x{mask.shape[1]} (height x width)"
        )
    pair = (
        tv_tensors.Image(F.pil_to_tensor(image)),  # (3, H, W) uint8
        tv_tensors.Mask(torch.from_numpy(mask.astype(np.int64))),  # (H, W) int64
    )
    # Without a transform: only normalise, so every dataset returns the same contract.
    return (transform or eval_transforms())(*pair)


class _LimitedDataset(Dataset):
    """A real dataset cut to its first ``num_samples`` items: length and index checks, once."""

    def _set_length(self, length: int, num_samples: int | None) -> None:
        if num_samples is not None and (
            isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1
        ):
            raise ValueError(f"num_samples must be a positive int or None, got {num_samples!r}")
        self._length = length if num_samples is None else min(length, num_samples)

    def __len__(self) -> int:
        return self._length

    def _position(self, index: int) -> int:
        """``index`` as a position in ``[0, len)`` (negative counts from the end)."""
        if not -self._length <= index < self._length:
            raise IndexError(f"index {index} out of range for {self._length} samples")
        return index % self._length


def _pets_val_ids(image_ids: Sequence[str]) -> set[str]:
    """The held-out validation images of Pets' trainval: ``ceil(PETS_VAL_FRACTION * n)`` of them,
    those whose names hash lowest with ``PETS_VAL_SEED`` (so neither the list's order nor a
    library's random-number stream can change them)."""
    count = math.ceil(PETS_VAL_FRACTION * len(image_ids))

    def rank(image_id: str) -> bytes:
        return hashlib.sha256(f"{PETS_VAL_SEED}/{image_id}".encode()).digest()

    return set(sorted(image_ids, key=rank)[:count])


class OxfordPetSegmentation(_LimitedDataset):
    """Oxford-IIIT Pet segmentation (37 cat and dog breeds, trimap masks). Taught in notebook 06.

    Wraps ``torchvision.datasets.OxfordIIITPet(target_types="segmentation")``; the expected
    layout under ``root`` is ``PETS_LAYOUT``. Pets publishes ``trainval`` and ``test`` lists
    only, so the course trains on ``"train"`` and validates (and selects models) on ``"val"``, a
    fixed held-out tenth of trainval; ``"test"`` is for one final score.

    Args:
        root: folder holding ``oxford-iiit-pet/``.
        split: ``"train"`` (3312 images) and ``"val"`` (368, ``PETS_VAL_FRACTION``): disjoint
            parts of ``"trainval"`` (3680), each in list order; ``"test"`` (3669).
        mode: ``"trimap"``: 3 classes, background 0, pet 1, border 2; ``"binary"``: background 0,
            pet 1, and the border band 255 = ignore (it is ambiguous by design).
        transform: joint transform on ``(Image uint8, Mask int64)``; ``None`` only normalises.
        download: download (~800 MB) into ``root`` if missing.
        num_samples: keep only the first ``num_samples`` images.

    Attributes:
        image_ids: the image names, in the dataset's order (``Abyssinian_1``, ...).

    Licence: CC BY-SA 4.0 (Parkhi et al., 2012).
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
        if mode not in _PETS_LUT:
            raise ValueError(f"mode must be 'trimap' or 'binary', got {mode!r}")
        root = Path(root)
        listed = "test" if split == "test" else "trainval"  # the list torchvision reads
        annotations = root / "oxford-iiit-pet" / "annotations"
        if not download:
            images = root / "oxford-iiit-pet" / "images"
            _require(
                root, _PETS_SOURCE, images, annotations / "trimaps", annotations / f"{listed}.txt"
            )
        self._base = datasets.OxfordIIITPet(
            root, split=listed, target_types="segmentation", download=download
        )
        # torchvision keeps the names in its list's order: the first word of each line.
        names = [
            line.split()[0]
            for line in (annotations / f"{listed}.txt").read_text().splitlines()
            if line.strip()
        ]
        self._indices = list(range(len(names)))
        if split in ("train", "val"):  # val: the held-out names; train: all the others
            held_out = _pets_val_ids(names)
            self._indices = [i for i in self._indices if (names[i] in held_out) == (split == "val")]
        self.mode = mode
        self.transform = transform
        self.class_names = PETS_TRIMAP_CLASSES if mode == "trimap" else PETS_BINARY_CLASSES
        self.num_classes = len(self.class_names)
        self.palette: Palette = PETS_PALETTE[: self.num_classes]
        self._lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)  # trimap value -> class label
        for value, label in _PETS_LUT[mode].items():
            self._lut[value] = label
        self._set_length(len(self._indices), num_samples)
        self._indices = self._indices[: self._length]
        self.image_ids: list[str] = [names[i] for i in self._indices]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(image float32 (3, H, W), mask int64 (H, W))`` after the transform."""
        index = self._indices[self._position(index)]
        image, trimap = self._base[index]
        mask = self._lut[np.asarray(trimap, dtype=np.uint8)]
        segs = getattr(self._base, "_segs", None)  # torchvision's private list of mask paths
        where = str(segs[index]) if segs is not None else f"sample {index}"
        return _transformed(self.transform, image, mask, where=where)


class VOCSegmentationDataset(_LimitedDataset):
    """PASCAL VOC 2012 semantic segmentation: 20 object classes + background. Taught in notebook 06.

    Wraps ``torchvision.datasets.VOCSegmentation(year="2012")``; the expected layout under
    ``root`` is ``VOC_LAYOUT``. Masks are palette ("P" mode) PNGs whose *indices* are the labels
    (0..20, 255 = the void border, ignored), so they are read as indices, never as RGB colours.

    Args:
        root: folder holding ``VOCdevkit/``.
        split: ``"train"`` (1464 images) or ``"val"`` (1449).
        transform: joint transform on ``(Image uint8, Mask int64)``; ``None`` only normalises.
        download: download (~2 GB) into ``root`` if missing.
        num_samples: keep only the first ``num_samples`` images.

    Licence: images come from Flickr under their owners' terms (see the VOC site); annotations
    by the PASCAL VOC project.
    """

    class_names: tuple[str, ...] = VOC_CLASSES
    num_classes: int = len(VOC_CLASSES)
    palette: Palette = VOC_PALETTE

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
        root = Path(root)
        if not download:
            voc = root / "VOCdevkit" / "VOC2012"
            split_file = voc / "ImageSets" / "Segmentation" / f"{split}.txt"
            _require(root, _VOC_SOURCE, voc / "JPEGImages", voc / "SegmentationClass", split_file)
        self._base = datasets.VOCSegmentation(root, year="2012", image_set=split, download=download)
        self.transform = transform
        self._set_length(len(self._base), num_samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(image float32 (3, H, W), mask int64 (H, W))`` after the transform."""
        index = self._position(index)
        image, target = self._base[index]
        where = self._base.masks[index]
        if target.mode not in ("P", "L"):
            raise ValueError(
                f"VOC mask {where} has mode {target.mode!r}; expected a palette ('P') PNG whose "
                "indices are the class labels (an RGB-converted mask loses them)"
            )
        mask = np.asarray(target, dtype=np.uint8)  # (H, W) palette indices = labels
        return _transformed(self.transform, image, mask, where=where)


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


class VOCTrainAugDataset(_LimitedDataset):
    """PASCAL VOC 2012 "trainaug": the 10,582 training images of the DeepLab papers' VOC numbers.

    VOC 2012 ``train`` (VOC's masks, void border = 255) plus every image of SBD's ``train`` and
    ``val`` lists (Hariharan et al. 2011, read with ``torchvision.datasets.SBDataset``; masks
    without void border) that is in neither VOC ``train`` nor VOC ``val`` (so scoring on VOC
    ``val`` stays fair): the split mmsegmentation's ``voc_aug`` converter writes. VOC images
    come first, then SBD's, each in list order. Taught in notebook 06.

    Args:
        root: folder holding ``VOCdevkit/`` (its ``train.txt`` and ``val.txt`` are both read).
        sbd_root: folder holding SBD: ``benchmark_RELEASE/dataset/`` (``benchmark.tgz``
            extracted there) or SBD's ``img/``, ``cls/``, ``train.txt``, ``val.txt`` directly;
            ``None`` = ``root``.
        transform: joint transform on ``(Image uint8, Mask int64)``; ``None`` only normalises.
        download: download VOC (~2 GB) into ``root`` if missing; SBD is never downloaded.
        num_samples: keep only the first ``num_samples`` images.

    Raises:
        DatasetNotFoundError: VOC or SBD is missing (the message shows the expected layout).
        ModuleNotFoundError: scipy, which reads SBD's ``.mat`` files, is not installed.
    """

    class_names: tuple[str, ...] = VOC_CLASSES
    num_classes: int = len(VOC_CLASSES)
    palette: Palette = VOC_PALETTE

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
        self._voc = VOCSegmentationDataset(
            root, split="train", transform=transform, download=download
        )
        val_file = root / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation" / "val.txt"
        _require(root, _VOC_SOURCE, val_file)
        sbd_dir = _find_sbd(Path(sbd_root) if sbd_root is not None else root)
        try:  # SBDataset reads SBD's MATLAB .mat masks with scipy.io; only this route needs it
            import scipy.io  # noqa: F401
        except ImportError as exc:
            raise ModuleNotFoundError(
                "VOC trainaug reads SBD's .mat masks with scipy, which is not installed: "
                "pip install 'deeplab-course[sbd]' (or pip install scipy)"
            ) from exc
        self._sbd = [
            datasets.SBDataset(sbd_dir, image_set=s, mode="segmentation") for s in ("train", "val")
        ]
        # (source, index): source 0 is VOC train, 1 and 2 are SBD's train and val lists.
        self.image_ids: list[str] = [Path(p).stem for p in self._voc._base.images]
        self._items = [(0, i) for i in range(len(self.image_ids))]
        seen = set(self.image_ids) | {line.strip() for line in val_file.read_text().splitlines()}
        for source, sbd in enumerate(self._sbd, start=1):
            for index, path in enumerate(sbd.images):
                image_id = Path(path).stem
                if image_id not in seen:  # each image once, never a VOC val image
                    seen.add(image_id)
                    self._items.append((source, index))
                    self.image_ids.append(image_id)
        self.transform = transform
        self._set_length(len(self._items), num_samples)
        self.image_ids = self.image_ids[: self._length]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(image float32 (3, H, W), mask int64 (H, W))`` after the transform."""
        source, item = self._items[self._position(index)]
        if source == 0:
            return self._voc[item]
        sbd = self._sbd[source - 1]
        image, target = sbd[item]
        mask = np.asarray(target, dtype=np.uint8)  # (H, W) class indices 0..20
        return _transformed(self.transform, image, mask, where=sbd.masks[item])


def collate_original_size(
    batch: Sequence[tuple[torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Batch samples whose masks keep their original, different sizes (a DataLoader collate_fn).

    For datasets built with ``original_size_masks=True``: the images are stacked; the masks,
    which :func:`deeplab_utils.training.evaluate` scores at their own size, stay a list. Taught
    in notebook 08.

    Returns:
        ``(images float32 (B, 3, S, S), [mask int64 (H_i, W_i) for each image])``.
    """
    if not batch:
        raise ValueError("cannot collate an empty batch")
    images = torch.stack([sample[0] for sample in batch])  # (B, 3, S, S)
    return images, [sample[1] for sample in batch]


DatasetName = Literal["shapes", "pets", "voc"]
DATASET_NAMES: tuple[str, ...] = ("shapes", "pets", "voc")
PetsMode = Literal["trimap", "binary"]
PETS_MODES: tuple[str, ...] = ("trimap", "binary")


def build_dataset(
    name: DatasetName,
    *,
    split: Literal["train", "val", "test"],
    root: str | Path = "data",
    image_size: int = 128,
    download: bool = False,
    seed: int = 0,
    num_samples: int | None = None,
    pets_mode: PetsMode = "trimap",
    voc_trainaug: bool = False,
    sbd_root: str | Path | None = None,
    original_size_masks: bool = False,
) -> Dataset:
    """Build a dataset with the course's transforms, for the trainer. Taught in notebook 06.

    For the real datasets, ``"train"`` gets ``train_transforms(image_size)``, ``"val"`` and
    ``"test"`` ``eval_transforms(image_size)``. Pets' ``"train"`` and ``"val"`` are a fixed
    partition of its trainval list (a tenth held out for validation, see
    :class:`OxfordPetSegmentation`); its ``"test"`` list is read only for ``split="test"``, the
    final score (VOC's test labels are not public, shapes needs none). ShapesDataset is
    generated at ``image_size`` with no augmentation for either split: every scene is already
    drawn at a random position, size, rotation and colour (and the shapes are mirror-symmetric),
    so scaling and cropping would only add ignore borders and cut shapes. Its val split uses
    ``seed + SHAPES_VAL_SEED_OFFSET`` so it never repeats a training scene.

    Args:
        name: ``"shapes"``, ``"pets"`` or ``"voc"``.
        split: ``"train"``, ``"val"``, or (Pets only) ``"test"``.
        root: folder of the real datasets (ignored for shapes).
        image_size: side of the square samples.
        download: allow downloading a real dataset into ``root`` (VOC, never SBD).
        seed: ShapesDataset's seed (ignored for real datasets).
        num_samples: dataset length; ``None`` = all (shapes: 5000 train / 256 val).
        pets_mode: Pets only: ``"trimap"`` (background, pet, border) or ``"binary"``
            (background, pet; the border band is ignored).
        voc_trainaug: VOC only: train on VOC train + SBD (10,582 images, VOC val excluded)
            instead of VOC train (1,464); needs SBD and scipy. Ignored for ``split="val"``.
        sbd_root: where SBD is (see :class:`VOCTrainAugDataset`); ``None`` = ``root``.
        original_size_masks: val and test only: keep each real mask at its original size (the
            standard VOC protocol, see :func:`original_size_eval_transforms`); batch such a
            dataset with :func:`collate_original_size`. Ignored for shapes.

    Returns:
        A Dataset of ``(image float32 (3, S, S), mask int64 (S, S))`` (mask ``(H, W)`` of the
        original picture with ``original_size_masks``), with ``num_classes``, ``class_names``
        and ``palette`` attributes.

    Raises:
        ValueError: for an unknown name, split or Pets mode, a bad size, or an option that does
            not apply (``voc_trainaug`` without VOC, ``original_size_masks`` for training).
        DatasetNotFoundError: if a real dataset (or SBD) is missing and ``download`` is False.
        ModuleNotFoundError: ``voc_trainaug`` without scipy installed.
    """
    if name not in DATASET_NAMES:
        raise ValueError(f"name must be one of {DATASET_NAMES}, got {name!r}")
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    if split == "test" and name != "pets":
        raise ValueError(
            f"split='test' exists for pets only (VOC's test labels are not public, shapes has "
            f"no test split): score {name!r} on split='val'"
        )
    if pets_mode not in PETS_MODES:
        raise ValueError(f"pets_mode must be one of {PETS_MODES}, got {pets_mode!r}")
    if voc_trainaug and name != "voc":
        raise ValueError(f"voc_trainaug=True needs name='voc', got name={name!r}")
    if original_size_masks and split == "train":
        raise ValueError(
            "original_size_masks=True is for split='val' or 'test' (training crops need masks "
            f"aligned with the images), got split={split!r}"
        )
    train = split == "train"
    if name == "shapes":
        if num_samples is None:
            num_samples = SHAPES_TRAIN_SAMPLES if train else SHAPES_VAL_SAMPLES
        return ShapesDataset(
            num_samples,
            image_size=image_size,
            seed=seed if train else seed + SHAPES_VAL_SEED_OFFSET,
        )
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
