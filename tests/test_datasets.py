"""Tests for deeplab_utils.data.datasets: Pets and VOC adapters on fake on-disk datasets, and
build_dataset. The fakes use the real layout that torchvision's classes read (no download)."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fake_datasets import write_fake_pets, write_fake_sbd, write_fake_voc
from PIL import Image
from torchvision import tv_tensors

from deeplab_utils.data import (
    VOC_PALETTE,
    DatasetNotFoundError,
    OxfordPetSegmentation,
    ShapesDataset,
    VOCSegmentationDataset,
    VOCTrainAugDataset,
    build_dataset,
    collate_original_size,
    eval_transforms,
)
from deeplab_utils.data.palette import voc_palette

H, W = 24, 32


def _trimap() -> np.ndarray:
    """Trimap values as in the real files: 2 = background, 1 = pet, 3 = border."""
    t = np.full((H, W), 2, dtype=np.uint8)
    t[4:20, 6:26] = 3
    t[6:18, 8:24] = 1
    return t


def _make_pets(root: Path, names=("Abyssinian_1", "beagle_2"), mask_size=(W, H)) -> Path:
    base = root / "oxford-iiit-pet"
    (base / "images").mkdir(parents=True)
    (base / "annotations" / "trimaps").mkdir(parents=True)
    lines = []
    for i, name in enumerate(names):
        Image.new("RGB", (W, H), (120, 80, 40)).save(base / "images" / f"{name}.jpg")
        trimap = Image.fromarray(_trimap()).resize(mask_size, Image.NEAREST)
        trimap.save(base / "annotations" / "trimaps" / f"{name}.png")
        lines.append(f"{name} {i + 1} {i % 2 + 1} {i + 1}")  # "Image CLASS-ID SPECIES BREED ID"
    for split in ("trainval", "test"):
        (base / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def _voc_labels() -> np.ndarray:
    m = np.zeros((H, W), dtype=np.uint8)
    m[2:12, 3:15] = 15  # person
    m[12:22, 16:30] = 20  # tvmonitor
    m[1, :] = 255  # void border
    return m


def _make_voc(root: Path, names=("2007_000032", "2007_000039")) -> Path:
    voc = root / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True)
    flat_palette = [c for rgb in voc_palette(256) for c in rgb]
    for name in names:
        Image.new("RGB", (W, H), (10, 200, 30)).save(voc / "JPEGImages" / f"{name}.jpg")
        mask = Image.fromarray(_voc_labels(), mode="P")
        mask.putpalette(flat_palette)
        mask.save(voc / "SegmentationClass" / f"{name}.png")
    for split in ("train", "val"):
        (voc / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(names) + "\n")
    return root


def test_pets_trimap_mode_maps_values_to_classes(tmp_path):
    """Trimap 2/1/3 become background 0 / pet 1 / border 2, pixel for pixel."""
    ds = OxfordPetSegmentation(_make_pets(tmp_path), split="trainval")
    image, mask = ds[0]
    expected = np.select([_trimap() == 2, _trimap() == 1, _trimap() == 3], [0, 1, 2])
    assert image.shape == (3, H, W) and image.dtype == torch.float32
    assert mask.dtype == torch.int64
    np.testing.assert_array_equal(mask.numpy(), expected)
    assert (len(ds), ds.num_classes, ds.class_names) == (2, 3, ("background", "pet", "border"))


def test_pets_binary_mode_ignores_the_border(tmp_path):
    """In binary mode the border band is 255 (ignore), pet 1, background 0."""
    ds = OxfordPetSegmentation(_make_pets(tmp_path), split="test", mode="binary")
    mask = ds[1][1].numpy()
    expected = np.select([_trimap() == 2, _trimap() == 1, _trimap() == 3], [0, 1, 255])
    np.testing.assert_array_equal(mask, expected)
    assert ds.num_classes == 2 and len(ds.palette) == 2


def test_pets_size_mismatch_names_both_sizes_and_file(tmp_path):
    """An image and trimap of different sizes raise a ValueError naming both and the file."""
    ds = OxfordPetSegmentation(_make_pets(tmp_path, mask_size=(W, H + 2)))
    with pytest.raises(ValueError, match=rf"Abyssinian_1\.png: \({H}, {W}\), \({H + 2}, {W}\)"):
        ds[0]


def test_voc_reads_palette_indices_not_colours(tmp_path):
    """VOC masks give the palette indices (15, 20, 255), not RGB; the image is float (3, H, W)."""
    ds = VOCSegmentationDataset(_make_voc(tmp_path), split="val")
    image, mask = ds[0]
    assert image.shape == (3, H, W)
    np.testing.assert_array_equal(mask.numpy(), _voc_labels())
    assert ds.num_classes == 21 and ds.class_names[15] == "person" and ds.palette == VOC_PALETTE


def test_voc_rejects_rgb_masks(tmp_path):
    """An RGB-converted VOC mask is refused with a message naming the file and the fix."""
    root = _make_voc(tmp_path, names=("2007_000032",))
    png = root / "VOCdevkit/VOC2012/SegmentationClass/2007_000032.png"
    Image.open(png).convert("RGB").save(png)
    with pytest.raises(ValueError, match=r"2007_000032\.png.*'RGB'"):
        VOCSegmentationDataset(root)[0]


@pytest.mark.parametrize(
    ("cls", "kwargs", "match"),
    [
        (OxfordPetSegmentation, {}, r"Oxford-IIIT Pet not found.*oxford-iiit-pet.*download=True"),
        (VOCSegmentationDataset, {}, r"PASCAL VOC 2012 not found.*VOCdevkit.*download=True"),
    ],
)
def test_missing_dataset_says_where_and_how(tmp_path, cls, kwargs, match):
    """A missing dataset raises DatasetNotFoundError (a FileNotFoundError) with path and fix."""
    with pytest.raises(DatasetNotFoundError, match=match):
        cls(tmp_path / "nowhere", **kwargs)
    assert issubclass(DatasetNotFoundError, FileNotFoundError)


def test_incomplete_voc_names_the_missing_split_file(tmp_path):
    """A VOC folder without its split list names that file."""
    root = _make_voc(tmp_path)
    (root / "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"val\.txt"):
        VOCSegmentationDataset(root, split="val")


def test_bad_split_and_mode_raise(tmp_path):
    """Unknown splits and modes raise ValueErrors naming them."""
    with pytest.raises(ValueError, match=r"split must be one of \(.*'test'\), got 'valid'"):
        OxfordPetSegmentation(tmp_path, split="valid")
    with pytest.raises(ValueError, match=r"mode must be one of \('trimap', 'binary'\), got 'rgb'"):
        OxfordPetSegmentation(tmp_path, mode="rgb")
    with pytest.raises(ValueError, match="split must be 'train' or 'val', got 'test'"):
        VOCSegmentationDataset(tmp_path, split="test")


@pytest.mark.parametrize("split", ["train", "val"])
@pytest.mark.parametrize("name", ["shapes", "pets", "voc"])
def test_build_dataset_returns_square_normalised_samples(tmp_path, name, split):
    """Every dataset/split from build_dataset yields float (3, S, S) + int64 (S, S) and metadata."""
    _make_pets(tmp_path, names=tuple(f"Abyssinian_{i}" for i in range(1, 21)))  # 2 held out
    _make_voc(tmp_path)
    ds = build_dataset(name, split=split, root=tmp_path, image_size=16, num_samples=2)
    image, mask = ds[1]
    assert image.shape == (3, 16, 16) and image.dtype == torch.float32
    assert mask.shape == (16, 16) and mask.dtype == torch.int64
    assert (
        len(ds) == 2
        and ds.num_classes == len(ds.class_names) == {"shapes": 5, "pets": 3, "voc": 21}[name]
    )
    assert len(ds.palette) >= ds.num_classes


def test_build_dataset_shapes_val_differs_from_train_and_neither_is_augmented():
    """Shapes val scenes are not train scenes; both splits equal the plain ShapesDataset's."""
    train = build_dataset("shapes", split="train", image_size=32, seed=3, num_samples=4)
    val = build_dataset("shapes", split="val", image_size=32, seed=3, num_samples=4)
    assert not torch.equal(train.render(0)[0], val.render(0)[0])
    for split in (train, val):
        plain = ShapesDataset(4, image_size=32, seed=split.seed)
        assert torch.equal(split[2][0], plain[2][0])
        assert torch.equal(split[2][1], plain[2][1])
    assert train.seed == 3


def test_build_dataset_rejects_unknown_names():
    """An unknown dataset name or split raises a ValueError listing the choices."""
    with pytest.raises(ValueError, match=r"name must be one of .*got 'coco'"):
        build_dataset("coco", split="train")
    with pytest.raises(ValueError, match=r"split must be one of \('train', 'val'\).*got 'dev'"):
        build_dataset("shapes", split="dev")


def test_shapes_fast_path_equals_eval_transforms():
    """ShapesDataset's default normalisation equals eval_transforms() applied to render()."""
    ds = ShapesDataset(2, image_size=32)
    raw, mask = ds.render(1)
    image, m = eval_transforms()(tv_tensors.Image(raw), tv_tensors.Mask(mask))
    torch.testing.assert_close(ds[1][0], image)
    assert torch.equal(ds[1][1], m)


# ---------------------------------------------------------------------------------------------
# Real-format fakes (tests/fake_datasets.py): Pets modes, VOC + SBD trainaug, original-size masks
# ---------------------------------------------------------------------------------------------


def _pets_labels(trimap: np.ndarray, mode: str) -> np.ndarray:
    """Course labels from a raw trimap (1 pet, 2 background, 3 border), computed with NumPy."""
    border = 2 if mode == "trimap" else 255
    return np.select([trimap == 2, trimap == 1, trimap == 3], [0, 1, border], default=255)


@pytest.mark.parametrize(("mode", "classes"), [("binary", 2), ("trimap", 3)])
def test_pets_modes_at_original_size(tmp_path, mode, classes):
    """pets_mode picks 2 or 3 classes; val masks at original size are the trimaps, mapped."""
    pets = write_fake_pets(tmp_path)
    ds = build_dataset(
        "pets", split="val", root=tmp_path, image_size=24, pets_mode=mode, original_size_masks=True
    )
    assert (ds.num_classes, len(ds.class_names), len(ds)) == (classes, classes, 2)
    for i, image_id in enumerate(ds.image_ids):
        image, mask = ds[i]
        assert image.shape == (3, 24, 24)
        np.testing.assert_array_equal(mask.numpy(), _pets_labels(pets.trimaps[image_id], mode))
    values = set(np.unique(np.concatenate([ds[i][1].numpy().ravel() for i in range(len(ds))])))
    assert values == ({0, 1, 255} if mode == "binary" else {0, 1, 2})


def test_pets_validation_is_a_fixed_held_out_tenth_of_trainval(tmp_path):
    """split="val" holds out a tenth of trainval (rounded up) and "train" is the rest: disjoint,
    together all of trainval, never a test image; the same whatever the run's seed or the list's
    order; each sample is the picture its id names."""
    pets = write_fake_pets(tmp_path)
    trainval = pets.splits["trainval"]
    train = build_dataset("pets", split="train", root=tmp_path, image_size=16, seed=0)
    val = build_dataset("pets", split="val", root=tmp_path, image_size=16, seed=0)
    assert len(val) == math.ceil(len(trainval) / 10) and len(train) == len(trainval) - len(val)
    assert set(train.image_ids).isdisjoint(val.image_ids)
    assert set(train.image_ids) | set(val.image_ids) == set(trainval)
    assert [i for i in trainval if i in train.image_ids] == train.image_ids  # in list order
    listing = tmp_path / "oxford-iiit-pet" / "annotations" / "trainval.txt"
    listing.write_text("\n".join(reversed(listing.read_text().splitlines())) + "\n")
    again = build_dataset("pets", split="val", root=tmp_path, image_size=16, seed=7)
    assert sorted(again.image_ids) == sorted(val.image_ids)  # the same images, by name
    # Pinned: a change of the rule would silently move every Pets run's validation images.
    assert val.image_ids == ["american_bulldog_10", "British_Shorthair_2"]
    scored = build_dataset("pets", split="val", root=tmp_path, original_size_masks=True)
    for i, image_id in enumerate(scored.image_ids):
        expected = _pets_labels(pets.trimaps[image_id], "trimap")
        np.testing.assert_array_equal(scored[i][1].numpy(), expected)


def test_pets_test_split_only_when_asked(tmp_path):
    """split="test" reads test.txt, in its order; train and val never need that file."""
    pets = write_fake_pets(tmp_path)
    test = build_dataset("pets", split="test", root=tmp_path, original_size_masks=True)
    assert test.image_ids == list(pets.splits["test"])
    for i, image_id in enumerate(test.image_ids):
        expected = _pets_labels(pets.trimaps[image_id], "trimap")
        np.testing.assert_array_equal(test[i][1].numpy(), expected)
    (tmp_path / "oxford-iiit-pet" / "annotations" / "test.txt").unlink()
    for split in ("train", "val"):
        assert len(build_dataset("pets", split=split, root=tmp_path)) > 0


@pytest.mark.parametrize("name", ["shapes", "voc"])
def test_only_pets_has_a_test_split(tmp_path, name):
    """split="test" elsewhere is a ValueError naming the splits there are (VOC's test labels are
    not public)."""
    with pytest.raises(ValueError, match=rf"one of \('train', 'val'\) for '{name}', got 'test'"):
        build_dataset(name, split="test", root=tmp_path)


def test_pets_train_split_in_binary_mode_has_no_border_class(tmp_path):
    """split='train' is the rest of trainval; in binary mode no crop holds the border class 2."""
    write_fake_pets(tmp_path)
    ds = build_dataset("pets", split="train", root=tmp_path, image_size=16, pets_mode="binary")
    assert len(ds) == 10
    labels = torch.cat([ds[i][1].flatten() for i in range(len(ds))])
    assert set(labels.unique().tolist()) <= {0, 1, 255}


def test_voc_val_original_size_masks_are_the_png_indices(tmp_path):
    """VOC val at original size: each mask is the PNG's index array (255 border kept), at the
    picture's own size, while the image is resized and padded for the model."""
    voc = write_fake_voc(tmp_path)
    ds = build_dataset("voc", split="val", root=tmp_path, image_size=32, original_size_masks=True)
    shapes = set()
    for i, image_id in enumerate(voc.splits["val"]):
        image, mask = ds[i]
        assert image.shape == (3, 32, 32) and mask.dtype == torch.int64
        np.testing.assert_array_equal(mask.numpy(), voc.masks[image_id])
        shapes.add(tuple(mask.shape))
    assert len(shapes) == len(voc.splits["val"])  # the fakes have different sizes


def _trainaug(tmp_path, **kwargs):
    voc, sbd = write_fake_voc(tmp_path), write_fake_sbd(tmp_path)
    return voc, sbd, VOCTrainAugDataset(tmp_path, **kwargs)


def test_trainaug_is_voc_train_plus_sbd_minus_voc_val(tmp_path):
    """The ids are VOC train, then SBD's ids in neither VOC train nor VOC val (hand-listed)."""
    _, _, ds = _trainaug(tmp_path)
    assert ds.image_ids == [
        "2007_000032",  # VOC train (also in SBD train: counted once, with VOC's mask)
        "2007_000039",  # VOC train
        "2008_000002",  # SBD train only
        "2008_000003",  # SBD train only
        "2008_000007",  # SBD val only
    ]  # 2007_000033 (SBD train) and 2007_000042 (SBD val) are VOC val: excluded
    assert len(ds) == 5 and ds.num_classes == 21


def test_trainaug_masks_come_from_voc_for_voc_images_and_sbd_otherwise(tmp_path):
    """A VOC train image keeps VOC's mask (with its 255 border); an SBD image gets SBD's .mat."""
    voc, sbd, ds = _trainaug(tmp_path)
    np.testing.assert_array_equal(ds[0][1].numpy(), voc.masks["2007_000032"])
    np.testing.assert_array_equal(ds[2][1].numpy(), sbd.masks["2008_000002"])
    np.testing.assert_array_equal(ds[4][1].numpy(), sbd.masks["2008_000007"])
    assert ds[2][0].shape == (3, *sbd.masks["2008_000002"].shape)


def test_trainaug_reads_sbd_in_torchvisions_own_layout(tmp_path):
    """sbd_root may also be the folder holding img/, cls/, train.txt (SBDataset's download)."""
    write_fake_voc(tmp_path)
    sbd = write_fake_sbd(tmp_path / "elsewhere")
    ds = VOCTrainAugDataset(tmp_path, sbd_root=sbd.root / "benchmark_RELEASE" / "dataset")
    assert len(ds) == 5


def test_build_dataset_voc_trainaug_train_and_val(tmp_path):
    """voc_trainaug changes the training set only; val stays VOC val."""
    write_fake_voc(tmp_path)
    write_fake_sbd(tmp_path)
    common = {"root": tmp_path, "image_size": 16, "voc_trainaug": True}
    train = build_dataset("voc", split="train", **common)
    val = build_dataset("voc", split="val", **common)
    assert isinstance(train, VOCTrainAugDataset) and len(train) == 5
    assert train[3][0].shape == (3, 16, 16) and train[3][1].shape == (16, 16)
    assert isinstance(val, VOCSegmentationDataset) and len(val) == 2
    assert len(build_dataset("voc", split="train", num_samples=3, **common)) == 3


def test_trainaug_without_sbd_shows_the_expected_layout(tmp_path):
    """Missing SBD raises DatasetNotFoundError naming both places looked at, the URL and layout."""
    write_fake_voc(tmp_path)
    with pytest.raises(DatasetNotFoundError) as info:
        build_dataset("voc", split="train", root=tmp_path, voc_trainaug=True)
    message = str(info.value)
    assert str(tmp_path / "benchmark_RELEASE" / "dataset") in message
    assert "benchmark.tgz" in message and "benchmark_RELEASE/dataset/cls/" in message


def test_trainaug_without_scipy_says_how_to_install_it(tmp_path, monkeypatch):
    """Without scipy, torchvision's SBDataset says to install it."""
    write_fake_voc(tmp_path)
    write_fake_sbd(tmp_path)
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    with pytest.raises(RuntimeError, match=r"pip install scipy"):
        VOCTrainAugDataset(tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "pets", "split": "train", "voc_trainaug": True}, "voc_trainaug=True needs"),
        ({"name": "voc", "split": "train", "original_size_masks": True}, "split='val'"),
        ({"name": "pets", "split": "val", "pets_mode": "rgb"}, r"mode must be one of"),
    ],
)
def test_build_dataset_rejects_options_that_do_not_apply(kwargs, match):
    """Options for the wrong dataset or split raise a ValueError naming them."""
    with pytest.raises(ValueError, match=match):
        build_dataset(**kwargs)


def test_collate_original_size_stacks_images_and_lists_masks():
    """Images are stacked; masks of different sizes come back as a list, unchanged."""
    samples = [
        (torch.full((3, 8, 8), float(i)), torch.full((h, w), i, dtype=torch.int64))
        for i, (h, w) in enumerate([(5, 7), (9, 4), (6, 6)])
    ]
    images, masks = collate_original_size(samples)
    assert images.shape == (3, 3, 8, 8) and torch.equal(images[2], samples[2][0])
    assert [tuple(m.shape) for m in masks] == [(5, 7), (9, 4), (6, 6)]
    assert all(torch.equal(m, s[1]) for m, s in zip(masks, samples, strict=True))


def test_collate_original_size_stacks_masks_of_one_size():
    """Masks that share a size are stacked (B, H, W), as the default collate would, so an
    evaluation loop written for tensors (notebook 08's) reads them."""
    samples = [(torch.zeros(3, 4, 4), torch.full((4, 4), i, dtype=torch.int64)) for i in range(2)]
    images, masks = collate_original_size(samples)
    assert isinstance(masks, torch.Tensor) and masks.shape == (2, 4, 4)
    assert torch.equal(masks[1], samples[1][1])
