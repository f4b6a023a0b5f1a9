"""Self-check for notebook 06 (data pipeline): a joint random scale, crop and flip.

A random output cannot be compared with the reference's: the check feeds in an image whose pixels
say where they come from (source row, source column, ones) and a mask of blocks, and reads off
every output its scale, flip and crop, and whether the mask went where the image went.
"""

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ..data import random_scale_crop_flip
from ._common import CheckFailed, Hint, close, exercise_check, fail, passed, run, seeded

_FULL = (
    "one set of random numbers for the pair, every one from the generator: a factor uniform in "
    "scale_range for both sides, a top and a left corner where a size x size window fits, a "
    "coin for the flip; the image and the mask then go through the same resize (bilinear for "
    "the image, nearest for the mask), padding (0 and 255), window and flip."
)
# The mistakes the check names, each with its hint (the second step is _FULL unless given).
_HINTS: dict[str, str | Hint] = {
    "shape": "return (image (C, size, size), mask (size, size)), keeping the dtypes.",
    "blended": "pad after scaling, so the padding is never interpolated into the image.",
    "two flips": "draw the flip once and apply that one decision to the image and the mask.",
    "padding label": "where the image is padded, the mask must be 255 (ignore), so padding "
    "counts neither in the loss nor in the metrics.",
    "padding place": "pad and crop the image and the mask with the same numbers: the mask's "
    "padding must be exactly where the image's is.",
    "labels": Hint(
        "resize the mask with nearest neighbour: interpolating labels 1 and 3 invents a 2.",
        "the resizing function works on float batches of channels: what does the mask need "
        "around it to go through, which mode keeps every label one of the source's, and which "
        "dtype must it have again afterwards?",
    ),
    "upside down": Hint(
        "the paper's flip is left-right: which dimension of (C, H, W) is the width?",
        "a left-right flip reverses the order of the columns and leaves every row where it was: "
        "which dimension indexes the columns in the image, which in the mask (H, W), and is it "
        "the same one counted from the end?",
    ),
    "two factors": "draw one factor and scale the height and the width by it: two factors "
    "stretch every object (a circle becomes an ellipse), which scale augmentation must not.",
    "aligned": "every mask pixel must hold the label of the source pixel the image shows there: "
    "scale, pad, crop and flip both with the same numbers (draw each random number once), and "
    "resize the mask with nearest neighbour (interpolating labels 1 and 3 would invent a 2).",
    "range": "draw the factor uniformly in scale_range, and scale both sides of the image by "
    "it, each to the nearest whole number of pixels.",
    "spread": "draw a new factor for every call, uniformly in scale_range.",
    "flip": "flip left-right with probability 1/2, drawn from the generator.",
    "crop": "draw the crop's top and left at random, anywhere the window fits.",
    "seeded": "draw every random number from the generator you are given (torch's random "
    "functions take it as an argument), not from torch's global random state or Python's "
    "random.",
    "identity": "at scale 1 leave the pixels as they are (no resampling, no smoothing): a crop of "
    "the whole image is then the image itself or its mirror image.",
}


def _wrong(case: str, mistake: str, message: str) -> CheckFailed:
    """The failure that names ``mistake``, a key of ``_HINTS``."""
    hint = _HINTS[mistake]
    return fail(case, message, hint if isinstance(hint, Hint) else Hint(hint, _FULL))


def _inputs(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The image ``(3, H, W)``: each pixel's row and column centre over H and W, and ones; the
    mask ``(H, W)``: random labels 0-4 in blocks of 6x6 pixels (no symmetry)."""
    centres = [(torch.arange(n) + 0.5) / n for n in (height, width)]
    rows, cols = torch.meshgrid(*centres, indexing="ij")
    coarse = torch.randint(0, 5, (-(-height // 6), -(-width // 6)))
    mask = coarse.repeat_interleave(6, 0).repeat_interleave(6, 1)[:height, :width].contiguous()
    return torch.stack([rows, cols, torch.ones(height, width)]), mask


def _slope(index: torch.Tensor, value: torch.Tensor) -> float:
    """Least-squares slope of ``value`` against ``index``."""
    di, value = index.double() - index.double().mean(), value.double()
    return float((di * (value - value.mean())).sum() / (di * di).sum().clamp_min(1e-12))


def _check_padding(case: str, got: Any, mask: torch.Tensor, size: int) -> tuple:
    """The image ``(3, size, size)`` float32, the mask ``(size, size)`` int64 and its content map:
    padding is 0 in the image and 255 in the mask, at the same pixels, and labels stay labels."""
    if not (isinstance(got, tuple | list) and len(got) == 2):
        raise _wrong(case, "shape", f"expected a pair (image, mask), got {type(got).__name__}")
    wanted = (f"(3, {size}, {size}) torch.float32", f"({size}, {size}) torch.int64")
    for part, want, value in zip(("image", "mask"), wanted, got, strict=True):
        is_tensor = isinstance(value, torch.Tensor)
        found = f"{tuple(value.shape)} {value.dtype}" if is_tensor else type(value).__name__
        if found != want:
            raise _wrong(case, "shape", f"the {part} should be {want}, got {found}")
    image, out_mask = got
    ones = image[2]
    if bool((blended := (ones > 0.01) & (ones < 0.99)).any()):
        raise _wrong(case, "blended", f"{int(blended.sum())} image pixels mix content and padding")
    content, padded = ones > 0.5, out_mask == 255
    if bool((content == padded).any()) and torch.equal(out_mask.flip(-1) != 255, content):
        message = "the mask is mirrored left-right but the image is not (or the other way round)"
        raise _wrong(case, "two flips", message)  # the padding lines up once mirrored
    if bool((~content & ~padded).any()):
        i, j = (~content & ~padded).nonzero()[0].tolist()
        message = f"the image is padding but the mask says {int(out_mask[i, j])}, expected 255"
        raise _wrong(case, "padding label", f"at ({i}, {j}) {message}")
    if not bool(content.any()):
        raise _wrong(case, "shape", "the image is all padding")
    if bool((content & padded).any()):
        i, j = (content & padded).nonzero()[0].tolist()
        message = f"at ({i}, {j}) the mask is 255 (ignore) but the image shows content"
        raise _wrong(case, "padding place", message)
    labels, known = set(out_mask[content].unique().tolist()), set(mask.unique().tolist())
    if not labels <= known:
        extra = f"labels {sorted(labels - known)} that the original mask {sorted(known)}"
        raise _wrong(case, "labels", f"the mask has {extra} does not have")
    return image, out_mask, content


def _analyse(case: str, got: Any, mask: torch.Tensor, size: int) -> tuple[float, bool, tuple]:
    """One output's scale, flip, and where the crop sits in the room it has (0 to 1 from the top
    or left edge; None if there is none), after checking it."""
    image, out_mask, content = _check_padding(case, got, mask, size)
    height, width = mask.shape
    rows, cols = content.nonzero(as_tuple=True)
    src_row = image[0][content] * height - 0.5  # where each output pixel comes from
    src_col = image[1][content] * width - 0.5
    slope_r, slope_c = _slope(rows, src_row), _slope(cols, src_col)
    if slope_r <= 0:
        raise _wrong(case, "upside down", "the image is flipped upside down")
    scale, scale_cols = 1 / slope_r, 1 / abs(slope_c)
    if abs(scale - scale_cols) > 1 / height + 1 / width:  # more than rounding to whole pixels
        message = f"the image's rows are scaled by {scale:.2f} but the columns by {scale_cols:.2f}"
        raise _wrong(case, "two factors", message)
    _check_aligned(case, mask, out_mask, content, (src_row, src_col), scale)
    place = []
    for src, side in ((src_row, height), (src_col, width)):
        start = (float(src.min()) + 0.5) * scale - 0.5  # src = (dst + 0.5) / s - 0.5
        room = round(side * scale) - size
        place.append(start / room if room > 0 else None)
    return scale, slope_c < 0, tuple(place)


def _check_aligned(case: str, mask, out_mask, content, source: tuple, scale: float) -> None:
    """Each content pixel's label is that of the source pixel the image shows there, up to where
    nearest and bilinear resizing disagree."""
    height, width = mask.shape
    radius = math.ceil(1 / scale) + 1
    onehot = F.one_hot(mask, 5).permute(2, 0, 1).float()[None]  # (1, 5, H, W)
    nearby = F.max_pool2d(onehot, 2 * radius + 1, stride=1, padding=radius)[0] > 0
    r = source[0].round().long().clamp(0, height - 1)
    c = source[1].round().long().clamp(0, width - 1)
    found = out_mask[content]
    if float((ok := nearby[found, r, c]).float().mean()) >= 0.98:
        return
    k = int((~ok).nonzero()[0])
    (i, j), (y, x) = content.nonzero()[k].tolist(), (int(r[k]), int(c[k]))
    shown = f"at ({i}, {j}) the image shows source pixel ({y}, {x}), labelled {int(mask[y, x])}"
    example = f"{shown}, but the mask says {int(found[k])}"
    share = f"{100 * float((~ok).float().mean()):.0f}% of the pixels disagree"
    raise _wrong(case, "aligned", f"the mask is not where the image is: {share}; e.g. {example}")


def _check_spread(name: str, scale_range: tuple, scales: list, flips: list, places: list) -> None:
    """Over many draws the scale covers ``scale_range``, both flips happen and the crop moves."""
    (low, high), draws = scale_range, len(scales)
    seen = f"{min(scales):.2f} to {max(scales):.2f}"
    if min(scales) < low * 0.95 - 0.02 or max(scales) > high * 1.05 + 0.02:
        message = f"the scale must stay in {scale_range}, but it went from {seen}"
        raise _wrong(name, "range", message)
    spread = 0.35 * (high - low)
    if min(scales) > low + spread or max(scales) < high - spread:
        message = f"over {draws} draws the scale only went from {seen}, expected to cover most of"
        raise _wrong(name, "spread", f"{message} {scale_range}")
    if len(set(flips)) < 2:
        always = "always" if flips[0] else "never"
        raise _wrong(name, "flip", f"over {draws} draws the image was {always} flipped")
    for axis, edge in enumerate(("top", "left") if low > 1.2 else ()):  # room for the crop
        where = [p[axis] for p in places if p[axis] is not None]
        if max(where) - min(where) < 0.3:
            stayed = f"the crop's {edge} edge stayed at {min(where):.2f}-{max(where):.2f}"
            room = "of the room it has (0: the edge of the scaled image, 1: the opposite one)"
            raise _wrong(name, "crop", f"over {draws} draws {stayed} {room}")


@exercise_check(random_scale_crop_flip)
def check_random_scale_crop_flip(fn: Callable[..., tuple[torch.Tensor, torch.Tensor]]) -> None:
    """``fn(image (3, H, W), mask (H, W), size, scale_range, generator)``, many draws per case."""
    cases = [
        # (name, H, W, size, scale_range, draws)
        ("scale 0.5-2.0, 40x56 image, crop 32", 40, 56, 32, (0.5, 2.0), 24),
        ("scale 1.5-2.0 (no padding), 30x36 image, crop 32", 30, 36, 32, (1.5, 2.0), 16),
        ("scale 0.5-0.6 (padding needed), 40x44 image, crop 32", 40, 44, 32, (0.5, 0.6), 12),
        ("scale 1 and a crop of the whole 24x24 image", 24, 24, 24, (1.0, 1.0), 16),
    ]
    for name, height, width, size, scale_range, draws in cases:
        image, mask = _inputs(height, width)
        seen = []  # (scale, flipped, place) of every draw
        for k in range(draws):
            case, results = f"{name}, draw {k + 1}", []
            for global_seed in range(2 if k == 0 else 1):  # the first draw from two global states
                with seeded(global_seed):  # must not matter: the generator decides
                    args = (image.clone(), mask.clone(), size, scale_range)
                    results.append(run(case, fn, *args, torch.Generator().manual_seed(1000 + k)))
            seen.append(_analyse(case, results[0], mask, size))
            if k == 0 and not all(map(torch.equal, *results)):
                raise _wrong(case, "seeded", "the same seeded generator gave two different results")
            if scale_range == (1.0, 1.0) and size == height == width:
                want = [t.flip(-1) if seen[-1][1] else t for t in (image, mask)]
                if not all(map(close, results[0], want)):
                    raise _wrong(case, "identity", "the output is neither the input nor its mirror")
        _check_spread(name, scale_range, *map(list, zip(*seen, strict=True)))
    passed(len(cases), "image and mask stay aligned through scale, crop and flip.")
