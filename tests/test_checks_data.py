"""Tests for the notebook-06 self-check check_random_scale_crop_flip, and for the package's
random_scale_crop_flip that a learner falls back on."""

import pytest
import torch
import torch.nn.functional as F

from deeplab_utils.checks import CheckFailed, check_random_scale_crop_flip
from deeplab_utils.data import random_scale_crop_flip


def make_transform(
    *,
    mask_mode="nearest-exact",
    antialias=False,
    pad="bottom-right",
    mask_fill=255,
    flip_mask=True,
    same_crop=True,
    mask_bilinear=False,
    use_generator=True,
    flip_p=0.5,
    fixed_scale=None,
    centre_crop=False,
    vertical=False,
    two_factors=False,
    two_coins=False,
):
    """A joint random scale, crop and flip written with F.interpolate; the keywords inject the
    mistakes (and the harmless variants) the tests below try."""

    def transform(image, mask, size, scale_range, generator):
        g = generator if use_generator else None
        low, high = scale_range
        scale = low + (high - low) * torch.rand((), generator=g).item()
        scale = fixed_scale or scale
        h, w = image.shape[-2:]
        scale_w = low + (high - low) * torch.rand((), generator=g).item() if two_factors else scale
        new = (max(1, round(h * scale)), max(1, round(w * scale_w)))
        image = F.interpolate(
            image[None], new, mode="bilinear", align_corners=False, antialias=antialias
        )[0]
        mode = "bilinear" if mask_bilinear else mask_mode
        mask = F.interpolate(mask[None, None].float(), new, mode=mode)[0, 0].round().long()
        ph, pw = max(0, size - new[0]), max(0, size - new[1])
        pads = (
            (0, pw, 0, ph)
            if pad == "bottom-right"
            else (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
        )
        image, mask = F.pad(image, pads, value=0.0), F.pad(mask, pads, value=mask_fill)

        def corner():
            if centre_crop:
                return (image.shape[-2] - size) // 2, (image.shape[-1] - size) // 2
            top = int(torch.randint(0, image.shape[-2] - size + 1, (), generator=g))
            return top, int(torch.randint(0, image.shape[-1] - size + 1, (), generator=g))

        (top, left), (mtop, mleft) = (corner(),) * 2 if same_crop else (corner(), corner())
        image = image[:, top : top + size, left : left + size]
        mask = mask[mtop : mtop + size, mleft : mleft + size]
        if two_coins:  # a coin for the image and another for the mask
            image = image.flip(-1) if torch.rand((), generator=g) < flip_p else image
            mask = mask.flip(-1) if torch.rand((), generator=g) < flip_p else mask
        elif torch.rand((), generator=g) < flip_p:
            dim = -2 if vertical else -1
            image, mask = image.flip(dim), mask.flip(dim) if flip_mask else mask
        return image, mask

    return transform


def _crop_source(image, mask, size, top, left):
    """Reference behaviour by hand, for one fixed draw: pad bottom/right then cut."""
    ph, pw = max(0, size - image.shape[-2]), max(0, size - image.shape[-1])
    image, mask = F.pad(image, (0, pw, 0, ph)), F.pad(mask, (0, pw, 0, ph), value=255)
    return image[:, top : top + size, left : left + size], mask[
        top : top + size, left : left + size
    ]


def test_package_version_pads_with_ignore_and_keeps_labels_and_dtypes():
    """random_scale_crop_flip at scale 0.5 on a 40x40 pair, crop 32: 20x20 of content padded
    by 12 rows and columns of 255 (by hand: 32*32 - 20*20 = 624 ignore pixels), labels kept."""
    image = torch.randn(3, 40, 40)
    mask = torch.randint(0, 5, (40, 40))
    gen = torch.Generator().manual_seed(0)
    out_image, out_mask = random_scale_crop_flip(image, mask, 32, (0.5, 0.5), gen)
    assert out_image.shape == (3, 32, 32) and out_image.dtype == torch.float32
    assert out_mask.shape == (32, 32) and out_mask.dtype == torch.int64
    assert int((out_mask == 255).sum()) == 32 * 32 - 20 * 20
    assert bool((out_image[:, out_mask == 255] == 0).all())
    assert set(out_mask.unique().tolist()) <= set(range(5)) | {255}


def test_package_version_at_scale_one_is_a_crop_or_its_mirror():
    """At scale 1 the output is a window of the input, or its mirror image (compared with a
    crop made by hand at every position)."""
    image, mask = torch.randn(3, 9, 11), torch.randint(0, 5, (9, 11))
    for seed in range(6):
        out = random_scale_crop_flip(
            image, mask, 7, (1.0, 1.0), torch.Generator().manual_seed(seed)
        )
        windows = [_crop_source(image, mask, 7, t, c) for t in range(3) for c in range(5)]
        assert any(
            torch.equal(out[0], win[0].flip(-1) if flip else win[0])
            and torch.equal(out[1], win[1].flip(-1) if flip else win[1])
            for win in windows
            for flip in (False, True)
        )


@pytest.mark.parametrize(
    "fn",
    [
        make_transform(),
        make_transform(mask_mode="nearest", antialias=True),
        make_transform(pad="both sides"),
        lambda *args: random_scale_crop_flip(*args),
    ],
    ids=["nearest-exact", "legacy nearest + antialias", "padding on both sides", "package"],
)
def test_check_passes_on_correct_implementations(fn, capsys):
    """Correct transforms pass, whatever their resizing convention or where the padding goes;
    the package's own version (called under another name) too, once the guard is off."""
    check = check_random_scale_crop_flip
    if fn.__name__ == "<lambda>":  # the package's version itself: bypass the delegation guard
        check = check_random_scale_crop_flip.__wrapped__
    result = check(fn)
    assert result is (fn if check is check_random_scale_crop_flip else None)
    assert capsys.readouterr().out.startswith("✓ check_random_scale_crop_flip: all 4 cases")


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (make_transform(flip_mask=False), "the mask is not where the image is"),
        (make_transform(same_crop=False), "the mask is not where the image is"),
        (make_transform(mask_bilinear=True), "the mask is not where the image is"),
        (make_transform(mask_fill=0), r"the image is padding but the mask says 0, expected 255"),
        (make_transform(use_generator=False), "the same seeded generator gave two different"),
        (make_transform(flip_p=0.0), "the image was never flipped"),
        (make_transform(flip_p=1.0), "the image was always flipped"),
        (make_transform(fixed_scale=1.0), r"the scale only went from 1\.00 to 1\.00"),
        (make_transform(centre_crop=True), r"the crop.s top edge stayed at 0\.4"),
        (make_transform(vertical=True), "flipped upside down"),
        (
            make_transform(two_factors=True),
            r"draw 1'.*rows are scaled by 0\.97 but the columns by 1\.43",
        ),
        (make_transform(two_coins=True), "the mask is mirrored left-right but the image is not"),
    ],
    ids=[
        "image flipped, not the mask",
        "two different crops",
        "bilinear mask",
        "mask padded with 0",
        "global random state",
        "never flips",
        "always flips",
        "no scaling",
        "centre crop",
        "vertical flip",
        "one factor for the height, another for the width",
        "a flip coin for the image and another for the mask",
    ],
)
def test_check_catches_wrong_implementations(fn, message):
    """A misaligned image and mask (flip or crop of one only, labels interpolated), a mask
    padded as background, ignoring the generator, a fixed flip or scale, a fixed crop, an
    upside-down flip and two scale factors (rows and columns stretched differently) each fail
    with a message saying what went wrong."""
    with pytest.raises(CheckFailed, match=message):
        check_random_scale_crop_flip(fn)


def test_upside_down_flip_gets_a_second_pointer():
    """The vertical flip's hint has a second step, shown with hint=True."""
    with pytest.raises(CheckFailed, match=r"width\?.*More: a left-right flip reverses"):
        check_random_scale_crop_flip(make_transform(vertical=True), hint=True)


def test_check_rejects_a_single_return_value():
    """Returning only the image says that a pair is expected."""
    with pytest.raises(CheckFailed, match="expected a pair"):
        check_random_scale_crop_flip(lambda image, mask, size, scale_range, generator: image)
