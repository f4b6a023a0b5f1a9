"""Tests for deeplab_utils.config: RunConfig's validation, settle and resumed."""

import dataclasses

import pytest
import torch

from deeplab_utils.config import MAIN_JOB_STEPS, ResumeError, RunConfig, resumed, settle
from deeplab_utils.course import SHORT_RUN

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dataset": "mnist"}, r"dataset must be one of \('shapes', 'pets', 'voc'\), got 'mnist'"),
        ({"output_stride": 12}, r"output_stride must be one of \(16, 8\), got 12"),
        ({"steps": 0}, "steps must be an int >= 1, got 0"),
        ({"batch_size": 2.0}, "batch_size must be an int >= 1, got 2.0"),
        ({"seed": True}, "seed must be an int >= 0, got True"),
        ({"amp": "yes"}, "amp must be True or False, got 'yes'"),
        ({"lr": 0.0}, "lr must be a number > 0, got 0.0"),
        ({"lr": float("nan")}, "lr must be a number > 0, got nan"),
        ({"grad_clip": -1.0}, "grad_clip must be a number > 0, got -1.0"),
        ({"poly_power": -1}, "poly_power must be a number >= 0, got -1"),
        ({"steps": 5, "warmup_steps": 5}, r"warmup_steps must be below steps \(5\), got 5"),
        ({"val_every": -1}, "val_every must be an int >= 0, got -1"),
        ({"warmup_part": 1.0}, r"warmup_part must be a number in \[0, 1\), got 1.0"),
        ({"warmup_part": -0.1}, r"warmup_part must be a number in \[0, 1\), got -0.1"),
        ({"voc_trainaug": True}, "voc_trainaug needs dataset='voc', got 'shapes'"),
        ({"aspp_rates": "wide"}, "aspp_rates must be 'scaled', 'paper' or positive ints"),
        ({"multi_grid": (1, 2)}, "multi_grid must be"),
    ],
)
def test_bad_values_name_the_field(kwargs, match):
    """Every field is checked once, where a config is built, with the value and what it may be."""
    with pytest.raises(ValueError, match=match):
        RunConfig(**kwargs)


def test_rates_are_read_from_text_and_lists():
    """ASPP rates given as "2,4,6" (the command line), a list (JSON) or a tuple are one tuple."""
    for given in ("2,4,6", [2, 4, 6], (2, 4, 6)):
        assert RunConfig(aspp_rates=given).aspp_rates == (2, 4, 6)
    assert RunConfig(aspp_rates="scaled").model_config(5).aspp_rates == (1, 1, 2)  # 64 px
    assert RunConfig(aspp_rates="paper").model_config(5).aspp_rates is None


@pytest.mark.parametrize("fast", [False, True])
def test_settle_decides_every_none_for_the_device(fast, monkeypatch):
    """Mixed precision where it is fast, the main job's steps for it, the optimiser's rate, a
    fifth of the steps as warm-up, NHWC on a CPU; values given stay as they are."""
    monkeypatch.setattr("deeplab_utils.config.amp_is_fast", lambda device: fast)
    used = settle(RunConfig(), CPU)
    steps = MAIN_JOB_STEPS[fast]
    assert (used.amp, used.steps, used.lr, used.warmup_steps) == (fast, steps, 8e-3, steps // 5)
    assert used.warmup_part == 0.2  # recorded, so that a resumed run keeps it
    assert used.channels_last is True and used.device == "cpu"
    given = RunConfig(steps=30, amp=not fast, lr=0.1, warmup_steps=0, warmup_part=0.5,
                      channels_last=False, start_scale=0.5)  # fmt: skip
    assert settle(given, CPU) == dataclasses.replace(given, device="cpu")


def test_resumed_keeps_the_runs_values_and_refuses_others():
    """None takes the saved run's value; free settings may change; steps may grow only."""
    saved = dataclasses.asdict(settle(RunConfig(steps=100, amp=False), CPU))
    continued = resumed(RunConfig(steps=150, workers=2), saved, done=60)
    assert (continued.steps, continued.lr, continued.amp, continued.warmup_steps) == (
        150, 8e-3, False, 20,
    )  # fmt: skip
    with pytest.raises(ResumeError, match="trained with batch_size=16, now batch_size=8"):
        resumed(RunConfig(batch_size=8), saved, done=60)
    with pytest.raises(ResumeError, match=r"steps=100 \(it has done 60 steps\), now steps=50"):
        resumed(RunConfig(steps=50), saved, done=60)
    with pytest.raises(ResumeError, match="trained with warmup_part=0.2, now warmup_part=0.1"):
        resumed(RunConfig(warmup_part=0.1), saved, done=60)


def test_a_run_of_earlier_defaults_continues_with_todays():
    """A checkpoint of the recipe before 2026-12-06 (Adam 5e-3, a tenth as warm-up) continues
    under today's defaults: fields left as None take the run's values."""
    saved = dataclasses.asdict(settle(RunConfig(steps=100, lr=5e-3, warmup_part=0.1), CPU))
    continued = resumed(RunConfig(), saved, done=60)
    assert (continued.lr, continued.warmup_part, continued.warmup_steps) == (5e-3, 0.1, 10)


@pytest.mark.parametrize(
    ("steps", "part", "warmup"), [(350, 0.2, 70), (950, 0.1, 95), (100, 0.29, 29), (4, 0.2, 0)]
)
def test_the_warm_up_is_the_floor_of_its_part_of_the_steps(steps, part, warmup):
    """warmup_part * steps, rounded down (0.29 * 100 is 28.999... in floats: still 29)."""
    assert settle(RunConfig(steps=steps, warmup_part=part), CPU).warmup_steps == warmup


def test_a_checkpoint_saved_before_warmup_part_existed_continues():
    """An older run's settled config, without warmup_part, continues: its warm-up is settled."""
    saved = dataclasses.asdict(settle(RunConfig(steps=100, amp=False, warmup_steps=10), CPU))
    del saved["warmup_part"]
    assert resumed(RunConfig(), saved, done=60).warmup_steps == 10


@pytest.mark.parametrize(
    ("dataset", "given", "used"),
    [("shapes", None, 0.75), ("pets", None, 1.0), ("voc", None, 1.0), ("pets", 0.5, 0.5)],
)
def test_progressive_resizing_is_for_the_shapes_only(dataset, given, used):
    """The main job's resizing is the shapes recipe's; real photographs train at full size, as
    the paper does, unless asked (the command line's `--dataset pets` took 0.75 before)."""
    config = RunConfig(dataset=dataset, start_scale=given)
    assert settle(config, CPU).start_scale == used


def test_a_full_size_run_does_not_continue_a_resized_one():
    """Notebook 07's short run trains at full size; a checkpoint left by a run that resized its
    first half is another experiment, so the notebook replaces it instead of continuing it."""
    saved = dataclasses.asdict(settle(dataclasses.replace(SHORT_RUN, start_scale=0.75), CPU))
    with pytest.raises(ResumeError, match="start_scale"):
        resumed(SHORT_RUN, saved, 200)
