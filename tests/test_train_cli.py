"""Tests for the main job, deeplab_utils.train: options, a tiny run, resume, bad arguments."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
import torch
from PIL import Image

from deeplab_utils.checkpoint import save_checkpoint
from deeplab_utils.config import MAIN_JOB_STEPS, RunConfig
from deeplab_utils.train import build_parser, main

RECIPE = RunConfig()

TINY = [
    "--steps", "3", "--image-size", "32", "--batch-size", "2", "--train-samples", "6",
    "--val-samples", "3", "--val-every", "2", "--no-progress",
]  # fmt: skip


def test_help_lists_every_option(capsys):
    """--help exits 0 and lists one option per RunConfig field, and the job's own."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for f in dataclasses.fields(RunConfig):
        assert f"--{f.name.replace('_', '-')}" in text, f.name
    for option in ("--resume", "--final-test", "--no-progress", "--no-amp", "--no-separable"):
        assert option in text, option
    assert f"default: {MAIN_JOB_STEPS[False]}" in text
    assert "(default: None)" not in text  # such options explain their default in words


def test_defaults_come_from_one_place():
    """The parser's defaults are RunConfig's field defaults, not a copy of them."""
    args = vars(build_parser().parse_args([]))
    for f in dataclasses.fields(RunConfig):
        assert args[f.name] == getattr(RECIPE, f.name), f.name
    assert args["lr"] is None and args["warmup_steps"] is None and args["steps"] is None


def _fit_call(argv, monkeypatch, tmp_path, small=True):
    """The run main() hands to fit(), without training (fit is replaced); ``small``: on 16
    training images."""
    seen = {}

    def fake_fit(run, **kwargs):
        seen["run"] = run
        raise KeyboardInterrupt  # stop before training; main reports it and returns 130

    monkeypatch.setattr("deeplab_utils.train.fit", fake_fit)
    sizes = ["--train-samples", str(RECIPE.batch_size), "--val-samples", "2"] if small else []
    assert main([*argv, *sizes, "--out", str(tmp_path)]) == 130
    return seen["run"]


def _config_of(argv, monkeypatch, tmp_path, small=True):
    """The config main() hands to fit(), without training."""
    return _fit_call(argv, monkeypatch, tmp_path, small).config


@pytest.mark.parametrize(
    ("fast", "steps"), [(False, MAIN_JOB_STEPS[False]), (True, MAIN_JOB_STEPS[True])]
)
def test_default_steps_follow_the_cost_of_a_step(fast, steps, monkeypatch, tmp_path):
    """Where mixed precision makes a step cheaper the main job takes more of them."""
    monkeypatch.setattr("deeplab_utils.config.amp_is_fast", lambda device: fast)
    assert _config_of(["--device", "cpu"], monkeypatch, tmp_path).steps == steps
    no_amp = _config_of(["--device", "cpu", "--no-amp"], monkeypatch, tmp_path)
    assert no_amp.steps == MAIN_JOB_STEPS[False]


@pytest.mark.parametrize(
    ("argv", "rates"),
    [
        ([], (1, 1, 2)),  # 64 px: the paper's (6, 12, 18) times 64/513 = (0.75, 1.50, 2.25)
        (["--image-size", "96"], (1, 2, 3)),  # times 96/513 = (1.12, 2.25, 3.37)
        (["--image-size", "256"], (3, 6, 9)),
        (["--image-size", "256", "--output-stride", "8"], (6, 12, 18)),
        (["--aspp-rates", "paper"], (6, 12, 18)),
        (["--aspp-rates", "paper", "--output-stride", "8"], (12, 24, 36)),
        (["--aspp-rates", "2,4"], (2, 4)),
    ],
)
def test_aspp_rates_of_the_model(argv, rates, monkeypatch, tmp_path):
    """--aspp-rates picks the dilations of the model's ASPP branches (read off the convs)."""
    branches = _fit_call(argv, monkeypatch, tmp_path).model.aspp.convs[1:-1]
    # The 3x3 conv (depthwise when separable) carries the dilation; 1x1 convs have 1.
    dilations = tuple(
        max(m.dilation[0] for m in branch.modules() if isinstance(m, torch.nn.Conv2d))
        for branch in branches
    )
    assert dilations == rates


@pytest.mark.parametrize(
    ("argv", "warmup"),
    [(["--steps", "70"], 14), (["--steps", "52"], 10), (["--warmup-steps", "0"], 0),
     (["--steps", "50", "--warmup-part", "0.1"], 5)],
)  # fmt: skip
def test_warmup_defaults_to_a_fifth_of_the_run(argv, warmup, monkeypatch, tmp_path):
    """Without --warmup-steps, warm-up is a fifth of the run's steps (rounded down), or the
    --warmup-part given."""
    assert _config_of(argv, monkeypatch, tmp_path).warmup_steps == warmup


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize(
    ("argv", "expected"), [([], None), (["--amp"], True), (["--no-amp"], False)]
)
def test_amp_defaults_to_on_where_it_is_fast(argv, expected, fast, monkeypatch, tmp_path):
    """Without --amp/--no-amp, mixed precision is on exactly where amp_is_fast says so."""
    monkeypatch.setattr("deeplab_utils.config.amp_is_fast", lambda device: fast)
    config = _config_of([*argv, "--device", "cpu"], monkeypatch, tmp_path)
    assert config.amp is (fast if expected is None else expected)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--device", "cpu"], True),  # the default on a CPU
        (["--device", "meta"], False),  # ... and on any other device
        (["--device", "cpu", "--no-channels-last"], False),
        (["--device", "meta", "--channels-last"], True),
    ],
)
def test_channels_last_defaults_to_on_for_a_cpu(argv, expected, monkeypatch, tmp_path):
    """--channels-last is on by default on a CPU only, and reaches the model and the config."""
    monkeypatch.setattr("deeplab_utils.config.amp_is_fast", lambda device: False)
    run = _fit_call(argv, monkeypatch, tmp_path)
    assert run.config.channels_last is expected
    weight = run.model.backbone.conv1.weight  # (64, 3, 7, 7): NHWC strides put channels last
    assert weight.is_contiguous(memory_format=torch.channels_last) is expected


@pytest.mark.parametrize("saved_amp", [False, True])
def test_resume_keeps_the_runs_precision(saved_amp, monkeypatch, tmp_path):
    """--resume without --amp/--no-amp continues in the precision the run was started with."""
    amp = "--amp" if saved_amp else "--no-amp"
    assert main([*TINY, "--steps", "1", amp, "--out", str(tmp_path)]) == 0
    monkeypatch.setattr("deeplab_utils.config.amp_is_fast", lambda device: not saved_amp)
    assert _config_of(["--steps", "2", "--resume"], monkeypatch, tmp_path, False).amp is saved_amp


@pytest.fixture(scope="module")
def one_step_run(tmp_path_factory):
    """A finished 2-step run to resume from (building ResNet-50 dominates the time)."""
    out = tmp_path_factory.mktemp("resume") / "shapes"
    assert main([*TINY, "--steps", "2", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize(
    ("change", "setting"),
    [
        (["--lr", "0.01"], "lr=0.008"),
        (["--batch-size", "3"], "batch_size=2"),
        (["--optimizer", "sgd"], "optimizer='adam'"),
        (["--image-size", "48"], "image_size=32"),
        (["--seed", "1"], "seed=0"),
        (["--no-separable"], "separable=True"),
        (["--aspp-rates", "paper"], "aspp_rates='scaled'"),
        (["--output-stride", "8"], "output_stride=16"),
        (["--train-samples", "8"], "train_samples=6"),
    ],
)
def test_resume_refuses_changed_settings(one_step_run, change, setting, capsys):
    """--resume with another recipe is a one-line error naming the setting and both values."""
    assert main(["--steps", "3", "--out", str(one_step_run), "--resume", *change]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("deeplab-train: error: cannot resume")
    name = setting.split("=")[0]
    assert f"trained with {setting}" in last and f"now {name}=" in last
    assert torch.load(one_step_run / "checkpoint.pt", weights_only=True)["step"] == 2


def test_resume_accepts_the_settings_spelled_out(one_step_run, monkeypatch):
    """--resume repeating every setting, and the lr and warm-up the run derived, is accepted:
    settings are compared as the run used them."""
    spelled = [*TINY, "--lr", "0.008", "--warmup-steps", "0", "--resume"]
    config = _config_of(spelled, monkeypatch, one_step_run, small=False)
    assert (config.lr, config.warmup_steps, config.steps) == (0.008, 0, 3)


def test_resume_keeps_the_runs_settings(one_step_run, monkeypatch):
    """--resume alone continues the run with its own settings: its steps, warm-up, size."""
    config = _config_of(["--resume"], monkeypatch, one_step_run, small=False)
    assert (config.steps, config.warmup_steps, config.image_size, config.batch_size) == (
        2,
        0,
        32,
        2,
    )


def test_resume_refuses_fewer_steps_than_done(one_step_run, capsys):
    """--steps below the steps already done is refused, saying how many were done."""
    assert main(["--steps", "1", "--out", str(one_step_run), "--resume"]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "trained with steps=2 (it has done 2 steps), now steps=1" in last


def test_resume_from_a_corrupt_checkpoint_is_a_one_line_error(tmp_path, capsys):
    """--resume on a file that is not a checkpoint exits 1 with one line, no traceback."""
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint at all" * 10)
    assert main(["--resume", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("deeplab-train: error:")
    assert "not a readable checkpoint" in err and "Traceback" not in err


def test_resume_from_a_checkpoint_without_settings_is_a_one_line_error(tmp_path, capsys):
    """--resume on a checkpoint saved without its run's config (by hand) exits 1 with one line
    (it was an AttributeError on None)."""
    model = torch.nn.Conv2d(3, 2, 1)
    save_checkpoint(tmp_path / "checkpoint.pt", model=model, step=1)
    assert main(["--resume", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "does not record its run's settings" in err and "Traceback" not in err


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One 3-step run shared by the tests below (building ResNet-50 dominates the time)."""
    out = tmp_path_factory.mktemp("run") / "shapes"
    code = main([*TINY, "--out", str(out)])
    return code, out


def test_tiny_run_writes_outputs(tiny_run):
    """A 3-step run exits 0 and writes a loadable checkpoint, a PNG grid and history.json."""
    code, out = tiny_run
    assert code == 0
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["step"] == 3
    assert state["model_config"]["num_classes"] == 5
    with Image.open(out / "predictions.png") as png:
        width, height = png.size
    # Three rows (the 3 validation images) of image | truth | prediction, big enough to read.
    assert width >= 500 and height >= 500
    history = json.loads((out / "history.json").read_text())
    assert history["step"] == [1, 2, 3]
    assert history["eval_step"] == [2, 3]
    assert len(history["val"][-1]["iou"]) == 5


def test_tiny_run_prints_iou_table(tmp_path, capsys):
    """The run prints a per-class IoU table ending with mIoU."""
    assert main([*TINY, "--steps", "1", "--out", str(tmp_path / "r")]) == 0
    text = capsys.readouterr().out
    assert re.search(r"^background\s+\d\.\d{3}$", text, re.MULTILINE)
    assert re.search(r"^mIoU\s+\d\.\d{3}$", text, re.MULTILINE)


def test_resume_continues_from_checkpoint(tiny_run):
    """--resume with --steps 5 continues the 3-step run to step 5, keeping its history."""
    code, out = tiny_run
    assert main(["--steps", "5", "--out", str(out), "--resume", "--no-progress"]) == 0
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["step"] == 5
    history = json.loads((out / "history.json").read_text())
    assert history["step"] == [1, 2, 3, 4, 5]


def test_backbone_weights_are_loaded(tmp_path):
    """--backbone-weights loads a torchvision ResNet-50 state dict into the backbone."""
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(1)
    reference = torchvision.models.resnet50(weights=None).state_dict()
    weights = tmp_path / "resnet50.pth"
    torch.save(reference, weights)
    out = tmp_path / "r"
    # A learning rate of ~0 keeps the weights where they were loaded.
    args = [*TINY, "--steps", "1", "--lr", "1e-12", "--out", str(out)]
    assert main([*args, "--backbone-weights", str(weights)]) == 0
    model_state = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    torch.testing.assert_close(
        model_state["backbone.layer3.0.conv1.weight"],
        reference["layer3.0.conv1.weight"],
        rtol=0,
        atol=1e-9,
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--steps", "-3"], "steps must be an int >= 1, got -3"),
        (["--batch-size", "0"], "batch_size must be an int >= 1, got 0"),
        (["--dataset", "mnist"], "invalid choice: 'mnist'"),
        (["--output-stride", "12"], "invalid choice: 12"),
        (["--lr", "-1"], "lr must be a number > 0, got -1.0"),
        (["--backbone-weights", "/nonexistent/r50.pth"], "no file is there"),
        (["--resume", "--out", "/nonexistent/run"], "--resume: no checkpoint at"),
        (["--device", "tpu"], "device must be one of"),
        (["--steps", "ten"], "invalid int value: 'ten'"),
        (["--steps", "5", "--warmup-steps", "5"], "warmup_steps must be below steps (5), got 5"),
        (["--warmup-steps", "-1"], "warmup_steps must be an int >= 0, got -1"),
        (["--aspp-rates", "0,2"], "aspp_rates must be 'scaled', 'paper' or positive ints"),
        (["--aspp-rates", "wide"], "got 'wide'"),
        (["--final-test"], "--final-test: only pets has a labelled test split"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv, message, capsys):
    """Bad arguments exit with code 2 and a one-line message, no traceback."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("deeplab-train: error:")
    assert message in last
    assert "Traceback" not in err


def test_wrong_backbone_weights_exit_2(tmp_path, capsys):
    """A weights file that is not a ResNet-50 state dict is a one-line error with exit code 2."""
    bad = tmp_path / "bad.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, bad)
    with pytest.raises(SystemExit) as exit_info:
        main([*TINY, "--backbone-weights", str(bad), "--out", str(tmp_path / "r")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"backbone weights {bad}" in err
    assert "Traceback" not in err


def test_module_entry_point_runs(tmp_path):
    """`python -m deeplab_utils.train --help` works as a real subprocess (exit 0)."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "deeplab_utils.train", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0
    assert "--backbone-weights" in result.stdout


@pytest.mark.parametrize(
    ("dataset", "name", "layout"),
    [("pets", "Oxford-IIIT Pet", "oxford-iiit-pet/annotations/trimaps/"),
     ("voc", "PASCAL VOC 2012", "VOCdevkit/VOC2012/SegmentationClass/")],
)  # fmt: skip
def test_missing_dataset_files_show_the_expected_layout(dataset, name, layout, tmp_path, capsys):
    """An empty or missing --data-dir exits 2 and prints where each file was expected."""
    data = ["--dataset", dataset, "--data-dir", str(tmp_path / "none"), "--out", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_info:
        main([*TINY, *data])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"deeplab-train: error: {name} not found" in err
    assert layout in err and "Traceback" not in err


def test_history_survives_a_crash_while_it_is_written(tiny_run, monkeypatch):
    """A run killed while writing history.json leaves the previous history.json whole."""
    code, out = tiny_run
    before = (out / "history.json").read_text(encoding="utf-8")

    def dump_half_then_fail(obj, file, **kwargs):
        file.write('{"step": [1')
        raise OSError("disk full")

    monkeypatch.setattr("deeplab_utils.train.json.dump", dump_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        main(["--steps", "6", "--out", str(out), "--resume", "--no-progress"])
    assert (out / "history.json").read_text(encoding="utf-8") == before
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


def test_iou_table_without_labelled_pixels_says_why(capsys):
    """A validation with no labelled pixel (every IoU, mIoU and accuracy None, NaN in the
    metrics) prints "n/a" with the reason instead of failing on a format."""
    from deeplab_utils.train import _iou_table

    metrics = {"iou": [None, None], "miou": None, "pixel_accuracy": None}
    _iou_table("validation:", metrics, ["background", "pet"])
    text = capsys.readouterr().out
    assert re.search(r"^mIoU\s+n/a \(no labelled pixels\)$", text, re.MULTILINE)
    assert re.search(r"^pixel acc\.\s+n/a", text, re.MULTILINE)
    assert re.search(r"^pet\s+n/a$", text, re.MULTILINE)
