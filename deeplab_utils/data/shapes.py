"""ShapesDataset: the course's built-in dataset of shapes, drawn on the fly. Data layer (layer 3).

A scene is a textured background (smooth noise, stripes or a gradient, two random colours) with
1..``MAX_OBJECTS`` shapes pasted in random order (the mask shows the visible class), each of
random size, place, angle and colour (class-independent: only *shape* tells classes apart),
plus mild noise. Sample ``i`` comes from ``numpy.random.default_rng([seed, i])``: it depends
only on ``(seed, i)``, not on access order, DataLoader workers or the global RNG. Taught in
notebook 06.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from .palette import SHAPES_PALETTE, Palette
from .transforms import normalize

SHAPES_CLASSES: tuple[str, ...] = ("background", "circle", "square", "triangle", "cross")

MAX_OBJECTS = 4  # shapes in a scene: 1..MAX_OBJECTS
SIZE_RANGE = (0.2, 0.5)  # object size (diameter) as a fraction of the image side: easy to learn
NOISE_STD = 0.03  # pixel noise (fraction of full scale): visible texture, edges stay crisp
MIN_CONTRAST = 0.25  # least RGB distance between an object's colour and the background's mean
CROSS_ARM = 0.32  # half-width of a cross's arms, relative to its half-size
TRIANGLE_RADIUS = 1.25  # circumradius relative to the half-size, so its area nears the others'

# Outward normals of an equilateral triangle's sides (vertex up); its inradius is half the
# circumradius, so a point is inside when all three projections are <= circumradius / 2.
_TRIANGLE_NORMALS = np.array(
    [[np.cos(a), np.sin(a)] for a in np.deg2rad([90.0, 210.0, 330.0])], dtype=np.float32
)


def _signed_distance(kind: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distance (negative inside) of shape ``kind`` at ``u, v``, coordinates rotated into
    its frame and divided by its half-size: exact for the circle, elsewhere a tight bound (max of
    half-plane distances), all that anti-aliasing the edge needs."""
    if kind == 1:  # circle
        return np.sqrt(u * u + v * v) - 1.0
    if kind == 2:  # square; half-side 0.8 so its area is close to the circle's
        return np.maximum(np.abs(u), np.abs(v)) - 0.8
    if kind == 3:  # equilateral triangle, image y pointing down
        n = _TRIANGLE_NORMALS
        d = np.maximum(u * n[0, 0] - v * n[0, 1], u * n[1, 0] - v * n[1, 1])
        return np.maximum(d, u * n[2, 0] - v * n[2, 1]) - 0.5 * TRIANGLE_RADIUS
    # cross (plus sign): the union of a horizontal and a vertical bar, min of their distances
    au, av = np.abs(u), np.abs(v)
    return np.minimum(np.maximum(au - 1.0, av - CROSS_ARM), np.maximum(av - 1.0, au - CROSS_ARM))


class ShapesDataset(Dataset):
    """Procedural scenes of circles, squares, triangles and crosses on textured backgrounds:
    classes 0 background, 1 circle, 2 square, 3 triangle, 4 cross. ``dataset[i]`` is ``(image
    float32 (3, S, S) normalised, mask int64 (S, S))``, ``S = image_size``; ``render(i)`` gives
    the uint8 image instead. A ``transform`` (e.g. ``train_transforms``) gets ``(tv_tensors.Image
    uint8, tv_tensors.Mask int64)`` and returns that pair. Taught in notebook 06.
    """

    class_names: tuple[str, ...] = SHAPES_CLASSES
    num_classes: int = len(SHAPES_CLASSES)
    palette: Palette = SHAPES_PALETTE

    def __init__(
        self,
        num_samples: int = 1000,
        *,
        image_size: int = 128,
        seed: int = 0,
        transform: Callable | None = None,
    ) -> None:
        for name, value, low in (
            ("num_samples", num_samples, 0),
            ("image_size", image_size, 16),
            ("seed", seed, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        self.num_samples = num_samples
        self.image_size = image_size
        self.seed = seed
        self.transform = transform
        # Pixel-centre coordinates, shared by every sample (read-only, so workers may share it).
        coords = np.arange(image_size, dtype=np.float32) + 0.5
        self._x = coords[None, :]  # (1, W)
        self._y = coords[:, None]  # (H, 1)

    def __len__(self) -> int:
        return self.num_samples

    def _background(self, rng: np.random.Generator) -> np.ndarray:
        """Texture in [0, 1] of shape (H, W): smooth noise, stripes or a linear gradient."""
        s = self.image_size
        kind = rng.integers(3)
        if kind == 0:  # smooth noise: a coarse random grid, bilinearly upsampled
            g = int(rng.integers(3, 7))
            grid = rng.random((g, g), dtype=np.float32)
            pos = (np.arange(s, dtype=np.float32) + 0.5) / s * (g - 1)
            lo = np.minimum(pos.astype(np.int64), g - 2)
            frac = pos - lo
            interp = np.zeros((s, g), dtype=np.float32)  # (S, g) linear-interpolation weights
            interp[np.arange(s), lo] = 1.0 - frac
            interp[np.arange(s), lo + 1] = frac
            return interp @ grid @ interp.T  # (S, S)
        angle = rng.uniform(0.0, np.pi)
        proj = (self._x * np.cos(angle) + self._y * np.sin(angle)) / s  # (S, S), about [-1, 1.4]
        if kind == 1:  # stripes: 2-6 periods per image side
            freq = rng.uniform(2.0, 6.0)
            return 0.5 + 0.5 * np.sin(2 * np.pi * freq * proj + rng.uniform(0, 2 * np.pi))
        proj = proj - proj.min()  # gradient
        return proj / max(float(proj.max()), 1e-6)

    def render(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw sample ``index`` before any transform: ``(image uint8 (3, H, W), mask int64
        (H, W))``."""
        index = range(self.num_samples)[index]  # negative counts from the end, IndexError past it
        rng = np.random.default_rng([self.seed, index])
        s = self.image_size
        colours = rng.random((2, 3), dtype=np.float32)  # background's two colours
        t = self._background(rng)  # (H, W)
        image = colours[0][:, None, None] + (colours[1] - colours[0])[:, None, None] * t
        bg_mean = colours.mean(axis=0)
        mask = np.zeros((s, s), dtype=np.int64)
        for _ in range(int(rng.integers(1, MAX_OBJECTS + 1))):
            kind = int(rng.integers(1, len(SHAPES_CLASSES)))
            half = 0.5 * s * rng.uniform(*SIZE_RANGE)  # half-size in pixels
            cx, cy = rng.uniform(0.1 * s, 0.9 * s, size=2)
            angle = rng.uniform(0.0, 2 * np.pi)
            for _try in range(10):  # a colour that stands out from the background
                colour = rng.random(3, dtype=np.float32)
                if np.linalg.norm(colour - bg_mean) >= MIN_CONTRAST:
                    break
            # Work in the object's bounding box only: much faster than the whole image.
            r = int(np.ceil(half * 1.5)) + 2
            y0, y1 = max(0, int(cy) - r), min(s, int(cy) + r + 1)
            x0, x1 = max(0, int(cx) - r), min(s, int(cx) + r + 1)
            dx = self._x[:, x0:x1] - cx  # (1, w)
            dy = self._y[y0:y1, :] - cy  # (h, 1)
            cos, sin = np.cos(angle), np.sin(angle)
            u = (dx * cos + dy * sin) / half  # (h, w)
            v = (dy * cos - dx * sin) / half
            dist = _signed_distance(kind, u, v) * half  # in pixels
            alpha = np.clip(0.5 - dist, 0.0, 1.0)  # anti-aliased coverage, 1 px ramp
            shade = 1.0 + 0.25 * rng.uniform(-1, 1) * np.clip(u, -1, 1)  # soft lighting ramp
            fill = np.clip(colour[:, None, None] * shade, 0.0, 1.0)  # (3, h, w)
            patch = image[:, y0:y1, x0:x1]
            patch += alpha * (fill - patch)
            mask[y0:y1, x0:x1][dist <= 0.0] = kind  # the label is the pixel centre's shape

        image += rng.standard_normal((3, s, s), dtype=np.float32) * NOISE_STD
        image_u8 = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        return torch.from_numpy(image_u8), torch.from_numpy(mask)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.render(index)
        if self.transform is not None:
            return self.transform(tv_tensors.Image(image), tv_tensors.Mask(mask))
        # Equal to eval_transforms(), without v2's dispatch overhead: this feeds CPU training.
        pixels = image.numpy().astype(np.float32) * np.float32(1 / 255)
        return normalize(torch.from_numpy(pixels)), mask
