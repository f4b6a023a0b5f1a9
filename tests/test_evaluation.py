"""Tests for deeplab_utils.evaluation and evaluate() at each picture's original resolution."""

import numpy as np
import pytest
import torch
from fake_datasets import write_fake_pets, write_fake_voc
from torch import nn
from torch.utils.data import DataLoader

from deeplab_utils import DeepLabV3Plus
from deeplab_utils.data import build_dataset, collate_original_size
from deeplab_utils.evaluation import pairs_at_mask_size, restore_original_size
from deeplab_utils.training import evaluate


def test_restore_crops_the_padding_and_resizes_back_hand_computed():
    """A 3x6 picture seen at 4x4 is its top 2x4 rows (longer side 6 -> 4), padding below.

    In the 2x4 content class 1 wins in columns 0-1 and class 2 in 2-3; the padding rows say
    class 3. Bilinear (align_corners=False) scale 1.5 samples output column j at input
    x = (j + 0.5) / 1.5 - 0.5 = -0.17, 0.5, 1.17, 1.83, 2.5, 3.17: columns 0-2 lie nearer
    class 1's side, 3-5 class 2's. Class 3 never shows: the padding is cut off.
    """
    logits = torch.zeros(1, 4, 4, 4)
    logits[0, 1, :2, :2] = 5.0
    logits[0, 2, :2, 2:] = 5.0
    logits[0, 3, 2:, :] = 9.0
    restored = restore_original_size(logits, (3, 6))
    assert restored.shape == (1, 4, 3, 6) and restored.dtype == torch.float32
    expected = torch.tensor([[1, 1, 1, 2, 2, 2]] * 3)
    assert torch.equal(restored[0].argmax(0), expected)


def test_restore_is_a_crop_when_the_picture_was_not_resized():
    """A picture whose longer side already is the input's is only cropped, bit for bit."""
    logits = torch.randn(2, 3, 8, 8, dtype=torch.float16)
    restored = restore_original_size(logits, (5, 8))
    assert torch.equal(restored, logits[:, :, :5, :].float())


def test_restore_rejects_inputs_the_picture_does_not_fit():
    """Non-square logits too small for the picture's resized size raise a ValueError."""
    with pytest.raises(ValueError, match=r"4x8 picture .* is 4x8, which does not fit"):
        restore_original_size(torch.zeros(1, 2, 2, 8), (4, 8))
    with pytest.raises(ValueError, match="logits must be"):
        restore_original_size(torch.zeros(2, 8, 8), (4, 8))


def test_pairs_pass_aligned_masks_through_and_count_the_others():
    """Aligned masks are yielded once, unchanged; a list must have one mask per image."""
    logits, masks = torch.randn(2, 3, 4, 4), torch.zeros(2, 4, 4, dtype=torch.int64)
    pairs = list(pairs_at_mask_size(logits, masks))
    assert len(pairs) == 1 and pairs[0][0] is logits and torch.equal(pairs[0][1], masks)
    sizes = [tuple(m.shape) for _, m in pairs_at_mask_size(logits, [masks[0][:3], masks[1]])]
    assert sizes == [(1, 3, 4), (1, 4, 4)]
    with pytest.raises(ValueError, match="got 1 masks for a batch of 2"):
        list(pairs_at_mask_size(logits, [masks[0]]))


class Constant(nn.Module):
    """Predicts one class everywhere, at the input's size."""

    def __init__(self, num_classes: int, label: int) -> None:
        super().__init__()
        self.num_classes, self.label = num_classes, label
        self.anchor = nn.Parameter(torch.zeros(()))  # so pick_device/eval() have a parameter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], self.num_classes, *x.shape[2:])
        out[:, self.label] = 1.0
        return out


def test_evaluate_scores_every_original_pixel_of_voc_val(tmp_path):
    """At original size, the confusion matrix counts exactly the non-void pixels of the original
    PNGs, and an all-background model's IoU is background / valid pixels (NumPy); the resized
    protocol counts different pixels."""
    voc = write_fake_voc(tmp_path)
    ds = build_dataset("voc", split="val", root=tmp_path, image_size=24, original_size_masks=True)
    loader = DataLoader(ds, batch_size=2, collate_fn=collate_original_size)
    result = evaluate(Constant(21, 0), loader, 21, device="cpu")
    masks = np.concatenate([voc.masks[i].ravel() for i in voc.splits["val"]])
    valid = masks != 255
    assert np.sum(result["confusion_matrix"]) == valid.sum()
    assert result["iou"][0] == pytest.approx(np.sum(masks[valid] == 0) / valid.sum())
    resized = build_dataset("voc", split="val", root=tmp_path, image_size=24)
    resized_result = evaluate(Constant(21, 0), DataLoader(resized, batch_size=2), 21, device="cpu")
    assert np.sum(resized_result["confusion_matrix"]) != valid.sum()


def test_evaluate_deeplab_on_pets_binary_at_original_size(tmp_path):
    """A real DeepLabV3+ evaluates Pets binary at original size: 2 classes, border ignored."""
    pets = write_fake_pets(tmp_path)
    ds = build_dataset(
        "pets",
        split="val",
        root=tmp_path,
        image_size=32,
        pets_mode="binary",
        original_size_masks=True,
    )
    loader = DataLoader(ds, batch_size=2, collate_fn=collate_original_size)
    result = evaluate(DeepLabV3Plus(ds.num_classes), loader, ds.num_classes, device="cpu")
    trimaps = np.concatenate([pets.trimaps[i].ravel() for i in ds.image_ids])
    assert len(result["iou"]) == 2
    assert np.sum(result["confusion_matrix"]) == np.sum(trimaps != 3)  # border band ignored
