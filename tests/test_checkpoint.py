"""Tests for deeplab_utils.checkpoint: round trip, atomic writes, clear errors, load_model."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from deeplab_utils.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_model,
    read_checkpoint,
    save_checkpoint,
)
from deeplab_utils.config import RunConfig
from deeplab_utils.model import ModelConfig, build_model
from deeplab_utils.training import History, build_optimizer


@dataclass(frozen=True)
class TinyConfig:
    num_classes: int
    output_stride: int = 16


class TinyNet(nn.Module):
    """A model carrying a `.config`, like the course's DeepLabV3Plus."""

    def __init__(self, num_classes: int = 3, output_stride: int = 16) -> None:
        super().__init__()
        self.config = TinyConfig(num_classes, output_stride)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Conv2d(4, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.bn(self.conv(x))))


def trained_objects(steps: int = 2):
    """A model, Adam and a CPU GradScaler after a few real steps, and their RunConfig."""
    torch.manual_seed(0)
    model = TinyNet()
    config = RunConfig(steps=10, lr=0.01)
    opt = build_optimizer(model, config)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    for _ in range(steps):
        loss = model(torch.randn(2, 3, 8, 8)).square().mean()
        opt.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    return model, opt, scaler, config


def save(path, model, **states):
    save_checkpoint(path, model=model, **{"step": 0, **states})
    return path


def assert_state_equal(a, b) -> None:
    """Recursively compare two state dicts (tensors exactly)."""
    if isinstance(a, torch.Tensor):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_state_equal(a[key], b[key])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_state_equal(x, y)
    else:
        assert a == b


def test_round_trip_restores_every_state(tmp_path):
    """Model, optimiser, scaler, step, configs and history come back equal."""
    model, opt, scaler, config = trained_objects()
    history = History(step=[1, 2], loss=[0.5, 0.4])
    path = save(tmp_path / "run" / "ckpt.pt", model, optimizer=opt, scaler=scaler, step=2,
                config=config, history=history)  # fmt: skip
    # The file is readable by the safe loader alone (the oracle for "no pickled classes").
    raw = torch.load(path, weights_only=True)
    assert raw["model_config"] == {"num_classes": 3, "output_stride": 16}

    torch.manual_seed(1)
    model2 = TinyNet()
    opt2 = build_optimizer(model2, config)
    scaler2 = torch.amp.GradScaler("cpu")
    state = load_checkpoint(path, model=model2, optimizer=opt2, scaler=scaler2)
    assert_state_equal(model2.state_dict(), model.state_dict())
    assert_state_equal(opt2.state_dict(), opt.state_dict())
    assert scaler2.state_dict() == scaler.state_dict()
    assert state["step"] == 2
    assert RunConfig(**state["config"]) == config
    assert History.from_dict(state["history"]) == history


def test_rng_states_are_restored(tmp_path):
    """With restore_rng=True, torch's generator repeats the draws made after the save (all the
    course's data, augmentation and dropout draw from it)."""
    model = TinyNet()
    torch.manual_seed(5)
    path = save(tmp_path / "c.pt", model)
    expected = torch.rand(3)
    torch.manual_seed(0)
    load_checkpoint(path, model=model)
    assert not torch.equal(torch.rand(3), expected)  # without restore_rng: left alone
    load_checkpoint(path, model=model, restore_rng=True)
    assert torch.equal(torch.rand(3), expected)


def test_crash_mid_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    """A save killed half-way leaves the previous checkpoint loadable and no temp file behind."""
    model = TinyNet()
    path = tmp_path / "ckpt.pt"
    save(path, model, step=1)

    real_save = torch.save

    def half_save(obj, file, *args, **kwargs):
        import io

        buffer = io.BytesIO()
        real_save(obj, buffer)
        file.write(buffer.getvalue()[: buffer.tell() // 2])
        raise OSError("simulated crash: disk unplugged")

    monkeypatch.setattr(torch, "save", half_save)
    with pytest.raises(OSError, match="simulated crash"):
        save(path, model, step=2)
    monkeypatch.undo()

    assert load_checkpoint(path, model=TinyNet())["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


def test_wrong_class_count_names_both_values(tmp_path):
    """Loading a 5-class checkpoint into a 3-class model says so, naming 5 and 3."""
    path = save(tmp_path / "c.pt", TinyNet(num_classes=5))
    with pytest.raises(
        CheckpointError,
        match="checkpoint was trained with num_classes=5 but the model has num_classes=3",
    ):
        load_checkpoint(path, model=TinyNet(num_classes=3))


def test_shape_mismatch_without_config_names_the_tensor(tmp_path):
    """For a model without .config, a shape mismatch names the tensor and both shapes."""
    path = save(tmp_path / "c.pt", nn.Conv2d(3, 5, 1))
    with pytest.raises(CheckpointError, match=r"weight.*\[5, 3, 1, 1\].*\[2, 3, 1, 1\]"):
        load_checkpoint(path, model=nn.Conv2d(3, 2, 1))


def test_other_output_stride_is_allowed(tmp_path):
    """A checkpoint trained at output stride 16 loads into an OS-8 model (paper, Table 3)."""
    model = TinyNet(output_stride=16)
    path = save(tmp_path / "c.pt", model)
    other = TinyNet(output_stride=8)
    load_checkpoint(path, model=other)
    assert_state_equal(other.state_dict(), model.state_dict())


def test_missing_and_corrupt_files_are_clear_errors(tmp_path):
    """A missing file, random bytes and a bare state dict each raise a clear error."""
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nope.pt", model=TinyNet())
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(junk, model=TinyNet())
    bare = tmp_path / "bare.pt"
    torch.save(TinyNet().state_dict(), bare)
    with pytest.raises(CheckpointError, match="not a checkpoint of this course"):
        load_checkpoint(bare, model=TinyNet())


def test_load_model_rebuilds_deeplab(tmp_path):
    """load_model rebuilds the saved DeepLabV3Plus from its config with equal weights, in eval."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(num_classes=2, output_stride=16))
    path = save(tmp_path / "c.pt", model)
    loaded = load_model(path)
    assert not loaded.training
    assert loaded.config == model.config
    assert_state_equal(loaded.state_dict(), model.state_dict())


def test_aspp_rates_survive_a_checkpoint_and_must_match(tmp_path):
    """A model with its own ASPP rates reloads with them; a paper-rate model refuses it."""
    torch.manual_seed(0)
    config = ModelConfig(num_classes=2, separable=True, aspp_rates=(1, 2, 3))
    model = build_model(config).eval()
    path = save(tmp_path / "c.pt", model)
    loaded = load_model(path)
    assert loaded.config == config
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    paper = build_model(ModelConfig(num_classes=2, separable=True))
    with pytest.raises(CheckpointError, match=r"aspp_rates=\(1, 2, 3\) but the model has"):
        load_checkpoint(path, model=paper)


def test_load_model_without_config_is_a_clear_error(tmp_path):
    """load_model on a checkpoint of a config-less model says to build the model yourself."""
    path = save(tmp_path / "c.pt", nn.Conv2d(3, 2, 1))
    with pytest.raises(CheckpointError, match="holds no model config"):
        load_model(path)


def test_paper_rates_spelled_out_load_a_checkpoint_of_the_papers(tmp_path):
    """aspp_rates=None (the paper's) and (6, 12, 18) at output stride 16 are the same model."""
    paper = build_model(ModelConfig(num_classes=2))
    path = save(tmp_path / "c.pt", paper)
    spelled = ModelConfig(num_classes=2, aspp_rates=(6, 12, 18))
    load_checkpoint(path, model=build_model(spelled))
    other = ModelConfig(num_classes=2, aspp_rates=(6, 12, 24))
    with pytest.raises(CheckpointError, match="aspp_rates=None but the model has"):
        load_checkpoint(path, model=build_model(other))
    eight = build_model(ModelConfig(num_classes=2, output_stride=8))  # the paper's rates at OS 8
    load_checkpoint(path, model=eight)


def test_a_scaler_without_saved_state_starts_fresh(tmp_path):
    """Resuming with mixed precision from a checkpoint saved without a GradScaler (a CPU run
    continued on CUDA, or --resume --amp) loads everything else and leaves the scaler fresh."""
    model, opt, _, config = trained_objects(steps=1)
    disabled = torch.amp.GradScaler("cpu", enabled=False)  # what fit makes on a CPU
    path = save(tmp_path / "c.pt", model, optimizer=opt, scaler=disabled, step=1)
    fresh = torch.amp.GradScaler("cpu", init_scale=512.0)
    new_model = TinyNet()
    new_opt = build_optimizer(new_model, config)
    load_checkpoint(path, model=new_model, optimizer=new_opt, scaler=fresh)
    assert fresh.get_scale() == 512.0  # its own initial scale: it recalibrates as it goes
    assert_state_equal(new_opt.state_dict(), opt.state_dict())
    assert_state_equal(new_model.state_dict(), model.state_dict())


def test_saved_scaler_state_is_ignored_without_a_scaler(tmp_path):
    """A checkpoint with GradScaler state resumes without one (e.g. --no-amp) just as well."""
    model, opt, scaler, config = trained_objects(steps=1)
    path = save(tmp_path / "c.pt", model, optimizer=opt, scaler=scaler, step=1)
    new_model = TinyNet()
    new_opt = build_optimizer(new_model, config)
    load_checkpoint(path, model=new_model, optimizer=new_opt)
    assert_state_equal(new_opt.state_dict(), opt.state_dict())


def test_read_checkpoint_errors_like_load_checkpoint(tmp_path):
    """A missing file and random bytes raise the same clear errors as load_checkpoint."""
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        read_checkpoint(tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        read_checkpoint(junk)


def test_resuming_from_a_weights_only_checkpoint_is_refused(tmp_path):
    """Asking for optimiser state that the checkpoint lacks raises instead of resuming wrongly."""
    model, opt, *_ = trained_objects(steps=1)
    path = save(tmp_path / "c.pt", model, step=1)
    with pytest.raises(CheckpointError, match="holds weights only"):
        load_checkpoint(path, model=model, optimizer=opt)
