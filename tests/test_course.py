"""Tests for deeplab_utils.course: the run notebooks 07 and 08 share."""

import dataclasses

import pytest
import torch

from deeplab_utils import course, training
from deeplab_utils.config import RunConfig
from deeplab_utils.run import build_run


def tiny(workdir) -> RunConfig:
    config = course.course_config(workdir)
    return dataclasses.replace(config, image_size=32, batch_size=2, steps=2, train_samples=4,
                               val_samples=2, val_every=1)  # fmt: skip


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_course_config_is_the_main_jobs_recipe_smaller(tmp_path):
    """The notebooks' short run differs from the main job's defaults only in its sizes, where
    it keeps its files and its full-size images throughout; the full run is bigger still."""
    short, full = course.course_config(tmp_path), course.course_config(tmp_path, full=True)
    differ = {f.name for f in dataclasses.fields(RunConfig)
              if getattr(short, f.name) != getattr(RunConfig(), f.name)}  # fmt: skip
    # val_every: how often it reports (8 points for notebook 07's curves), not the recipe
    sizes = {"steps", "train_samples", "val_samples", "data_dir", "out", "start_scale"}
    assert differ == sizes | {"val_every"}
    assert short.out == str(tmp_path / "runs" / "course-short")
    assert full.image_size > short.image_size and full.steps > short.steps
    pets = course.course_config(tmp_path, full=True, dataset="pets")
    assert (pets.dataset, pets.backbone_weights, pets.optimizer) == ("pets", "imagenet", "sgd")
    assert pets.out == str(tmp_path / "runs" / "course-pets-full")
    with pytest.raises(ValueError, match="dataset must be 'shapes', 'pets' or 'voc', got 'x'"):
        course.course_config(tmp_path, dataset="x")


def test_a_run_is_reproducible(tmp_path):
    """Two runs built from the same config start from identical weights and data."""
    a, b = build_run(tiny(tmp_path)), build_run(tiny(tmp_path))
    weights_b = b.model.state_dict()
    for name, value in a.model.state_dict().items():
        assert torch.equal(value, weights_b[name]), name
    assert torch.equal(a.val_set[0][0], b.val_set[0][0])
    assert a.checkpoint == tmp_path / "runs" / "course-short" / "checkpoint.pt"


def test_load_or_train_trains_once_then_loads(tmp_path, monkeypatch):
    """The first call trains and saves; the second loads the same weights without training."""
    run, history = course.load_or_train(tiny(tmp_path), progress=False)
    assert history.step == [1, 2] and len(history.val) == 2
    trained = _weights(run.model)

    def no_step(*args):
        raise AssertionError("a finished run on disk must be loaded, not trained again")

    monkeypatch.setattr(training, "poly_lr_lambda", no_step)  # what every step calls first
    loaded, loaded_history = course.load_or_train(tiny(tmp_path), progress=False)
    assert not loaded.model.training
    # On a GPU machine training leaves the model on the GPU; both paths must return it on the CPU.
    assert {p.device.type for p in [*run.model.parameters(), *loaded.model.parameters()]} == {"cpu"}
    assert loaded_history.loss == history.loss
    for name, value in _weights(loaded.model).items():
        assert torch.equal(value, trained[name]), name


def test_stopped_run_is_resumed_to_the_same_weights(tmp_path, monkeypatch):
    """A run stopped after its first checkpoint and continued ends as an uninterrupted run;
    a run of another configuration in the same folder is replaced, not continued."""
    uninterrupted, _ = course.load_or_train(tiny(tmp_path / "a"), progress=False)
    real_save = training.save_checkpoint

    def save_then_disconnect(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt  # as if Colab disconnected right after step 1's checkpoint

    monkeypatch.setattr(training, "save_checkpoint", save_then_disconnect)
    with pytest.raises(KeyboardInterrupt):
        course.train(build_run(tiny(tmp_path / "b")), progress=False)
    monkeypatch.setattr(training, "save_checkpoint", real_save)
    resumed, history = course.load_or_train(tiny(tmp_path / "b"), progress=False)
    assert history.step == [1, 2]
    expected = _weights(uninterrupted.model)
    for name, value in _weights(resumed.model).items():
        assert torch.equal(value, expected[name]), name
    other = dataclasses.replace(tiny(tmp_path / "b"), seed=1)
    assert course.train(build_run(other), progress=False).step == [1, 2]  # trained anew
