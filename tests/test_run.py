"""Tests for deeplab_utils.run: building a run once and reusing what it built."""

from __future__ import annotations

import torch
from fake_datasets import write_fake_pets

from deeplab_utils.config import RunConfig
from deeplab_utils.data import OxfordPetSegmentation, build_dataset
from deeplab_utils.run import build_run, preview_batch


def test_preview_batch_reuses_the_runs_datasets(tmp_path, monkeypatch):
    """preview_batch builds no dataset (no file scan) however often it is called, and gives the
    validation images with their masks at the model's input size."""
    write_fake_pets(tmp_path)
    config = RunConfig(dataset="pets", data_dir=str(tmp_path), image_size=32, batch_size=2)
    run = build_run(config)
    resized = build_dataset("pets", split="val", root=tmp_path, image_size=32, pets_mode="binary")
    built = []
    original_init = OxfordPetSegmentation.__init__

    def counting_init(self, *args, **kwargs):
        built.append(kwargs.get("split"))
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(OxfordPetSegmentation, "__init__", counting_init)
    for _ in range(3):
        images, masks = preview_batch(run, 4)
    assert built == []
    n = min(4, len(resized))
    assert images.shape == (n, 3, 32, 32) and masks.shape == (n, 32, 32)
    for i in range(n):
        torch.testing.assert_close(images[i], resized[i][0], rtol=0, atol=0)
        torch.testing.assert_close(masks[i], resized[i][1], rtol=0, atol=0)
    assert run.val_set[0][1].shape != (32, 32)  # the run's own set still scores original sizes


def test_a_run_without_out_has_no_checkpoint():
    """Without an ``out`` folder a run has nowhere to save: fit then writes nothing."""
    assert build_run(RunConfig(train_samples=16, val_samples=2)).checkpoint is None
