"""Class colours: a palette is a tuple of ``(r, g, b)`` uint8 triples, entry ``k`` the colour of
class ``k``; ``colorize_mask`` paints a class mask with one. Data layer (layer 3), taught in
notebook 06."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..targets import IGNORE_INDEX

RGB = tuple[int, int, int]
Palette = tuple[RGB, ...]

IGNORE_COLOR: RGB = (255, 255, 255)  # white: no class colour below is white, so ignore stands out

# Background, circle, square, triangle, cross: Okabe-Ito hues, distinct for colour-blind readers.
# These colour the *figures* only; in the images, object colours are drawn independently of class.
SHAPES_PALETTE: Palette = (
    (0, 0, 0),  # background
    (230, 159, 0),  # circle: orange
    (86, 180, 233),  # square: sky blue
    (0, 158, 115),  # triangle: bluish green
    (204, 121, 167),  # cross: reddish purple
)

# Oxford-IIIT Pet in "trimap" mode: background, pet, border (in "binary" mode only the first two).
PETS_PALETTE: Palette = SHAPES_PALETTE[:3]  # the border is the trimap's "not sure" band


def voc_palette(num_classes: int = 256) -> Palette:
    """The standard PASCAL VOC colour map (stored in VOC's mask PNGs): class ``k``'s colour
    spreads the bits of ``k`` over the high bits of R, G and B, as the VOC development kit's
    ``labelcolormap.m`` does. Taught in notebook 06."""

    def channel(k: int, c: int) -> int:
        # bit c of each 3-bit group j of k goes to bit 7 - j of channel c (R, G, B)
        return sum(((k >> (3 * j + c)) & 1) << (7 - j) for j in range(8))

    return tuple(tuple(channel(k, c) for c in range(3)) for k in range(num_classes))


VOC_PALETTE: Palette = voc_palette(21)  # 20 object classes + background (VOC 2012)


def colorize_mask(
    mask: torch.Tensor | np.ndarray, palette: Sequence[Sequence[int]]
) -> torch.Tensor:
    """Paint class indices ``(H, W)`` or ``(B, H, W)`` with a palette of ``(K, 3)`` RGB colours:
    uint8 ``(3, H, W)`` or ``(B, 3, H, W)`` on the mask's device, 255 (ignore) ``IGNORE_COLOR``.
    Taught in notebook 06."""
    mask = torch.as_tensor(mask)
    if mask.dtype.is_floating_point or mask.dtype == torch.bool:  # probabilities, say: argmax first
        raise TypeError(f"mask must hold integer class indices, got dtype {mask.dtype}")
    if mask.ndim not in (2, 3):
        raise ValueError(f"mask must be (H, W) or (B, H, W), got shape {tuple(mask.shape)}")
    colours = torch.as_tensor(np.asarray(palette), dtype=torch.uint8, device=mask.device)
    ignored = mask == IGNORE_INDEX
    labels = mask.long().masked_fill(ignored, 0)
    outside = (labels < 0) | (labels >= len(colours))
    if bool(outside.any()):
        raise ValueError(
            f"mask holds label {labels[outside][0].item()} but the palette has only "
            f"{len(colours)} colours (labels must be 0..{len(colours) - 1} or 255 = ignore)"
        )
    rgb = colours[labels]  # (..., H, W, 3): a lookup table indexed by class
    rgb[ignored] = torch.tensor(IGNORE_COLOR, dtype=torch.uint8, device=mask.device)
    return rgb.movedim(-1, -3).contiguous()  # (..., 3, H, W)
