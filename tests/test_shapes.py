"""Tests for deeplab_utils.data.shapes: the procedural ShapesDataset."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from deeplab_utils.data import IMAGENET_MEAN, IMAGENET_STD, SHAPES_CLASSES, ShapesDataset, shapes
from deeplab_utils.data.shapes import _signed_distance


@pytest.mark.parametrize("image_size", [32, 64])
def test_item_contract(image_size):
    """An item is a normalised float32 (3, H, W) image and an int64 (H, W) mask of valid classes."""
    image, mask = ShapesDataset(4, image_size=image_size)[1]
    assert image.shape == (3, image_size, image_size) and image.dtype == torch.float32
    assert mask.shape == (image_size, image_size) and mask.dtype == torch.int64
    assert set(mask.unique().tolist()) <= set(range(len(SHAPES_CLASSES)))
    # normalised values of [0, 1] pixels lie within [(0 - mean) / std, (1 - mean) / std]
    low = (0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    high = (1 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    assert (image.amin(dim=(1, 2)).numpy() >= low - 1e-5).all()
    assert (image.amax(dim=(1, 2)).numpy() <= high + 1e-5).all()


def test_normalisation_matches_numpy():
    """The default image equals (uint8 / 255 - mean) / std computed with NumPy from render()."""
    ds = ShapesDataset(3, image_size=32)
    raw, _ = ds.render(2)
    expected = (raw.numpy() / 255.0 - np.array(IMAGENET_MEAN)[:, None, None]) / np.array(
        IMAGENET_STD
    )[:, None, None]
    np.testing.assert_allclose(ds[2][0].numpy(), expected, atol=1e-5)


def test_sample_depends_only_on_seed_and_index():
    """Sample i is identical across instances, access orders and global RNG states."""
    a, b = ShapesDataset(10, image_size=32, seed=3), ShapesDataset(10, image_size=32, seed=3)
    torch.manual_seed(123)
    later = [b[i] for i in (9, 4, 7)]
    for (img, msk), i in zip(later, (9, 4, 7), strict=True):
        assert torch.equal(img, a[i][0]) and torch.equal(msk, a[i][1])
    other = ShapesDataset(10, image_size=32, seed=4)
    assert not torch.equal(a[4][0], other[4][0])
    assert not torch.equal(a[4][0], a[5][0])


def test_dataloader_workers_give_the_same_batches():
    """Batches are the same with 0 and 2 DataLoader workers."""
    ds = ShapesDataset(8, image_size=32)
    plain = list(DataLoader(ds, batch_size=4))
    workers = list(DataLoader(ds, batch_size=4, num_workers=2))
    for (x0, y0), (x1, y1) in zip(plain, workers, strict=True):
        assert torch.equal(x0, x1) and torch.equal(y0, y1)


def test_every_class_appears_and_objects_are_reasonably_large():
    """Over 64 scenes every class appears and objects cover a sizeable share of pixels."""
    ds = ShapesDataset(64, image_size=64)
    counts = np.zeros(len(SHAPES_CLASSES))
    for i in range(len(ds)):
        counts += np.bincount(ds.render(i)[1].flatten().numpy(), minlength=len(SHAPES_CLASSES))
    assert (counts > 0).all()
    assert 0.1 < counts[1:].sum() / counts.sum() < 0.6


def test_mask_marks_where_the_object_was_painted(monkeypatch):
    """In one-object scenes, the pixels the mask calls object differ in colour from the rest."""
    monkeypatch.setattr(shapes, "MAX_OBJECTS", 1)
    ds = ShapesDataset(20, image_size=64)
    agree = []
    for i in range(20):
        image, mask = ds.render(i)
        fg = mask.numpy() > 0
        inside = image.numpy()[:, fg].mean(axis=1)
        outside = image.numpy()[:, ~fg].mean(axis=1)
        agree.append(np.abs(inside - outside).max() > 10)
    assert np.mean(agree) > 0.8


@pytest.mark.parametrize(
    ("kind", "inside", "outside"),
    [
        (1, (0.0, 0.9), (0.75, 0.75)),  # circle: radius 1
        (2, (0.75, 0.75), (0.0, 0.9)),  # square: half-side 0.8
        (3, (0.0, 0.5), (0.0, -0.7)),  # triangle: vertex up (image y down), flat base below
        (4, (0.9, 0.0), (0.6, 0.6)),  # cross: arms, not the corners
    ],
)
def test_shape_geometry_by_hand(kind, inside, outside):
    """Hand-picked points fall inside/outside each shape in its unit frame."""
    u, v = np.array([inside[0], outside[0]]), np.array([inside[1], outside[1]])
    d = _signed_distance(kind, u, v)
    assert d[0] < 0 < d[1]


def test_classes_are_not_readable_from_colour():
    """Mean object colour per class is nearly the same: colour is drawn independently of class."""
    ds = ShapesDataset(150, image_size=48)
    sums, counts = np.zeros((5, 3)), np.zeros(5)
    for i in range(len(ds)):
        image, mask = (t.numpy() for t in ds.render(i))
        for k in range(1, 5):
            sel = mask == k
            sums[k] += image[:, sel].sum(axis=1)
            counts[k] += sel.sum()
    means = sums[1:] / counts[1:, None]  # (4 classes, RGB)
    assert np.ptp(means, axis=0).max() < 40  # out of 255


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_samples": -1}, "num_samples must be an int >= 0, got -1"),
        ({"image_size": 8}, "image_size must be an int >= 16, got 8"),
        ({"seed": 1.5}, "seed must be an int >= 0, got 1.5"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    """Bad constructor arguments raise a ValueError naming the value."""
    with pytest.raises(ValueError, match=match):
        ShapesDataset(**kwargs)


def test_index_out_of_range_raises():
    """Indexing past the end raises IndexError (so iteration stops)."""
    with pytest.raises(IndexError, match="out of range"):
        ShapesDataset(3, image_size=16)[3]
    assert len(list(ShapesDataset(3, image_size=16))) == 3


@pytest.mark.parametrize(
    ("index", "class_pixels", "pixel_sum"),
    [
        (0, [3083, 422, 0, 591, 0], 1303328),
        (1, [3529, 0, 567, 0, 0], 2087534),
        (2, [3920, 176, 0, 0, 0], 1343074),
        (3, [3756, 155, 0, 0, 185], 2071156),
    ],
)
def test_samples_are_pinned(index, class_pixels, pixel_sum):
    """Seed 0's scenes stay the ones notebooks and the recipe were tuned on (values recorded from
    the implementation of issue 19): exact class counts; the pixel sum within a few levels, as a
    host's float rounding may move a pixel by one."""
    image, mask = ShapesDataset(4, image_size=64, seed=0).render(index)
    assert mask.flatten().bincount(minlength=5).tolist() == class_pixels
    assert int(image.long().sum()) == pytest.approx(pixel_sum, abs=64)
