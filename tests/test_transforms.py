"""Tests for deeplab_utils.data.transforms: joint image + mask transforms."""

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as tF
from torchvision import tv_tensors

from deeplab_utils.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    RandomScale,
    denormalize,
    eval_transforms,
    longer_side_size,
    normalize,
    original_size_eval_transforms,
    train_transforms,
)

RED, BLUE = (250, 10, 10), (10, 10, 250)


def _rectangle_scene(h=40, w=60):
    """A blue image with a red rectangle, and a mask with class 1 exactly on the rectangle."""
    image = torch.tensor(BLUE, dtype=torch.uint8).view(3, 1, 1).repeat(1, h, w)
    mask = torch.zeros(h, w, dtype=torch.int64)
    image[:, 10:25, 15:45] = torch.tensor(RED, dtype=torch.uint8).view(3, 1, 1)
    mask[10:25, 15:45] = 1
    return tv_tensors.Image(image), tv_tensors.Mask(mask)


def _uniform_5x5(mask):
    """Pixels whose 5x5 neighbourhood holds one label: away from edges, which the antialiased
    bilinear resize blends over up to 2 px when it shrinks the image."""
    m = tF.pad(mask[None, None].float(), (2, 2, 2, 2), mode="replicate")
    hi = tF.max_pool2d(m, 5, stride=1)[0, 0]
    lo = -tF.max_pool2d(-m, 5, stride=1)[0, 0]
    return hi == lo


@pytest.mark.parametrize("seed", range(8))
def test_train_transforms_keep_image_and_mask_aligned(seed):
    """After random scale/crop/flip, class 1 is exactly where the image is red, 255 where padded."""
    image, mask = _rectangle_scene()
    torch.manual_seed(seed)
    out_image, out_mask = train_transforms(48, color_jitter=0.0)(image, mask)
    rgb = (denormalize(out_image) * 255).round()  # (3, 48, 48)
    core = _uniform_5x5(out_mask)
    expected = {0: BLUE, 1: RED, 255: tuple(round(255 * m) for m in IMAGENET_MEAN)}
    for label, colour in expected.items():
        sel = core & (out_mask == label)
        if sel.any():
            diff = (rgb[:, sel] - torch.tensor(colour, dtype=torch.float32)[:, None]).abs()
            assert diff.max() <= 2, f"label {label} is not where its colour is"


def test_scaling_never_invents_labels():
    """Masks are resized nearest-neighbour: no label appears that was not there (besides 255)."""
    mask = tv_tensors.Mask(torch.tensor([0, 3, 7]).repeat_interleave(11).view(3, 11).repeat(4, 1))
    image = tv_tensors.Image(torch.zeros(3, 12, 11, dtype=torch.uint8))
    for seed in range(10):
        torch.manual_seed(seed)
        _, out = train_transforms(16)(image, mask)
        assert set(out.unique().tolist()) <= {0, 3, 7, 255}


def test_random_scale_matches_interpolate_nearest():
    """RandomScale resizes the mask exactly like F.interpolate(mode='nearest') to its new size."""
    mask = torch.randint(0, 5, (20, 30))
    torch.manual_seed(0)
    out = RandomScale((0.5, 2.0))(tv_tensors.Mask(mask))
    expected = tF.interpolate(mask[None, None].float(), size=out.shape[-2:], mode="nearest")
    assert torch.equal(out, expected[0, 0].long())
    assert 10 <= out.shape[0] <= 40 and out.shape[0] / 20 == pytest.approx(out.shape[1] / 30, 0.1)


def test_eval_transforms_without_size_only_normalise():
    """eval_transforms() is exactly (x / 255 - mean) / std, computed here with NumPy."""
    image, mask = _rectangle_scene()
    out_image, out_mask = eval_transforms()(image, mask)
    expected = (image.numpy() / 255.0 - np.array(IMAGENET_MEAN)[:, None, None]) / np.array(
        IMAGENET_STD
    )[:, None, None]
    np.testing.assert_allclose(out_image.numpy(), expected, atol=1e-5)
    assert type(out_mask) is torch.Tensor and torch.equal(out_mask, mask.as_subclass(torch.Tensor))


@pytest.mark.parametrize(("h", "w"), [(40, 60), (60, 40), (32, 32)])
def test_eval_transforms_resize_and_pad_with_ignore(h, w):
    """eval_transforms(32) keeps the aspect ratio, pads bottom/right with 255, and is square."""
    image, mask = _rectangle_scene(h, w)
    out_image, out_mask = eval_transforms(32)(image, mask)
    assert out_image.shape == (3, 32, 32) and out_mask.shape == (32, 32)
    valid = out_mask != 255
    rows, cols = int(valid.any(1).sum()), int(valid.any(0).sum())
    assert (rows, cols) == (round(32 * h / max(h, w)), round(32 * w / max(h, w)))
    assert valid[:rows, :cols].all()


def test_train_transforms_are_reproducible_with_a_seed():
    """The same torch seed gives the same augmented pair."""
    image, mask = _rectangle_scene()
    t = train_transforms(32)
    torch.manual_seed(7)
    a = t(image, mask)
    torch.manual_seed(7)
    b = t(image, mask)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("shape", [(3, 5, 6), (2, 3, 5, 6)])
def test_denormalize_inverts_normalize(shape):
    """denormalize(normalize(x)) == x for images in [0, 1], single or batched."""
    x = torch.rand(shape)
    torch.testing.assert_close(denormalize(normalize(x)), x)


def test_bad_arguments_raise():
    """Bad sizes, scale ranges and image shapes raise ValueErrors naming the value."""
    with pytest.raises(ValueError, match="crop_size must be a positive int, got 0"):
        train_transforms(0)
    with pytest.raises(ValueError, match=r"scale_range .* got \(2.0, 1.0\)"):
        train_transforms(32, scale_range=(2.0, 1.0))
    with pytest.raises(ValueError, match="size must be a positive int, got -4"):
        eval_transforms(-4)
    with pytest.raises(ValueError, match=r"got shape \(1, 5, 5\)"):
        denormalize(torch.zeros(1, 5, 5))


@pytest.mark.parametrize(
    ("height", "width", "size", "expected"),
    [
        (375, 500, 513, (385, 513)),  # a typical VOC photo: 375 * 513 / 500 = 384.75
        (500, 375, 513, (513, 385)),
        (32, 32, 32, (32, 32)),
        (96, 128, 64, (48, 64)),
        (1, 400, 100, (1, 100)),  # never 0 pixels
        (33, 50, 32, (21, 32)),  # 33 * 32 / 50 = 21.12
    ],
)
def test_longer_side_size_hand_computed(height, width, size, expected):
    """The longer side becomes size, the shorter one rounded (computed by hand here)."""
    assert longer_side_size(height, width, size) == expected


def test_eval_transforms_resize_mask_nearest_and_image_bilinear():
    """eval_transforms(24) of a 40x60 picture: the top 16 rows hold the mask resized as by
    F.interpolate(nearest) and the image by v2's antialiased bilinear resize, normalised; the
    rest is padding (255, and the mean colour)."""
    from torchvision.transforms.v2 import functional as tvF

    image, mask = _rectangle_scene(40, 60)
    out_image, out_mask = eval_transforms(24)(image, mask)
    expected = tF.interpolate(mask[None, None].float(), size=(16, 24), mode="nearest")[0, 0]
    assert torch.equal(out_mask[:16], expected.long()) and (out_mask[16:] == 255).all()
    resized = tvF.resize(image.as_subclass(torch.Tensor), [16, 24], antialias=True)
    torch.testing.assert_close(out_image[:, :16], normalize(resized / 255.0))
    assert out_image[:, 16:].abs().max() < 0.02  # the mean colour, normalised


def test_original_size_eval_transforms_resize_the_image_and_keep_the_mask():
    """The image is exactly eval_transforms(size)'s; the mask comes back untouched as int64."""
    image, mask = _rectangle_scene(40, 60)
    out_image, out_mask = original_size_eval_transforms(32)(image, mask)
    expected_image, _ = eval_transforms(32)(image, mask)
    assert torch.equal(out_image, expected_image) and out_image.shape == (3, 32, 32)
    assert type(out_mask) is torch.Tensor and out_mask.dtype == torch.int64
    assert torch.equal(out_mask, mask.as_subclass(torch.Tensor))


@pytest.mark.parametrize("shape", [(1, 4, 4), (2, 1, 4, 4), (4, 4), (4, 3, 4)])
def test_normalize_refuses_images_that_are_not_rgb(shape):
    """A grey (1-channel) image is an error naming its shape, not broadcast to 3 channels."""
    with pytest.raises(ValueError, match=r"RGB.*" + re.escape(str(shape))):
        normalize(torch.rand(shape))


def _label_counts(mask: torch.Tensor) -> list[int]:
    return mask.flatten().bincount(minlength=256)[[0, 1, 2, 3, 4, 255]].tolist()


@pytest.mark.parametrize(
    ("seed", "scale_range", "counts", "total"),
    [
        (0, (0.5, 2.0), [1691, 0, 538, 75, 0, 0], 5631.885),
        (1, (0.5, 2.0), [1724, 0, 451, 129, 0, 0], 4362.17),
        (2, (0.5, 2.0), [1880, 0, 325, 99, 0, 0], -1609.141),
        (1, (0.5, 0.7), [738, 0, 204, 19, 0, 1343], 2949.065),
    ],
)
def test_train_transforms_draws_are_pinned(seed, scale_range, counts, total):
    """The same torch seed gives the augmentations recorded from the implementation of issue 19:
    exact labels per crop (nearest resize, crop and flip are index operations), image sum to
    1e-4 (host rounding)."""
    from deeplab_utils.data import ShapesDataset

    raw, mask = ShapesDataset(2, image_size=64, seed=3).render(1)
    torch.manual_seed(seed)
    transform = train_transforms(48, scale_range=scale_range)
    image, out = transform(tv_tensors.Image(raw), tv_tensors.Mask(mask))
    assert _label_counts(out) == counts
    assert image.sum().item() == pytest.approx(total, rel=1e-4)


def test_random_scale_crop_flip_draws_are_pinned():
    """One generator's successive draws give the crops recorded from the implementation of
    issue 19 (labels exact, image sum to 1e-4)."""
    from deeplab_utils.data import ShapesDataset, random_scale_crop_flip

    image, mask = ShapesDataset(2, image_size=64, seed=3)[1]
    generator = torch.Generator().manual_seed(0)
    expected = [
        ([2006, 0, 179, 119, 0, 0], 1982.207),
        ([1707, 0, 522, 75, 0, 0], 1894.653),
        ([1618, 0, 559, 127, 0, 0], 1965.108),
    ]
    for counts, total in expected:
        out_image, out_mask = random_scale_crop_flip(image, mask, 48, generator=generator)
        assert _label_counts(out_mask) == counts
        assert out_image.sum().item() == pytest.approx(total, rel=1e-4)
    generator = torch.Generator().manual_seed(1)
    out_image, out_mask = random_scale_crop_flip(image, mask, 48, (0.5, 0.7), generator=generator)
    assert _label_counts(out_mask) == [1372, 0, 358, 34, 0, 540]
    assert out_image.sum().item() == pytest.approx(1655.322, rel=1e-4)
