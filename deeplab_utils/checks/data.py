"""Self-check for notebook 06 (data pipeline): padding and cropping an image with its mask."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._common import CheckFailed, _compare, _passed, _run


def _reference_pad_and_crop(
    image: torch.Tensor, mask: torch.Tensor, size: int, top: int, left: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The package's padding (``PadToSize``: image 0, mask 255) then torchvision's crop."""
    from torchvision import tv_tensors
    from torchvision.transforms.v2 import functional as TF

    from ..data.transforms import PadToSize

    padded_image, padded_mask = PadToSize(size, image_fill=(0,), ignore_index=255)(
        tv_tensors.Image(image), tv_tensors.Mask(mask)
    )
    crop_image = TF.crop(padded_image, top, left, size, size).as_subclass(torch.Tensor)
    crop_mask = TF.crop(padded_mask, top, left, size, size).as_subclass(torch.Tensor)
    return crop_image, crop_mask


def check_pad_and_crop(fn: Callable[..., tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Check ``fn(image, mask, size, top, left) -> (image_crop, mask_crop)``.

    ``image`` is ``(C, H, W)`` (float or uint8), ``mask`` ``(H, W)`` int64. ``fn`` pads both at
    the bottom and right up to at least ``size`` x ``size`` (image with 0, mask with 255 =
    ignore), then cuts the same window, rows ``top:top+size`` and columns ``left:left+size``,
    out of both: ``(C, size, size)`` and ``(size, size)``. Compared with the package's
    ``PadToSize`` followed by torchvision's crop on odd sizes, with padding on no, one or both
    axes, a uint8 image; the dtypes must be kept (the mask stays int64). Taught in notebook 06.
    """
    check = "check_pad_and_crop"
    gen = torch.Generator().manual_seed(0)
    cases = [
        # (name, image (C, H, W), size, top, left)
        ("no padding needed, 13x17 -> 9 at (2, 5)", torch.rand(3, 13, 17, generator=gen), 9, 2, 5),
        ("padding on both axes, 7x5 -> 9", torch.rand(3, 7, 5, generator=gen), 9, 0, 0),
        (
            "padding the rows only, 6x15 -> 8 at (0, 4)",
            torch.rand(3, 6, 15, generator=gen),
            8,
            0,
            4,
        ),
        (
            "padding the columns only, 11x4 -> 7 at (3, 0)",
            torch.rand(1, 11, 4, generator=gen),
            7,
            3,
            0,
        ),
        ("exact fit, 9x9 -> 9", torch.rand(3, 9, 9, generator=gen), 9, 0, 0),
        (
            "uint8 image, 5x8 -> 6 at (0, 1)",
            torch.randint(1, 256, (3, 5, 8), generator=gen, dtype=torch.uint8),
            6,
            0,
            1,
        ),
    ]
    for name, image, size, top, left in cases:
        h, w = image.shape[-2:]
        mask = torch.randint(0, 5, (h, w), generator=gen)  # (H, W) int64
        exp_image, exp_mask = _reference_pad_and_crop(image, mask, size, top, left)
        got = _run(check, name, fn, image.clone(), mask.clone(), size, top, left)
        if not (isinstance(got, (tuple, list)) and len(got) == 2):
            raise CheckFailed(
                f"{check}: case '{name}': expected a pair (image_crop, mask_crop), "
                f"got {type(got).__name__}."
            )
        got_image, got_mask = got
        for part, value, expected in (
            ("image", got_image, exp_image),
            ("mask", got_mask, exp_mask),
        ):
            if isinstance(value, torch.Tensor) and value.dtype != expected.dtype:
                raise CheckFailed(
                    f"{check}: case '{name}': the {part} came back as {value.dtype}, expected "
                    f"{expected.dtype}. Hint: padding and cropping must keep the dtype (a mask "
                    "holds class indices: int64)."
                )
        pad_hint = (
            "pad only at the bottom and right, up to size (nothing where the side is already "
            "long enough), then take rows top:top+size and columns left:left+size."
        )
        _compare(check, name + " (image)", got_image, exp_image, hint=pad_hint + " Image fill: 0.")
        mask_hint = pad_hint + " Mask fill: 255 (ignore), so padding never counts as a class."
        if isinstance(got_mask, torch.Tensor) and got_mask.shape == exp_mask.shape:
            pad = exp_mask == 255
            if bool(pad.any()) and not bool((got_mask[pad] == 255).all()):
                mask_hint = (
                    "the padded mask pixels must be 255 (ignore), so that padding counts "
                    "neither in the loss nor in the metrics."
                )
            elif not bool((got_mask[~pad] == exp_mask[~pad]).all()):
                mask_hint = (
                    "the mask's labels are not where the image's pixels are: cut the same "
                    "window (same top, left, size) from the image and the mask."
                )
        _compare(check, name + " (mask)", got_mask, exp_mask, hint=mask_hint, atol=0, rtol=0)
    _passed(check, len(cases), "image and mask stay aligned, padding is 0 / 255 (ignore).")
