"""Tests for deeplab_utils.course: the run notebooks 07 and 08 share."""

import dataclasses

import pytest
import torch

from deeplab_utils import course, training
from deeplab_utils.runtime import SHORT_RUN

TINY = dataclasses.replace(
    SHORT_RUN, image_size=32, batch_size=2, steps=2, train_samples=4, val_samples=2, eval_every=1
)


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_prepare_run_is_reproducible(tmp_path):
    """Two runs prepared with the same seed start from identical weights and data."""
    a, b = course.prepare_run(TINY, tmp_path), course.prepare_run(TINY, tmp_path)
    weights_b = b.model.state_dict()
    for name, value in a.model.state_dict().items():
        assert torch.equal(value, weights_b[name]), name
    assert torch.equal(a.val_set[0][0], b.val_set[0][0])
    assert a.checkpoint == tmp_path / "runs" / "course-short" / "checkpoint.pt"


def test_load_or_train_trains_once_then_loads(tmp_path, monkeypatch):
    """The first call trains and saves; the second loads the same weights without training."""
    run, history = course.load_or_train(TINY, tmp_path, progress=False)
    assert history.step == [1, 2] and len(history.val) == 2
    trained = _weights(run.model)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run on disk must be loaded, not trained again")

    monkeypatch.setattr("deeplab_utils.run.fit", no_training)
    loaded, loaded_history = course.load_or_train(TINY, tmp_path, progress=False)
    assert not loaded.model.training
    # On a GPU machine training leaves the model on the GPU; both paths must return it on the CPU.
    assert {p.device.type for p in [*run.model.parameters(), *loaded.model.parameters()]} == {"cpu"}
    assert loaded_history.loss == history.loss
    for name, value in _weights(loaded.model).items():
        assert torch.equal(value, trained[name]), name


def test_stopped_run_is_resumed_to_the_same_weights(tmp_path, monkeypatch):
    """A run stopped after its first checkpoint and continued ends as an uninterrupted run."""
    uninterrupted, _ = course.load_or_train(TINY, tmp_path / "a", progress=False)
    real_save = training.save_checkpoint

    def save_then_disconnect(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt  # as if Colab disconnected right after step 1's checkpoint

    monkeypatch.setattr(training, "save_checkpoint", save_then_disconnect)
    with pytest.raises(KeyboardInterrupt):
        course.train(course.prepare_run(TINY, tmp_path / "b"), progress=False)
    monkeypatch.setattr(training, "save_checkpoint", real_save)
    resumed, history = course.load_or_train(TINY, tmp_path / "b", progress=False)
    assert history.step == [1, 2]
    expected = _weights(uninterrupted.model)
    for name, value in _weights(resumed.model).items():
        assert torch.equal(value, expected[name]), name
