"""Self-check for notebook 06 (data pipeline): a joint random scale, crop and flip.

A random transform cannot be compared output for output with the reference. The check feeds it
an image whose pixels say where they come from (channels: source row, source column, ones, so
padding shows) and a mask of small blocks, and reads off every output the scale, the flip, the
crop, and whether the mask went exactly where the image went.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ._common import Hint, _compare, _fail, _passed, _run, exercise_check

_FULL = (
    "one set of random numbers for the pair, every one from the generator: a factor uniform in "
    "scale_range for both sides, a top and a left corner where a size x size window fits, a "
    "coin for the flip; the image and the mask then go through the same resize (bilinear for "
    "the image, nearest for the mask), padding (0 and 255), window and flip."
)
_HINT_SHAPE = Hint("return (image (C, size, size), mask (size, size)), keeping the dtypes.", _FULL)


def _source_image(height: int, width: int) -> torch.Tensor:
    """``(3, H, W)``: each pixel's row and column centre divided by H and W, and ones."""
    rows = ((torch.arange(height) + 0.5) / height)[:, None].expand(height, width)
    cols = ((torch.arange(width) + 0.5) / width)[None, :].expand(height, width)
    return torch.stack([rows, cols, torch.ones(height, width)])


def _block_mask(height: int, width: int, gen: torch.Generator, block: int = 6) -> torch.Tensor:
    """``(H, W)`` int64: random labels 0-4 in blocks of ``block`` pixels (no symmetry)."""
    coarse = torch.randint(0, 5, (-(-height // block), -(-width // block)), generator=gen)
    blocks = coarse.repeat_interleave(block, 0).repeat_interleave(block, 1)
    return blocks[:height, :width].contiguous()


def _slope(index: torch.Tensor, value: torch.Tensor) -> float:
    """Least-squares slope of ``value`` against ``index``."""
    index, value = index.double(), value.double()
    di = index - index.mean()
    return float((di * (value - value.mean())).sum() / (di * di).sum().clamp_min(1e-12))


def _unpack(case: str, got: Any, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The output's image ``(3, size, size)`` float32 and mask ``(size, size)`` int64."""
    if not (isinstance(got, (tuple, list)) and len(got) == 2):
        raise _fail(case, f"expected a pair (image, mask), got {type(got).__name__}", _HINT_SHAPE)
    for part, value, shape, dtype in (
        ("image", got[0], (3, size, size), torch.float32),
        ("mask", got[1], (size, size), torch.int64),
    ):
        if isinstance(value, torch.Tensor):
            if tuple(value.shape) == shape and value.dtype == dtype:
                continue
            got_text = f"{tuple(value.shape)} {value.dtype}"
        else:
            got_text = type(value).__name__
        raise _fail(case, f"the {part} should be {shape} {dtype}, got {got_text}", _HINT_SHAPE)
    return got[0], got[1]


def _check_padding(
    case: str, image: torch.Tensor, out_mask: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Padding is 0 in the image and 255 in the mask, at the same pixels, and labels stay
    labels; return the ``(size, size)`` boolean map of content pixels."""
    ones = image[2]
    blended = (ones > 0.01) & (ones < 0.99)
    if bool(blended.any()):
        raise _fail(
            case,
            f"{int(blended.sum())} image pixels mix content and padding",
            Hint("pad after scaling, so the padding is never interpolated into the image.", _FULL),
        )
    content = ones > 0.5
    mirrored = out_mask.flip(-1) != 255
    if bool((content != (out_mask != 255)).any()) and torch.equal(mirrored, content):
        raise _fail(  # the padding lines up once the mask is mirrored: two flip draws
            case,
            "the mask is mirrored left-right but the image is not (or the other way round)",
            Hint(
                "draw the flip once and apply that one decision to the image and the mask.", _FULL
            ),
        )
    if bool((out_mask[~content] != 255).any()):
        i, j = (~content & (out_mask != 255)).nonzero()[0].tolist()
        raise _fail(
            case,
            f"at ({i}, {j}) the image is padding but the mask says {int(out_mask[i, j])}, "
            "expected 255",
            Hint(
                "where the image is padded, the mask must be 255 (ignore), so padding counts "
                "neither in the loss nor in the metrics.",
                _FULL,
            ),
        )
    if not bool(content.any()):
        raise _fail(case, "the image is all padding", _HINT_SHAPE)
    if bool((out_mask[content] == 255).any()):
        i, j = (content & (out_mask == 255)).nonzero()[0].tolist()
        raise _fail(
            case,
            f"at ({i}, {j}) the mask is 255 (ignore) but the image shows content",
            Hint(
                "pad and crop the image and the mask with the same numbers: the mask's "
                "padding must be exactly where the image's is.",
                _FULL,
            ),
        )
    labels, known = set(out_mask[content].unique().tolist()), set(mask.unique().tolist())
    if not labels <= known:
        raise _fail(
            case,
            f"the mask has labels {sorted(labels - known)} that the original mask "
            f"{sorted(known)} does not have",
            Hint(
                "resize the mask with nearest neighbour: interpolating labels 1 and 3 invents a 2.",
                "F.interpolate needs a (1, 1, H, W) float tensor: add two dimensions to the mask, "
                "resize with mode='nearest', and turn the result back into int64 labels.",
            ),
        )
    return content


def _analyse(
    case: str, got: Any, mask: torch.Tensor, size: int
) -> tuple[float, bool, tuple[float | None, float | None]]:
    """Check one output; return its scale, whether it is flipped, and where the crop is."""
    image, out_mask = _unpack(case, got, size)
    content = _check_padding(case, image, out_mask, mask)
    height, width = mask.shape
    rows, cols = content.nonzero(as_tuple=True)
    src_row = image[0][content] * height - 0.5  # where each output pixel comes from
    src_col = image[1][content] * width - 0.5
    slope_r, slope_c = _slope(rows, src_row), _slope(cols, src_col)
    if slope_r <= 0:
        raise _fail(
            case,
            "the image is flipped upside down",
            Hint("the paper's flip is left-right: .flip(-1), the last (width) dimension."),
        )
    scale, scale_cols = 1 / slope_r, 1 / abs(slope_c)
    if abs(scale - scale_cols) > 1 / height + 1 / width:  # more than rounding to whole pixels
        raise _fail(
            case,
            f"the image's rows are scaled by {scale:.2f} but the columns by {scale_cols:.2f}",
            Hint(
                "draw one factor and scale the height and the width by it: two factors stretch "
                "every object (a circle becomes an ellipse), which scale augmentation must not.",
                _FULL,
            ),
        )
    _check_alignment(case, mask, out_mask[content], (rows, cols), (src_row, src_col), scale)
    # Where the crop sits in the scaled image, as a fraction of where it could sit (0: top or
    # left edge, 1: bottom or right edge); None where the scaled image is no larger.
    place = []
    for src, side in ((src_row, height), (src_col, width)):
        start = (float(src.min()) + 0.5) * scale - 0.5  # src = (dst + 0.5) / s - 0.5
        room = round(side * scale) - size
        place.append(start / room if room > 0 else None)
    return scale, slope_c < 0, (place[0], place[1])


def _check_alignment(
    case: str,
    mask: torch.Tensor,
    found: torch.Tensor,
    where: tuple[torch.Tensor, torch.Tensor],
    source: tuple[torch.Tensor, torch.Tensor],
    scale: float,
) -> None:
    """Every content pixel's label (``found``, at output pixels ``where``) is the label of the
    source pixel the image shows there (``source``, fractional row and column)."""
    height, width = mask.shape
    (rows, cols), (src_row, src_col) = where, source
    # The label of every output pixel must be the source pixel's, up to where nearest and
    # bilinear resizing disagree (under one source pixel at scale s, plus half a pixel).
    radius = math.ceil(1 / scale) + 1
    onehot = F.one_hot(mask, 5).permute(2, 0, 1).float()[None]  # (1, 5, H, W)
    nearby = F.max_pool2d(onehot, 2 * radius + 1, stride=1, padding=radius)[0] > 0
    r = src_row.round().long().clamp(0, height - 1)
    c = src_col.round().long().clamp(0, width - 1)
    ok = nearby[found, r, c]
    if float(ok.float().mean()) < 0.98:
        k = int((~ok).nonzero()[0])
        window = mask[
            max(0, r[k] - radius) : r[k] + radius + 1, max(0, c[k] - radius) : c[k] + radius + 1
        ]
        raise _fail(
            case,
            f"the mask is not where the image is: {100 * float((~ok).float().mean()):.0f}% of "
            f"the pixels disagree; e.g. at ({int(rows[k])}, {int(cols[k])}) the image shows "
            f"source pixel ({int(r[k])}, {int(c[k])}), whose labels nearby are "
            f"{sorted(set(window.unique().tolist()))}, but the mask says {int(found[k])}",
            Hint(
                "every mask pixel must hold the label of the source pixel the image shows there: "
                "scale, pad, crop and flip both with the same numbers (draw each random number "
                "once), and resize the mask with nearest neighbour (interpolating labels 1 and 3 "
                "would invent a 2).",
                _FULL,
            ),
        )


def _check_spread(
    name: str,
    draws: int,
    scale_range: tuple[float, float],
    scales: list[float],
    flips: list[bool],
    places: list[tuple[float | None, float | None]],
) -> None:
    """Over many draws the scale covers ``scale_range``, both flips happen and the crop moves."""
    low, high = scale_range
    if min(scales) < low * 0.95 - 0.02 or max(scales) > high * 1.05 + 0.02:
        raise _fail(
            name,
            f"the scale must stay in {scale_range}, but it went from {min(scales):.2f} "
            f"to {max(scales):.2f}",
            Hint(
                "draw the factor uniformly in scale_range and resize to round(H*s) x round(W*s).",
                _FULL,
            ),
        )
    spread = 0.35 * (high - low)
    if min(scales) > low + spread or max(scales) < high - spread:
        raise _fail(
            name,
            f"over {draws} draws the scale only went from {min(scales):.2f} to "
            f"{max(scales):.2f}, expected to cover most of {scale_range}",
            Hint("draw a new factor for every call, uniformly in scale_range.", _FULL),
        )
    if len(set(flips)) < 2:
        raise _fail(
            name,
            f"over {draws} draws the image was {'always' if flips[0] else 'never'} flipped",
            Hint("flip left-right with probability 1/2, drawn from the generator.", _FULL),
        )
    if scale_range[0] > 1.2:  # the scaled image is larger than the crop: room to move
        for axis, edge in enumerate(("top", "left")):
            where = [p[axis] for p in places if p[axis] is not None]
            if max(where) - min(where) < 0.3:
                raise _fail(
                    name,
                    f"over {draws} draws the crop's {edge} edge stayed at "
                    f"{min(where):.2f}-{max(where):.2f} of the room it has (0: the edge of "
                    "the scaled image, 1: the opposite one)",
                    Hint(
                        "draw the crop's top and left at random, anywhere the window fits.", _FULL
                    ),
                )


_SEEDED_HINT = Hint(
    "draw every random number from the generator you are given, e.g. "
    "torch.rand((), generator=generator), not from torch's global "
    "random state (torch.rand(()) without it) or Python's random.",
    _FULL,
)
_IDENTITY_HINT = Hint(
    "at scale 1 with a crop of the whole image, the output is the image itself or its mirror "
    "image.",
    _FULL,
)


@exercise_check("data.transforms:random_scale_crop_flip")
def check_random_scale_crop_flip(fn: Callable[..., tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Check ``fn(image, mask, size, scale_range, generator) -> (image, mask)``.

    ``image`` is float ``(3, H, W)``, ``mask`` int64 ``(H, W)``; the result is ``(3, size, size)``
    and ``(size, size)``, same dtypes. Every output must be scaled by one factor (rows and columns
    alike), keep the mask where the image is, labels
    as labels, and padding (0 in the image, 255 in the mask) only where the scaled image is smaller
    than the crop; over many draws the scale must cover ``scale_range``, both flips happen and the
    crop move; the seeded ``generator`` alone must decide. Taught in notebook 06.
    """
    gen = torch.Generator().manual_seed(0)
    cases = [
        # (name, H, W, size, scale_range, draws)
        ("scale 0.5-2.0, 40x56 image, crop 32", 40, 56, 32, (0.5, 2.0), 24),
        ("scale 1.5-2.0 (no padding), 30x36 image, crop 32", 30, 36, 32, (1.5, 2.0), 16),
        (
            "scale 0.5-0.6 (the crop needs padding), 40x44 image, crop 32",
            40,
            44,
            32,
            (0.5, 0.6),
            12,
        ),
        ("scale 1 and a crop of the whole 24x24 image", 24, 24, 24, (1.0, 1.0), 16),
    ]
    for name, height, width, size, scale_range, draws in cases:
        image = _source_image(height, width)
        mask = _block_mask(height, width, gen)
        scales, flips, places = [], [], []
        for k in range(draws):
            case = f"{name}, draw {k + 1}"
            results = []
            for global_seed in range(2 if k == 0 else 1):  # the first draw from two global states
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(global_seed)  # must not matter: the generator decides
                    generator = torch.Generator().manual_seed(1000 + k)
                    args = (image.clone(), mask.clone(), size, scale_range, generator)
                    results.append(_run(case, fn, *args))
            got = results[0]
            scale, flipped, place = _analyse(case, got, mask, size)
            scales.append(scale)
            flips.append(flipped)
            places.append(place)
            if len(results) == 2 and not all(
                torch.equal(a, b) for a, b in zip(got, results[1], strict=True)
            ):
                raise _fail(
                    case, "the same seeded generator gave two different results", _SEEDED_HINT
                )
            if scale_range == (1.0, 1.0) and size == height == width:
                expected_image = image.flip(-1) if flipped else image
                expected_mask = mask.flip(-1) if flipped else mask
                _compare(case + " (image)", got[0], expected_image, hint=_IDENTITY_HINT)
                _compare(case + " (mask)", got[1], expected_mask, atol=0, rtol=0)
        _check_spread(name, draws, scale_range, scales, flips, places)
    _passed(len(cases), "image and mask stay aligned through scale, crop and flip.")
