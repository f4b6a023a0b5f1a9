"""Tests for deeplab_utils.evaluation and evaluate() at each picture's original resolution."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fake_datasets import write_fake_pets, write_fake_voc
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from deeplab_utils import DeepLabV3Plus
from deeplab_utils.config import RunConfig
from deeplab_utils.data import build_dataset, collate_original_size
from deeplab_utils.evaluation import (
    confusion_matrix,
    eval_loader,
    evaluate,
    pairs_at_mask_size,
    restore_original_size,
)


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


def test_pairs_pass_aligned_masks_through_and_count_the_others():
    """Aligned masks are yielded once, unchanged; a list must have one mask per image."""
    logits, masks = torch.randn(2, 3, 4, 4), torch.zeros(2, 4, 4, dtype=torch.int64)
    pairs = list(pairs_at_mask_size(logits, masks))
    assert len(pairs) == 1 and pairs[0][0] is logits and torch.equal(pairs[0][1], masks)
    sizes = [tuple(m.shape) for _, m in pairs_at_mask_size(logits, [masks[0][:3], masks[1]])]
    assert sizes == [(1, 3, 4), (1, 4, 4)]
    with pytest.raises(ValueError, match="shorter"):  # zip(strict=True): one mask per image
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


NUM_CLASSES = 3


def brightest_channel_data(n: int = 8) -> TensorDataset:
    """Images whose brightest channel is each pixel's class, with a few ignored pixels."""
    images = torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    masks = images.argmax(dim=1)
    masks[:, 0, 0] = 255
    return TensorDataset(images, masks)


class Oracle(nn.Module):
    """Predicts each pixel's brightest channel: right everywhere on brightest_channel_data."""

    def forward(self, x):
        return torch.nn.functional.one_hot(x.argmax(dim=1), NUM_CLASSES).permute(0, 3, 1, 2).float()


class Background(nn.Module):
    def forward(self, x):
        out = torch.zeros(x.shape[0], NUM_CLASSES, *x.shape[2:])
        out[:, 0] = 1.0
        return out


def test_evaluate_against_hand_computed_metrics():
    """A perfect model scores mIoU 1; an always-background model's IoU matches NumPy; the
    confusion matrix counts every labelled pixel once."""
    data = brightest_channel_data()
    loader = eval_loader(data, RunConfig(batch_size=3))
    perfect = evaluate(Oracle(), loader, NUM_CLASSES, device="cpu")
    assert perfect["miou"] == 1.0 and perfect["pixel_accuracy"] == 1.0
    result = evaluate(Background(), loader, NUM_CLASSES, device="cpu")
    m = data.tensors[1].numpy()
    valid = m != 255
    iou0 = np.sum(m[valid] == 0) / np.sum(valid)  # TP / (TP + FP), FN = 0
    assert result["iou"][0] == pytest.approx(iou0)
    assert result["iou"][1] == 0.0 and result["iou"][2] == 0.0
    assert result["miou"] == pytest.approx(iou0 / 3)
    matrix = confusion_matrix(Background(), loader, NUM_CLASSES)
    expected = np.bincount(m[valid] * NUM_CLASSES, minlength=9).reshape(3, 3)  # column 0 only
    np.testing.assert_array_equal(matrix.numpy(), expected)


def test_evaluate_reports_the_validation_loss_over_every_image():
    """With loss_fn, "loss" is the loss over the whole set (batches of 2, 2, 1 weighted by their
    sizes): equal to one cross-entropy over all 5 images, computed by hand without batches."""
    torch.manual_seed(0)
    model = nn.Conv2d(3, NUM_CLASSES, 1).eval()
    data = brightest_channel_data(5)
    ce = lambda logits, masks: F.cross_entropy(logits, masks, ignore_index=255)  # noqa: E731
    result = evaluate(model, eval_loader(data, RunConfig(batch_size=2)), device="cpu", loss_fn=ce)
    images, masks = data.tensors
    with torch.no_grad():
        logits = model(images)
    expected = F.cross_entropy(logits, masks, ignore_index=255, reduction="none")
    assert result["loss"] == pytest.approx(expected[masks != 255].mean().item(), rel=1e-3)
    assert "loss" not in evaluate(model, eval_loader(data, RunConfig(batch_size=2)), device="cpu")


def test_evaluate_runs_where_the_model_is(monkeypatch):
    """On a machine with a GPU, a CPU model is evaluated on the CPU (its parameters' device),
    not sent batches on CUDA; the result equals an explicit device="cpu"."""
    torch.manual_seed(0)
    model = nn.Conv2d(3, NUM_CLASSES, 1).eval()
    loader = eval_loader(brightest_channel_data(6), RunConfig(batch_size=3))
    expected = evaluate(model, loader, NUM_CLASSES, device="cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU machine
    assert evaluate(model, loader, NUM_CLASSES) == expected
