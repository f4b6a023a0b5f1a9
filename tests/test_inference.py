"""Tests for deeplab_utils.inference: test-time augmentation, segment_image, export."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import nn

from deeplab_utils import DeepLabV3Plus
from deeplab_utils.data import IMAGENET_MEAN, IMAGENET_STD
from deeplab_utils.inference import (
    PAPER_SCALES,
    export_model,
    predict,
    segment_image,
)

NUM_CLASSES = 4


class TinySegmenter(nn.Module):
    """A 3x3 convolution to NUM_CLASSES logits: position-dependent, so flips matter."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, NUM_CLASSES, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


@pytest.fixture
def tiny() -> TinySegmenter:
    return TinySegmenter()


@pytest.mark.parametrize("scales", [(1.0,), (0.5, 1.0), PAPER_SCALES])
@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("size", [(16, 16), (13, 21)])
def test_predict_shape_and_probabilities(tiny, scales, flip, size):
    """Probabilities keep the input's (B, C, H, W) for any scales/flip, and sum to 1."""
    x = torch.randn(2, 3, *size)
    probs = predict(tiny, x, scales=scales, flip=flip)
    assert probs.shape == (2, NUM_CLASSES, *size)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(2, *size))


def test_predict_plain_equals_softmax(tiny):
    """scales=(1.0,), flip=False is just softmax(model(x))."""
    x = torch.randn(2, 3, 11, 9)
    torch.testing.assert_close(predict(tiny, x), tiny(x).softmax(dim=1))


def test_predict_flip_matches_manual_average(tiny):
    """Flip TTA averages the softmax of the plain run and of the mirrored-back flipped run."""
    x = torch.randn(1, 3, 10, 7)
    plain = F.softmax(tiny(x), dim=1)
    mirrored = F.softmax(torch.flip(tiny(torch.flip(x, dims=[3])), dims=[3]), dim=1)
    expected = (plain + mirrored) / 2
    got = predict(tiny, x, flip=True)
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, plain, atol=1e-3)  # the flip made a difference


def test_predict_multiscale_matches_manual_average(tiny):
    """Multi-scale TTA resizes input, resizes logits back, and averages the softmaxes."""
    x = torch.randn(1, 3, 12, 12)
    expected = 0
    for side in (6, 12, 18):  # scales 0.5, 1.0, 1.5 of a 12 px image
        small = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
        logits = F.interpolate(tiny(small), size=(12, 12), mode="bilinear", align_corners=False)
        expected = expected + logits.softmax(dim=1) / 3
    torch.testing.assert_close(predict(tiny, x, scales=(0.5, 1.0, 1.5)), expected)


def test_predict_restores_train_mode_and_needs_no_grad(tiny):
    """predict runs without autograd and leaves the model in the mode it found it in."""
    tiny.train()
    probs = predict(tiny, torch.randn(1, 3, 8, 8))
    assert tiny.training and not probs.requires_grad


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"images": torch.randn(3, 8, 8)}, ValueError, r"float \(B, 3, H, W\).*\(3, 8, 8\)"),
        ({"images": torch.zeros(1, 3, 8, 8, dtype=torch.uint8)}, ValueError, "segment_image"),
        ({"scales": (1.0, 0.0)}, ValueError, r"positive numbers, got \(1.0, 0.0\)"),
        ({"scales": (-0.5,)}, ValueError, r"got \(-0.5,\)"),
        ({"scales": ()}, ValueError, "positive numbers"),
    ],
)
def test_predict_rejects_bad_input(tiny, kwargs, error, match):
    """Bad images or scales raise an error naming the bad value."""
    args = {"images": torch.randn(1, 3, 8, 8), **kwargs}
    with pytest.raises(error, match=match):
        predict(tiny, args.pop("images"), **args)


def _expected_labels(model: nn.Module, rgb: np.ndarray) -> torch.Tensor:
    """Independent oracle: normalise with NumPy and take the argmax of the model's logits."""
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    x = ((rgb / 255.0 - mean) / std).astype(np.float32).transpose(2, 0, 1)
    with torch.no_grad():
        return model(torch.from_numpy(x)[None])[0].argmax(dim=0)


def test_segment_image_png_round_trip(tiny, tmp_path):
    """A PNG on disk, its PIL image and its array all give the labels of the normalised image."""
    rgb = np.random.default_rng(0).integers(0, 256, (15, 22, 3), dtype=np.uint8)
    path = tmp_path / "picture.png"
    Image.fromarray(rgb).save(path)
    expected = _expected_labels(tiny, rgb)
    for image in (path, str(path), Image.open(path), rgb):
        labels = segment_image(tiny, image)
        assert labels.shape == (15, 22) and labels.dtype == torch.int64
        assert torch.equal(labels, expected)


def test_segment_image_resizes_and_returns_original_size(tiny):
    """With size=, the model runs at the smaller size and labels come back at the picture's."""
    rgb = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    seen = []
    tiny.register_forward_hook(lambda m, inp, out: seen.append(tuple(inp[0].shape[-2:])))
    labels = segment_image(tiny, rgb, size=15, flip=True)
    assert seen == [(10, 15), (10, 15)]  # longer side 30 -> 15, once plain and once flipped
    assert labels.shape == (20, 30)


def test_segment_image_greyscale_and_rgba(tiny):
    """A greyscale (H, W) array is treated as grey RGB and an alpha channel is dropped."""
    grey = np.random.default_rng(2).integers(0, 256, (9, 8), dtype=np.uint8)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    rgba = np.concatenate([rgb, np.full((9, 8, 1), 7, dtype=np.uint8)], axis=2)
    expected = _expected_labels(tiny, rgb)
    assert torch.equal(segment_image(tiny, grey), expected)
    assert torch.equal(segment_image(tiny, rgba), expected)


def test_segment_image_errors(tiny, tmp_path):
    """Missing files, non-images, wrong dtypes and bad sizes raise clear errors."""
    with pytest.raises(FileNotFoundError, match="missing.png"):
        segment_image(tiny, tmp_path / "missing.png")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(UnidentifiedImageError, match="notes.png"):
        segment_image(tiny, text)
    with pytest.raises(ValueError, match="uint8 array .* got float64"):
        segment_image(tiny, np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match=r"\(4, 4, 2\)"):
        segment_image(tiny, np.zeros((4, 4, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match="got int64"):
        segment_image(tiny, [[0, 1]])


def test_export_tiny_model_save_and_load(tiny, tmp_path):
    """An exported, saved and reloaded tiny model gives eager outputs at two sizes."""
    program = export_model(tiny, torch.randn(2, 3, 32, 48))
    torch.export.save(program, tmp_path / "tiny.pt2")
    loaded = torch.export.load(tmp_path / "tiny.pt2").module()
    for size in ((32, 48), (80, 32)):
        x = torch.randn(2, 3, *size)
        torch.testing.assert_close(loaded(x), tiny(x))


def test_export_deeplabv3plus_parity_dynamic():
    """The exported DeepLabV3+ equals the eager one on the example and on other multiples of 16."""
    torch.manual_seed(0)
    model = DeepLabV3Plus(3).eval()
    program = export_model(model, torch.randn(1, 3, 48, 48))
    exported = program.module()
    for size in ((48, 48), (80, 112), (32, 160)):
        x = torch.randn(1, 3, *size)
        torch.testing.assert_close(exported(x), model(x), atol=1e-4, rtol=1e-4)


def test_export_errors(tiny, tmp_path):
    """Sizes the exported graph cannot take and missing files raise clear errors."""
    with pytest.raises(ValueError, match=r"at least 32; got \(16, 48\)"):
        export_model(tiny, torch.randn(1, 3, 16, 48))
    with pytest.raises(ValueError, match=r"multiples of 16, at least 32; got \(48, 40\)"):
        export_model(tiny, torch.randn(1, 3, 48, 40))
