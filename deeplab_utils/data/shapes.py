"""ShapesDataset: the course's built-in dataset of procedurally drawn shapes, made on the fly.

Data layer (layer 3). Taught in notebook 06.

Each scene is a textured background (smooth noise, stripes or a gradient, in two random colours)
with 1..``max_objects`` shapes pasted on it in random order, so later shapes occlude earlier
ones and the mask shows the visible class. Every shape has a random size (20-50 % of the image
side), position, rotation and colour (with a soft shading ramp), and the image gets mild pixel
noise. Colours are drawn independently of the class, so only *shape* tells classes apart.

Determinism: sample ``i`` is drawn from ``numpy.random.default_rng([seed, i])``, so it depends
only on ``(seed, i)`` -- not on access order, DataLoader workers or the global RNG state.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from .palette import SHAPES_PALETTE, Palette
from .transforms import IMAGENET_MEAN, IMAGENET_STD

SHAPES_CLASSES: tuple[str, ...] = ("background", "circle", "square", "triangle", "cross")

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
    """Signed distance (negative inside) of shape ``kind`` in its own unit frame.

    ``u, v`` are coordinates rotated into the shape's frame and divided by its half-size; exact
    for the circle, a tight bound elsewhere (max of half-plane distances), which is all that
    anti-aliasing the edge needs.
    """
    if kind == 1:  # circle
        return np.sqrt(u * u + v * v) - 1.0
    if kind == 2:  # square; half-side 0.8 so its area is close to the circle's
        return np.maximum(np.abs(u), np.abs(v)) - 0.8
    if kind == 3:  # equilateral triangle, image y pointing down
        n = _TRIANGLE_NORMALS
        d = np.maximum(u * n[0, 0] - v * n[0, 1], u * n[1, 0] - v * n[1, 1])
        return np.maximum(d, u * n[2, 0] - v * n[2, 1]) - 0.5 * TRIANGLE_RADIUS
    # cross (plus sign): union of two bars = min of their distances
    au, av = np.abs(u), np.abs(v)
    bar_h = np.maximum(au - 1.0, av - CROSS_ARM)
    bar_v = np.maximum(av - 1.0, au - CROSS_ARM)
    return np.minimum(bar_h, bar_v)


class ShapesDataset(Dataset):
    """Procedural scenes of circles, squares, triangles and crosses on textured backgrounds.

    Classes (``SHAPES_CLASSES``): 0 background, 1 circle, 2 square, 3 triangle, 4 cross.
    Taught in notebook 06.

    Args:
        num_samples: length of the dataset.
        image_size: side of the square images, in pixels (>= 16).
        seed: sample ``i`` depends only on ``(seed, i)``.
        transform: joint transform called as ``transform(image, mask)`` on
            ``(tv_tensors.Image uint8 (3, H, W), tv_tensors.Mask int64 (H, W))``; it must return
            the normalised float image and int64 mask (e.g. ``train_transforms``). ``None``
            normalises with ImageNet statistics and nothing else.
        max_objects: most shapes in a scene (each scene has 1..max_objects).

    ``dataset[i]`` is ``(image float32 (3, H, W) normalised, mask int64 (H, W))``; ``render(i)``
    gives the raw uint8 image instead. Attributes: ``num_classes``, ``class_names``, ``palette``.
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
        max_objects: int = 4,
    ) -> None:
        for name, value, low in (
            ("num_samples", num_samples, 0),
            ("image_size", image_size, 16),
            ("seed", seed, 0),
            ("max_objects", max_objects, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable or None, got {type(transform).__name__}")
        self.num_samples = num_samples
        self.image_size = image_size
        self.seed = seed
        self.transform = transform
        self.max_objects = max_objects
        # Pixel-centre coordinates, shared by every sample (read-only, so workers may share it).
        coords = np.arange(image_size, dtype=np.float32) + 0.5
        self._x = coords[None, :]  # (1, W)
        self._y = coords[:, None]  # (H, 1)
        self._mean = np.asarray(IMAGENET_MEAN, dtype=np.float32)[:, None, None]
        self._std = np.asarray(IMAGENET_STD, dtype=np.float32)[:, None, None]

    def __len__(self) -> int:
        return self.num_samples

    def _check_index(self, index: int) -> int:
        if index < 0:
            index += self.num_samples
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} samples")
        return int(index)

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
        """Draw sample ``index`` before any transform.

        Returns:
            ``(image uint8 (3, H, W), mask int64 (H, W))``.
        """
        index = self._check_index(index)
        rng = np.random.default_rng([self.seed, index])
        s = self.image_size

        colours = rng.random((2, 3), dtype=np.float32)  # background's two colours
        t = self._background(rng)  # (H, W)
        image = colours[0][:, None, None] + (colours[1] - colours[0])[:, None, None] * t
        bg_mean = colours.mean(axis=0)
        mask = np.zeros((s, s), dtype=np.int64)

        for _ in range(int(rng.integers(1, self.max_objects + 1))):
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
            if y0 >= y1 or x0 >= x1:
                continue
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
        """Return ``(image float32 (3, H, W) normalised, mask int64 (H, W))``."""
        image, mask = self.render(index)
        if self.transform is not None:
            return self.transform(tv_tensors.Image(image), tv_tensors.Mask(mask))
        # Fast path equal to eval_transforms(): skips v2's dispatch overhead.
        pixels = image.numpy().astype(np.float32) * np.float32(1 / 255)
        return torch.from_numpy((pixels - self._mean) / self._std), mask
