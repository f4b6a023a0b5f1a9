"""Class colours: one RGB triple per class index, and ``colorize_mask`` to paint a class mask.

Data layer (layer 3); depends on torch (and the ignore label of ``targets``) alone, so the
trainer (layer 4) can log coloured masks without importing the figure helpers. Taught in
notebook 06.

A palette is a tuple of ``(r, g, b)`` uint8 triples; entry ``k`` is the colour of class ``k``.
Pixels equal to the ignore index (255) are painted ``IGNORE_COLOR`` (white), whatever the palette.
"""

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
PETS_PALETTE: Palette = (
    (0, 0, 0),  # background
    (230, 159, 0),  # pet
    (86, 180, 233),  # border (the trimap's "not sure" band)
)


def voc_palette(num_classes: int = 256) -> Palette:
    """Return the standard PASCAL VOC colour map (the palette stored in VOC's mask PNGs).

    Class ``k``'s colour spreads the bits of ``k`` over the high bits of R, G and B, as in the
    VOC development kit's ``labelcolormap.m``. Taught in notebook 06.

    Args:
        num_classes: how many entries to return, 1..256.

    Raises:
        ValueError: if ``num_classes`` is outside 1..256.
    """
    if not 1 <= num_classes <= 256:
        raise ValueError(f"num_classes must be between 1 and 256, got {num_classes}")

    def channel(k: int, c: int) -> int:
        # bit c of each 3-bit group j of k goes to bit 7 - j of channel c (R, G, B)
        return sum(((k >> (3 * j + c)) & 1) << (7 - j) for j in range(8))

    return tuple(tuple(channel(k, c) for c in range(3)) for k in range(num_classes))


VOC_PALETTE: Palette = voc_palette(21)  # 20 object classes + background (VOC 2012)


def colorize_mask(
    mask: torch.Tensor | np.ndarray,
    palette: Sequence[Sequence[int]] | torch.Tensor | np.ndarray,
    *,
    ignore_index: int = IGNORE_INDEX,
    ignore_color: Sequence[int] = IGNORE_COLOR,
) -> torch.Tensor:
    """Paint a class mask with a palette. Taught in notebook 06.

    Args:
        mask: class indices, ``(H, W)`` or ``(B, H, W)``, integer dtype.
        palette: ``(K, 3)`` RGB colours in 0..255, one per class.
        ignore_index: label painted ``ignore_color`` instead of a palette colour.
        ignore_color: RGB colour of ignored pixels (white by default).

    Returns:
        uint8 tensor ``(3, H, W)`` for a ``(H, W)`` mask, ``(B, 3, H, W)`` for ``(B, H, W)``,
        on the mask's device.

    Raises:
        TypeError: if ``mask`` is not an integer tensor/array.
        ValueError: if the mask is not 2-D/3-D, the palette is not ``(K, 3)``, or a label
            (other than ``ignore_index``) has no colour in the palette.
    """
    if isinstance(mask, np.ndarray):
        mask = torch.from_numpy(mask)
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a torch.Tensor or numpy array, got {type(mask).__name__}")
    if mask.dtype.is_floating_point or mask.dtype.is_complex or mask.dtype == torch.bool:
        raise TypeError(f"mask must hold integer class indices, got dtype {mask.dtype}")
    if mask.ndim not in (2, 3):
        raise ValueError(f"mask must be (H, W) or (B, H, W), got shape {tuple(mask.shape)}")
    colours = torch.as_tensor(np.asarray(palette), dtype=torch.uint8, device=mask.device)
    if colours.ndim != 2 or colours.shape[1] != 3:
        raise ValueError(f"palette must be (K, 3) RGB colours, got shape {tuple(colours.shape)}")
    labels = mask.long()
    ignored = labels == ignore_index
    labels = labels.masked_fill(ignored, 0)
    if labels.numel() and (labels.min() < 0 or labels.max() >= len(colours)):
        bad = labels[(labels < 0) | (labels >= len(colours))][0].item()
        raise ValueError(
            f"mask holds label {bad} but the palette has only {len(colours)} colours "
            f"(labels must be 0..{len(colours) - 1} or {ignore_index} = ignore)"
        )
    rgb = colours[labels]  # (..., H, W, 3): a lookup table indexed by class
    fill = torch.as_tensor(ignore_color, dtype=torch.uint8, device=mask.device)
    rgb[ignored] = fill
    return rgb.movedim(-1, -3).contiguous()  # (..., 3, H, W)
