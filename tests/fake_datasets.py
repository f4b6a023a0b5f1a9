"""Fake Oxford-IIIT Pet, PASCAL VOC 2012, SBD and ImageNet weights in their real on-disk formats.

For tests of the datasets, the command line and the notebooks' real-data paths: nothing is
downloaded. Each layout is what torchvision's dataset classes read (checked against their
source: ``OxfordIIITPet``, ``VOCSegmentation``, ``SBDataset``), with a few pictures of
different sizes. Each writer returns what it wrote, so a test compares the package's output
with these arrays, not with the package's own idea of them.

Usage::

    pets = write_fake_pets(tmp_path)            # tmp_path/oxford-iiit-pet/...
    voc = write_fake_voc(tmp_path)              # tmp_path/VOCdevkit/VOC2012/...
    sbd = write_fake_sbd(tmp_path)              # tmp_path/benchmark_RELEASE/dataset/...
    write_fake_imagenet_weights(tmp_path / "torch")  # then set TORCH_HOME=tmp_path/"torch"
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

# (id, CLASS-ID, SPECIES, BREED ID) as in annotations/trainval.txt and test.txt: CLASS-ID
# 1..37 over all breeds, SPECIES 1 = cat, 2 = dog, BREED ID within the species; cat breeds
# are capitalised.
PETS_TRAINVAL = (
    ("Abyssinian_1", 1, 1, 1),
    ("american_bulldog_10", 2, 2, 1),
    ("Bengal_12", 6, 1, 2),
    ("beagle_2", 5, 2, 4),
    ("Bombay_5", 8, 1, 4),
    ("boxer_3", 9, 2, 5),
    ("British_Shorthair_2", 10, 1, 5),
    ("chihuahua_8", 11, 2, 6),
    ("Egyptian_Mau_4", 12, 1, 6),
    ("havanese_1", 17, 2, 11),
    ("Persian_6", 24, 1, 8),
    ("pug_3", 26, 2, 18),
)  # twelve: the course holds out a tenth, rounded up (two), for validation and trains on ten
PETS_TEST = (
    ("Birman_3", 7, 1, 3),
    ("basset_hound_7", 4, 2, 3),
)
# Trimap values of the real PNGs (mode "L").
TRIMAP_PET, TRIMAP_BACKGROUND, TRIMAP_BORDER = 1, 2, 3

VOC_TRAIN = ("2007_000032", "2007_000039")
VOC_VAL = ("2007_000033", "2007_000042")
# SBD's own lists overlap VOC's: 2007_000032 is in VOC train, 2007_000033 and 2007_000042 are in
# VOC val (so trainaug must drop them); the 2008 images are SBD's alone.
SBD_TRAIN = ("2007_000032", "2007_000033", "2008_000002", "2008_000003")
SBD_VAL = ("2007_000042", "2008_000007")
VOC_IGNORE = 255  # the void border of VOC's masks

# (height, width) of the pictures, cycled: landscape, portrait, square, odd sizes.
SIZES = ((40, 56), (52, 36), (45, 45), (37, 61), (58, 43), (33, 50), (47, 39), (55, 60))


@dataclass(frozen=True)
class FakePets:
    root: Path  # pass as root= (holds oxford-iiit-pet/)
    trimaps: dict[str, np.ndarray]  # id -> (H, W) uint8 trimap with values 1, 2, 3
    splits: dict[str, tuple[str, ...]]  # "trainval" / "test" -> ids in file order


@dataclass(frozen=True)
class FakeVOC:
    root: Path  # pass as root= (holds VOCdevkit/)
    masks: dict[str, np.ndarray]  # id -> (H, W) uint8 labels 0..20 and 255
    splits: dict[str, tuple[str, ...]]  # "train" / "val" -> ids


@dataclass(frozen=True)
class FakeSBD:
    root: Path  # pass as sbd_root= (holds benchmark_RELEASE/dataset/)
    masks: dict[str, np.ndarray]  # id -> (H, W) uint8 labels 0..20 (no void border)
    splits: dict[str, tuple[str, ...]]  # "train" / "val" -> ids


def _picture(height: int, width: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels, mode="RGB")


def _ellipse(height: int, width: int, shrink: float) -> np.ndarray:
    rows, cols = np.mgrid[0:height, 0:width]
    cy, cx = (height - 1) / 2, (width - 1) / 2
    ry, rx = shrink * height / 2, shrink * width / 2
    return ((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 <= 1.0


def fake_trimap(height: int, width: int) -> np.ndarray:
    """A pet (1) ringed by the "not sure" border band (3) on background (2), like the real ones."""
    trimap = np.full((height, width), TRIMAP_BACKGROUND, dtype=np.uint8)
    trimap[_ellipse(height, width, 0.8)] = TRIMAP_BORDER
    trimap[_ellipse(height, width, 0.6)] = TRIMAP_PET
    return trimap


def _objects(height: int, width: int, classes: tuple[int, int]) -> np.ndarray:
    """Background 0 with two objects: a box of ``classes[0]`` and an ellipse of ``classes[1]``."""
    labels = np.zeros((height, width), dtype=np.uint8)
    labels[height // 8 : height // 2, width // 8 : width // 2] = classes[0]
    labels[_ellipse(height, width, 0.5) & (labels == 0)] = classes[1]
    return labels


def voc_colormap() -> list[int]:
    """VOC's 256-colour palette, flat ``[r0, g0, b0, r1, ...]``: the devkit's bit-interleaving."""
    flat = []
    for index in range(256):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        flat += [r, g, b]
    return flat


def _with_void_border(labels: np.ndarray) -> np.ndarray:
    """Mark a one-pixel band around every object 255, as VOC's annotators did."""
    padded = np.pad(labels, 1, mode="edge")
    edge = np.zeros(labels.shape, dtype=bool)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        edge |= padded[dy : dy + labels.shape[0], dx : dx + labels.shape[1]] != labels
    out = labels.copy()
    out[edge] = VOC_IGNORE
    return out


def write_fake_pets(root: Path) -> FakePets:
    """Write ``root/oxford-iiit-pet/``: images/*.jpg, annotations/trimaps/*.png, split lists."""
    base = Path(root) / "oxford-iiit-pet"
    (base / "images").mkdir(parents=True, exist_ok=True)
    (base / "annotations" / "trimaps").mkdir(parents=True, exist_ok=True)
    trimaps = {}
    for i, (image_id, *_) in enumerate(PETS_TRAINVAL + PETS_TEST):
        height, width = SIZES[i % len(SIZES)]
        _picture(height, width, seed=i).save(base / "images" / f"{image_id}.jpg", quality=95)
        trimaps[image_id] = fake_trimap(height, width)
        Image.fromarray(trimaps[image_id], mode="L").save(
            base / "annotations" / "trimaps" / f"{image_id}.png"
        )
    splits = {}
    for split, rows in (("trainval", PETS_TRAINVAL), ("test", PETS_TEST)):
        lines = [" ".join(str(field) for field in row) for row in rows]
        (base / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
        splits[split] = tuple(row[0] for row in rows)
    return FakePets(Path(root), trimaps, splits)


def write_fake_voc(root: Path) -> FakeVOC:
    """Write ``root/VOCdevkit/VOC2012/``: JPEGImages, palette PNG masks with 255 borders, lists."""
    voc = Path(root) / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    masks = {}
    for i, image_id in enumerate(VOC_TRAIN + VOC_VAL):
        height, width = SIZES[i % len(SIZES)]
        _picture(height, width, seed=100 + i).save(voc / "JPEGImages" / f"{image_id}.jpg")
        masks[image_id] = _with_void_border(_objects(height, width, (15, 1 + i % 20)))
        png = Image.fromarray(masks[image_id], mode="P")
        png.putpalette(voc_colormap())
        png.save(voc / "SegmentationClass" / f"{image_id}.png")
    lists = {"train": VOC_TRAIN, "val": VOC_VAL, "trainval": VOC_TRAIN + VOC_VAL}
    for split, ids in lists.items():
        (voc / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return FakeVOC(Path(root), masks, {"train": VOC_TRAIN, "val": VOC_VAL})


def _gtcls(segmentation: np.ndarray) -> dict[str, object]:
    """SBD's ``GTcls`` MATLAB struct: Boundaries (20x1 cell of sparse masks), Segmentation,
    CategoriesPresent."""
    from scipy import sparse

    boundaries = np.empty((20, 1), dtype=object)
    for c in range(20):
        boundaries[c, 0] = sparse.csc_matrix(segmentation == c + 1)
    present = np.unique(segmentation[segmentation > 0]).astype(np.uint8)
    return {
        "Boundaries": boundaries,
        "Segmentation": segmentation.astype(np.uint8),
        "CategoriesPresent": present.reshape(-1, 1),
    }


def write_fake_sbd(root: Path) -> FakeSBD:
    """Write ``root/benchmark_RELEASE/dataset/`` as benchmark.tgz unpacks: img, cls/*.mat, lists."""
    from scipy.io import savemat

    dataset = Path(root) / "benchmark_RELEASE" / "dataset"
    for sub in ("img", "cls", "inst"):
        (dataset / sub).mkdir(parents=True, exist_ok=True)
    masks = {}
    for i, image_id in enumerate(dict.fromkeys(SBD_TRAIN + SBD_VAL)):
        height, width = SIZES[(i + 2) % len(SIZES)]
        _picture(height, width, seed=200 + i).save(dataset / "img" / f"{image_id}.jpg")
        masks[image_id] = _objects(height, width, (7, 2 + i % 19))
        savemat(dataset / "cls" / f"{image_id}.mat", {"GTcls": _gtcls(masks[image_id])})
    for split, ids in (("train", SBD_TRAIN), ("val", SBD_VAL)):
        (dataset / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return FakeSBD(Path(root), masks, {"train": SBD_TRAIN, "val": SBD_VAL})


def write_fake_imagenet_weights(torch_home: Path, *, seed: int = 0) -> Path:
    """Put a real torchvision ResNet-50 state dict (random values) where torchvision caches
    ``ResNet50_Weights.IMAGENET1K_V1``; return its path. Point ``TORCH_HOME`` at ``torch_home``.
    """
    import torch
    from torchvision.models import ResNet50_Weights, resnet50

    name = os.path.basename(ResNet50_Weights.IMAGENET1K_V1.url)
    path = Path(torch_home) / "hub" / "checkpoints" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    torch.save(resnet50().state_dict(), path)
    return path
