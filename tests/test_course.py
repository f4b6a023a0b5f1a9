"""Tests for deeplab_utils.course: the run notebooks 07 and 08 share."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from deeplab_utils import (
    ASPP,
    Decoder,
    DeepLabV3Plus,
    ResNet50Backbone,
    SeparableConv2d,
    course,
    training,
)
from deeplab_utils.config import RunConfig, settle
from deeplab_utils.run import build_run


def tiny(workdir) -> RunConfig:
    config = course.course_config(workdir)
    return dataclasses.replace(config, image_size=32, batch_size=2, steps=2, train_samples=4,
                               val_samples=2, val_every=1)  # fmt: skip


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_course_config_is_the_main_jobs_recipe_smaller(tmp_path):
    """The notebooks' short run differs from the main job's defaults only in its sizes, where
    it keeps its files, its full-size images throughout and its own rate (chosen for 350 steps:
    benchmarks/README.md); the full run is bigger still, with the recipe it always had."""
    short, full = course.course_config(tmp_path), course.course_config(tmp_path, full=True)
    differ = {f.name for f in dataclasses.fields(RunConfig)
              if getattr(short, f.name) != getattr(RunConfig(), f.name)}  # fmt: skip
    # val_every: how often it reports (7 points for notebook 07's curves), not the recipe
    sizes = {"steps", "train_samples", "val_samples", "data_dir", "out", "start_scale"}
    assert differ == sizes | {"val_every", "lr"}
    assert (short.lr, short.warmup_part) == (1e-2, None)  # None: the main job's, a fifth
    assert (full.lr, full.warmup_part) == (5e-3, 0.1)  # the full run's recipe, kept
    assert short.out == str(tmp_path / "runs" / "course-short")
    assert full.image_size > short.image_size and full.steps > short.steps
    pets = course.course_config(tmp_path, full=True, dataset="pets")
    assert (pets.dataset, pets.backbone_weights, pets.optimizer) == ("pets", "imagenet", "sgd")
    assert settle(pets, torch.device("cpu")).warmup_steps == pets.steps // 10  # SGD's tenth
    assert pets.out == str(tmp_path / "runs" / "course-pets-full")
    with pytest.raises(ValueError, match="dataset must be 'shapes', 'pets' or 'voc' and full"):
        course.course_config(tmp_path, dataset="x")
    with pytest.raises(ValueError, match="got 'shapes' and 1"):
        course.course_config(tmp_path, full=1)


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
        course.load_or_train(tiny(tmp_path / "b"), progress=False)
    monkeypatch.setattr(training, "save_checkpoint", real_save)
    resumed, history = course.load_or_train(tiny(tmp_path / "b"), progress=False)
    assert history.step == [1, 2]
    expected = _weights(uninterrupted.model)
    for name, value in _weights(resumed.model).items():
        assert torch.equal(value, expected[name]), name
    other = dataclasses.replace(tiny(tmp_path / "b"), seed=1)
    assert course.load_or_train(other, progress=False)[1].step == [1, 2]  # trained anew


class _LearnerNet(torch.nn.Module):
    """Notebook 04's MyDeepLabV3Plus as a learner writes it: regular 3x3 convolutions."""

    def __init__(self, num_classes, *, output_stride=16, rates=None):
        super().__init__()
        self.backbone = ResNet50Backbone(output_stride=output_stride)
        self.aspp = ASPP(2048, 256, rates or (6, 12, 18), dropout=0.1)
        self.decoder = Decoder(num_classes)

    def forward(self, x):
        features = self.backbone(x)
        logits = self.decoder(self.aspp(features["out"]), features["low_level"])
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def _rates(model):
    return [m.dilation[0] for m in model.aspp.modules() if getattr(m, "groups", 1) > 1]


def test_your_network_is_the_runs_network_with_its_initial_weights(tmp_path):
    """Its 3x3 convolutions in ASPP and decoder become separable ones, at the run's rates
    (scaled down for 128-pixel images, not the paper's 6, 12, 18), and with the package
    model's initial weights it computes what that model does."""
    run = build_run(dataclasses.replace(tiny(tmp_path), image_size=128))
    mine = course.your_network(run, _LearnerNet, SeparableConv2d)
    assert mine.state_dict().keys() == run.model.state_dict().keys()
    assert _rates(mine) == _rates(run.model) == [1, 3, 4]  # 6, 12, 18 times 128 / 513
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(mine.eval()(x), run.model.eval()(x))
    assert course.your_network(run, DeepLabV3Plus, SeparableConv2d) is run.model
    assert mine.config == run.model.config  # a checkpoint of it rebuilds the network


class _LowFirstDecoder(Decoder):
    """The concatenation the other way round (VainF's order), which the checks accept."""

    def forward(self, aspp_out, low_level):
        low_level = self.reduce(low_level)
        x = F.interpolate(aspp_out, size=low_level.shape[-2:], mode="bilinear", align_corners=False)
        return self.classifier(self.refine(torch.cat([low_level, x], dim=1)))


class _OtherLearnerNet(_LearnerNet):
    """Two valid decisions: the low-level features first, and a bias before a BN in ASPP."""

    def __init__(self, num_classes, *, output_stride=16, rates=None):
        super().__init__(num_classes, output_stride=output_stride, rates=rates)
        self.decoder = _LowFirstDecoder(num_classes)
        self.aspp.convs[0][0] = torch.nn.Conv2d(2048, 256, 1, bias=True)


def test_your_network_takes_every_valid_decision_of_the_checks(tmp_path):
    """Either order of the decoder's concatenation computes the package's network once the
    weights are read in that order; a bias before a BN is dropped, so the state dict, and so a
    checkpoint, is the package's."""
    run = build_run(dataclasses.replace(tiny(tmp_path), image_size=64))
    mine = course.your_network(run, _OtherLearnerNet, SeparableConv2d)
    assert _same_weights(mine, run.model)  # in the package's order: a checkpoint loads in 08
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(mine.eval()(x), run.model.eval()(x))
        package = DeepLabV3Plus(5, separable=True, aspp_rates=(1, 1, 2))
        package.load_state_dict(mine.state_dict())  # what notebook 08 does with 07's checkpoint
        torch.testing.assert_close(package.eval()(x), mine(x))
        other = build_run(dataclasses.replace(run.config, seed=1))  # other initial weights
        again = course.your_network(other, _OtherLearnerNet, SeparableConv2d).eval()
        again.load_state_dict(run.model.state_dict())  # and back: a resumed run
        torch.testing.assert_close(again(x), run.model(x))


def test_train_with_refuses_what_it_cannot_honour(tmp_path):
    """A loop that returns something other than one float per step, and gradient clipping
    (which your loop does not do), stop with a message instead of a silent or raw failure."""
    run = build_run(dataclasses.replace(tiny(tmp_path), steps=2, val_every=2, out=None))
    for returned, message in [([], "returned a list of 0"), (1.5, "returned float"),
                              ([torch.tensor(1.0)] * 2, "Python floats")]:  # fmt: skip
        with pytest.raises(ValueError, match=message):
            course.train_with(run, lambda *args, r=returned: r, training.poly_lr_lambda)
    clipped = build_run(dataclasses.replace(run.config, grad_clip=1.0))
    with pytest.raises(ValueError, match="set grad_clip=None"):
        course.train_with(clipped, training.train_steps, training.poly_lr_lambda)


def _run_with(tmp_path, name, loop):
    """A 4-step run of ``loop``, checkpointed in ``tmp_path / name`` (``None``: not saved)."""
    config = dataclasses.replace(tiny(tmp_path), steps=4, val_every=2, amp=False)
    run = build_run(dataclasses.replace(config, out=name and str(tmp_path / name)))
    return run, course.train_with(run, loop, training.poly_lr_lambda, progress=False)


def _same_weights(a, b):
    b = b.state_dict()
    return all(torch.equal(value, b[key]) for key, value in a.state_dict().items())


def test_train_with_your_loop_is_fit_step_for_step(tmp_path):
    """The same batches, rates and weights as fit, and a validation every val_every steps."""
    run, history = _run_with(tmp_path, None, training.train_steps)
    reference = build_run(run.config)
    expected = training.fit(reference, progress=False)
    assert history.step == expected.step == [1, 2, 3, 4] and history.eval_step == [2, 4]
    assert history.loss == expected.loss and history.lr == expected.lr
    assert _same_weights(run.model, reference.model)


def test_train_with_a_warm_up_longer_than_val_every_is_fits_run(tmp_path):
    """A warm-up longer than one call's steps (notebook 07's: 70 of 350, validating every 50)
    is the run's schedule, not a call's: it trains as fit does."""
    config = dataclasses.replace(tiny(tmp_path), steps=6, warmup_steps=4, val_every=2, amp=False,
                                 out=None)  # fmt: skip
    run = build_run(config)
    history = course.train_with(run, training.train_steps, training.poly_lr_lambda, progress=False)
    expected = training.fit(build_run(config), progress=False)
    assert history.eval_step == [2, 4, 6] and history.lr == expected.lr
    assert history.loss == expected.loss


def test_train_with_mixed_precision_is_fits_and_moves_the_weights_every_step(tmp_path):
    """With bf16 autocast (amp=True), four steps in one call of the loop give fit's losses; an
    autocast around the whole call would not (from its second step, every forward would reuse
    the first step's bf16 copies of the weights)."""
    config = dataclasses.replace(tiny(tmp_path), steps=4, val_every=4, amp=True, out=None)
    run = build_run(config)
    history = course.train_with(run, training.train_steps, training.poly_lr_lambda, progress=False)
    expected = training.fit(build_run(config), progress=False)
    torch.testing.assert_close(history.loss, expected.loss, rtol=2e-3, atol=0)
    assert len(set(history.loss)) == 4


def _second_call(action):
    """A loop that does ``action`` (raise, or turn the losses into NaN) on its second call."""
    calls = []

    def loop(model, loader, loss_fn, optimizer, scheduler, steps):
        calls.append(steps)
        if len(calls) == 2 and action == "disconnect":
            raise KeyboardInterrupt("connection lost")
        losses = training.train_steps(model, loader, loss_fn, optimizer, scheduler, steps)
        return [float("nan")] * steps if len(calls) == 2 else losses

    return loop


def test_train_with_continues_a_stopped_run_and_refuses_a_nan(tmp_path):
    """Stopped after step 2 (a disconnect), it continues from step 2's checkpoint to the very
    weights of an unbroken run; a NaN loss stops it and keeps step 2's checkpoint."""
    whole, _ = _run_with(tmp_path, None, training.train_steps)
    with pytest.raises(KeyboardInterrupt):
        _run_with(tmp_path, "broken", _second_call("disconnect"))
    resumed, history = _run_with(tmp_path, "broken", _second_call("none"))
    assert history.step == [1, 2, 3, 4] and _same_weights(resumed.model, whole.model)
    with pytest.raises(
        training.NonFiniteLossError, match="at step 3 .*checkpoint of step 2 was kept"
    ):
        _run_with(tmp_path, "nan", _second_call("nan"))
    assert torch.load(tmp_path / "nan" / "checkpoint.pt", weights_only=True)["step"] == 2
