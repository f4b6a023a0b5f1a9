"""Tests for deeplab_utils.training: the schedule, the optimiser, the data order and fit."""

from __future__ import annotations

import dataclasses
import json
import math
from unittest import mock

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from deeplab_utils.checkpoint import read_checkpoint
from deeplab_utils.config import RunConfig, settle
from deeplab_utils.evaluation import eval_loader, evaluate
from deeplab_utils.losses import DiceCELoss
from deeplab_utils.run import Run
from deeplab_utils.training import (
    History,
    NonFiniteLossError,
    StepSampler,
    build_optimizer,
    fit,
    poly_lr_lambda,
    train_loader,
    train_step,
)

NUM_CLASSES = 3
CPU = torch.device("cpu")


class TinySegNet(nn.Module):
    """(B, 3, H, W) -> (B, C, H, W); BatchNorm and dropout make RNG and buffers matter."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout2d(0.2)
        )
        self.head = nn.Conv2d(8, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def tiny_dataset(n: int = 16, size: int = 8, seed: int = 0) -> TensorDataset:
    """Images whose brightest channel is the pixel's class, with a few ignored pixels."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, size, size, generator=g)
    masks = images.argmax(dim=1)
    masks[:, 0, 0] = 255
    return TensorDataset(images, masks)


def ce_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, masks, ignore_index=255)


def new_model(seed: int = 0) -> TinySegNet:
    torch.manual_seed(seed)
    return TinySegNet()


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def tiny_run(model=None, train=None, val=None, loss_fn=ce_loss, **settings) -> Run:
    """A Run of the tiny model and data; ``settings`` are RunConfig fields (CPU, fp32)."""
    config = RunConfig(**{"device": "cpu", "amp": False, "batch_size": 4, **settings})
    return Run(config, model or new_model(), train or tiny_dataset(), val, loss_fn)


# --- schedule and optimiser ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "total", "power", "warmup", "expected"),
    [
        (0, 100, 0.9, 0, 1.0),
        (50, 100, 0.9, 0, 0.5**0.9),
        (99, 100, 0.9, 0, 0.01**0.9),
        (100, 100, 0.9, 0, 0.0),
        (150, 100, 0.9, 0, 0.0),
        (30, 60, 1.0, 0, 0.5),
        (0, 100, 0.9, 4, 0.25),  # (1 - 0)^0.9 * 1/4
        (1, 100, 0.9, 4, 0.99**0.9 * 0.5),
        (3, 100, 0.9, 4, 0.97**0.9 * 1.0),
        (4, 100, 0.9, 4, 0.96**0.9),
        (10, 100, 0.0, 0, 1.0),
    ],
)
def test_poly_lr_lambda_matches_formula(step, total, power, warmup, expected):
    """poly_lr_lambda equals (1 - step/total)^power, times (step+1)/warmup during warm-up."""
    got = poly_lr_lambda(step, total_steps=total, power=power, warmup_steps=warmup)
    assert got == pytest.approx(expected, rel=1e-12, abs=0)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_fit_uses_the_poly_rate_at_each_step(optimizer):
    """Step s trains at lr * (1 - s/T)^0.9 * min(s+1, W)/W, computed by hand."""
    run = tiny_run(steps=10, optimizer=optimizer, lr=0.5, warmup_steps=3)
    history = fit(run, progress=False)
    expected = [0.5 * (1 - s / 10) ** 0.9 * (min(s + 1, 3) / 3) for s in range(10)]
    assert history.lr == pytest.approx(expected, rel=1e-12)


def test_build_optimizer_uses_paper_sgd_recipe():
    """SGD gets momentum 0.9 and weight decay 1e-4 (paper Sec. 4); Adam gets the given lr."""
    sgd = build_optimizer(nn.Linear(2, 2), RunConfig(optimizer="sgd", lr=0.01))
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.param_groups[0]["momentum"] == 0.9
    assert sgd.param_groups[0]["weight_decay"] == 1e-4
    adam = build_optimizer(nn.Linear(2, 2), RunConfig(optimizer="adam", lr=0.002))
    assert isinstance(adam, torch.optim.Adam)
    assert adam.param_groups[0]["lr"] == 0.002


def test_fused_adam_follows_plain_adam():
    """The optimiser build_optimizer returns (fused on CPU) takes the steps of textbook Adam."""
    torch.manual_seed(0)
    ours_model, plain_model = nn.Linear(6, 4), nn.Linear(6, 4)
    plain_model.load_state_dict(ours_model.state_dict())
    ours = build_optimizer(ours_model, RunConfig(optimizer="adam", lr=0.01))
    assert ours.defaults["fused"]  # the fast path is really taken on a CPU
    plain = torch.optim.Adam(plain_model.parameters(), lr=0.01, foreach=False)
    start = ours_model.weight.detach().clone()
    x = torch.randn(16, 6)
    for _ in range(5):
        for model, opt in ((ours_model, ours), (plain_model, plain)):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
    for a, b in zip(ours_model.parameters(), plain_model.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    assert not torch.allclose(ours_model.weight, start)  # the steps did move the weights


def test_replace_means_what_it_says():
    """dataclasses.replace re-derives what was left as None: SGD's rate and warm-up for
    optimizer="sgd" (0.01 over a tenth, not Adam's 8e-3 over a fifth), the warm-up's part of the
    new steps; explicit values stay."""
    recipe = RunConfig(steps=100)
    sgd_settled = settle(dataclasses.replace(recipe, optimizer="sgd"), CPU)
    assert (sgd_settled.lr, sgd_settled.warmup_steps) == (0.01, 10)
    sgd = build_optimizer(nn.Linear(2, 2), dataclasses.replace(recipe, optimizer="sgd"))
    assert sgd.param_groups[0]["lr"] == 0.01
    assert settle(dataclasses.replace(recipe, steps=200), CPU).warmup_steps == 40
    explicit = dataclasses.replace(RunConfig(steps=100, lr=0.3, warmup_steps=4), optimizer="sgd")
    assert (settle(explicit, CPU).lr, settle(explicit, CPU).warmup_steps) == (0.3, 4)


# --- data order ---------------------------------------------------------------------------------


def batches(size: int, start: int = 0, shard: tuple[int, int] = (0, 1), **config) -> list:
    """The batches StepSampler gives process ``shard = (rank, world)``."""
    config = RunConfig(**{"batch_size": 3, "steps": 10, "seed": 7, **config})
    with mock.patch("deeplab_utils.training.rank_and_world", return_value=shard):
        return list(StepSampler(size, config, start))


def test_step_sampler_order_depends_on_seed_and_step_only():
    """Each epoch is a permutation (a remainder dropped), drawn from (seed, epoch) alone: the
    same seed repeats it, another seed or epoch does not, and a start at step k gives the tail."""
    steps = batches(10)  # 3 batches of 3 per epoch: steps 0-2, 3-5, 6-8, 9
    assert len(steps) == 10 and all(len(b) == 3 for b in steps)
    first = [i for b in steps[:3] for i in b]
    assert len(set(first)) == 9 and set(first) <= set(range(10))
    assert steps == batches(10)
    assert steps != batches(10, seed=8)
    assert steps[:3] != steps[3:6]
    assert batches(10, start=4) == steps[4:]
    expected = np.random.default_rng([7, 1]).permutation(10)[:9].reshape(3, 3).tolist()
    assert steps[3:6] == expected  # epoch 1 is exactly the permutation of (seed, 1)


def test_train_loader_stops_at_end_inside_a_longer_run():
    """train_loader(..., start, end) gives the run's batches of steps start to end - 1, even
    where the run's warm-up is longer than end (train_with's calls of val_every steps)."""
    data = TensorDataset(torch.arange(10))
    config = RunConfig(batch_size=3, steps=10, seed=7, warmup_steps=8)
    whole = [b[0].tolist() for b in train_loader(data, config)]
    part = [b[0].tolist() for b in train_loader(data, config, start=2, end=5)]
    assert len(whole) == 10 and part == whole[2:5]
    assert len(train_loader(data, config, start=2, end=5)) == 3


def test_step_sampler_shards_each_global_batch():
    """Under 2 processes each step's global batch of 2 x 3 is split in two disjoint halves, and
    a rank that resumes at step k gets the same tail as one that did not stop."""
    ranks = [batches(13, shard=(r, 2)) for r in (0, 1)]
    for a, b in zip(*ranks, strict=True):
        assert len(a) == len(b) == 3 and not set(a) & set(b)
    epoch = [i for step in range(2) for r in (0, 1) for i in ranks[r][step]]
    assert len(set(epoch)) == 12  # two global batches per epoch of 13: all distinct
    assert batches(13, start=5, shard=(1, 2)) == ranks[1][5:]


def test_a_dataset_smaller_than_a_batch_is_a_clear_error():
    """A dataset smaller than one (global) batch raises a ValueError saying how to fix it."""
    with pytest.raises(ValueError, match=r"batch_size 4 x 1 process\(es\) is larger than the"):
        fit(tiny_run(train=tiny_dataset(3), steps=1), progress=False)


# --- the loop -----------------------------------------------------------------------------------


def test_train_step_lowers_the_loss_of_a_fixed_batch():
    """Twenty Adam steps of train_step on one repeated batch lower the loss of that batch."""
    model = new_model()
    model.body[3].p = 0.0  # no dropout: the loss of a fixed batch is then comparable
    images, masks = tiny_dataset(4)[:]
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = [train_step(model, images, masks, optimizer, ce_loss) for _ in range(20)]
    assert all(isinstance(loss, float) for loss in losses)
    assert losses[-1] < 0.5 * losses[0]


def test_fit_records_history_and_evaluates():
    """fit runs exactly `steps` steps, logs each step's loss and LR and evaluates on schedule."""
    run = tiny_run(val=tiny_dataset(8, seed=1), steps=6, optimizer="sgd", lr=0.1, val_every=4)
    history = fit(run, progress=False)
    assert history.step == [1, 2, 3, 4, 5, 6]
    assert all(math.isfinite(x) for x in history.loss)
    assert history.lr == pytest.approx([0.1 * (1 - s / 6) ** 0.9 for s in range(6)])
    assert history.eval_step == [4, 6]
    assert 0.0 <= history.val[-1]["miou"] <= 1.0
    assert len(history.val[-1]["iou"]) == NUM_CLASSES
    again = evaluate(run.model, eval_loader(run.val_set, run.config), loss_fn=run.loss_fn)
    assert history.val[-1]["loss"] == pytest.approx(again["loss"])  # the validation loss
    restored = History.from_dict(json.loads(json.dumps(dataclasses.asdict(history))))
    assert restored == history


def test_fit_with_bf16_autocast_and_channels_last_on_cpu():
    """amp=True on CPU (bf16 autocast) and channels_last train with finite losses."""
    run = tiny_run(steps=3, amp=True, channels_last=True, grad_clip=1.0)
    history = fit(run, progress=False)
    assert len(history.loss) == 3
    assert all(math.isfinite(x) for x in history.loss)
    assert run.model.head.weight.is_contiguous(memory_format=torch.channels_last)


def test_fit_binary_one_channel_model():
    """A one-channel model with a BCE loss and (B, 1, H, W) float masks (the seed's layout)
    trains and is scored as 2 classes (logit > 0)."""
    g = torch.Generator().manual_seed(0)
    images = torch.randn(8, 3, 8, 8, generator=g)
    data = TensorDataset(images, (images[:, :1] > 0).float())  # (B, 1, H, W)
    torch.manual_seed(0)
    run = tiny_run(nn.Conv2d(3, 1, 1), data, data, F.binary_cross_entropy_with_logits, steps=2)
    history = fit(run, progress=False)
    assert len(history.val[-1]["iou"]) == 2


def test_fit_moves_the_loss_to_the_device():
    """A loss holding tensors of its own (DiceCELoss's class weights) goes where the model goes.

    (With only a CPU here, the move is observed, not a CUDA device-mismatch error.)
    """
    moves = []

    class Watched(DiceCELoss):
        def to(self, *args, **kwargs):
            moves.append(torch.device(args[0] if args else kwargs["device"]))
            return super().to(*args, **kwargs)

    history = fit(tiny_run(loss_fn=Watched(class_weights=[1.0, 2.0, 1.0]), steps=1))
    assert math.isfinite(history.loss[0])
    assert moves == [CPU]


def test_fit_without_out_writes_nothing(tmp_path, monkeypatch):
    """A run without an ``out`` folder trains without writing a file anywhere."""
    monkeypatch.chdir(tmp_path)
    fit(tiny_run(steps=2, val_every=1), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_validation_without_labelled_pixels_logs_n_a(capsys):
    """A validation set whose masks are all ignore (255) has no mIoU: the log line says "n/a"
    rather than printing 0.000, a score the model did not get."""
    unlabelled = TensorDataset(torch.randn(4, 3, 8, 8), torch.full((4, 8, 8), 255))
    history = fit(tiny_run(val=unlabelled, steps=2, val_every=2), progress=False)
    assert history.val[-1]["miou"] is None
    assert "step 2/2: val mIoU n/a" in capsys.readouterr().out


# --- resume -------------------------------------------------------------------------------------


class StopAt:
    """A loss that raises KeyboardInterrupt on its `stop`-th training call (validation's calls,
    without gradients, are not counted), like a process killed in that step."""

    def __init__(self, stop: int) -> None:
        self.stop, self.calls = stop, 0

    def __call__(self, logits, masks):
        self.calls += torch.is_grad_enabled()
        if self.calls == self.stop:
            raise KeyboardInterrupt
        return ce_loss(logits, masks)


@pytest.mark.parametrize(("optimizer", "interrupt_at"), [("sgd", 3), ("adam", 4), ("adam", 6)])
def test_resume_equals_uninterrupted(tmp_path, optimizer, interrupt_at):
    """A run stopped after a checkpoint and resumed ends with weights equal to a straight run."""
    # 18 samples, batch 4: 4 steps per epoch, so 10 steps cross two epoch boundaries.
    settings = dict(steps=10, optimizer=optimizer, lr=0.05, warmup_steps=2, val_every=2)

    def run(out, model=None, loss_fn=ce_loss) -> Run:
        data = tiny_dataset(18), tiny_dataset(6, seed=1)
        return tiny_run(model, *data, loss_fn, out=str(out), **settings)

    straight = run(tmp_path / "straight")
    expected = fit(straight, progress=False)
    with pytest.raises(KeyboardInterrupt):
        fit(run(tmp_path / "stopped", loss_fn=StopAt(interrupt_at + 1)), progress=False)
    # Fresh objects, as in a new process; another initial seed, which the checkpoint overrides.
    resumed = run(tmp_path / "stopped", new_model(seed=123))
    torch.manual_seed(999)
    got = fit(resumed, resume=True, progress=False)
    for key, value in weights(straight.model).items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=0)
    assert got.loss == expected.loss
    assert got.val == expected.val


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    """resume=True with no checkpoint file raises FileNotFoundError naming the path."""
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        fit(tiny_run(steps=1, out=str(tmp_path)), resume=True, progress=False)


def test_checkpoint_records_the_settled_config(tmp_path):
    """A checkpoint's config holds what the run used (lr, warm-up, precision), not None."""
    fit(tiny_run(steps=20, optimizer="sgd", amp=None, out=str(tmp_path)), progress=False)
    saved = read_checkpoint(tmp_path / "checkpoint.pt")["config"]
    assert (saved["lr"], saved["warmup_steps"], saved["amp"]) == (0.01, 2, False)
    assert saved["channels_last"] is True  # on a CPU


# --- failures -----------------------------------------------------------------------------------


class NanAt:
    """A loss that returns NaN on its `at`-th call."""

    def __init__(self, at: int) -> None:
        self.at, self.calls = at, 0

    def __call__(self, logits, masks):
        self.calls += 1
        loss = ce_loss(logits, masks)
        return loss * float("nan") if self.calls == self.at else loss


def test_nan_loss_stops_before_the_weights_change():
    """A NaN loss at step 3 raises naming step 3, leaving the weights of step 2."""
    reference = tiny_run(loss_fn=StopAt(3), steps=5, lr=0.01)  # stopped cleanly before step 3
    with pytest.raises(KeyboardInterrupt):
        fit(reference, progress=False)
    run = tiny_run(loss_fn=NanAt(3), steps=5, lr=0.01)
    with pytest.raises(NonFiniteLossError, match=r"at step 3 .*--lr.*--amp"):
        fit(run, progress=False)
    for key, value in weights(reference.model).items():
        torch.testing.assert_close(run.model.state_dict()[key], value, rtol=0, atol=0, msg=key)


def test_progressive_resizing_shows_smaller_images_first():
    """With start_scale 0.5 the first start_part of the steps train on images of half the side,
    the rest (and every validation) on full-size ones."""
    sizes = []

    class Recording(TinySegNet):
        def forward(self, x):
            sizes.append((self.training, tuple(x.shape[-2:])))
            return super().forward(x)

    torch.manual_seed(0)
    run = tiny_run(Recording(), val=tiny_dataset(4), steps=4, start_scale=0.5, start_part=0.5)
    fit(run, progress=False)
    trained = [size for training, size in sizes if training]
    assert trained == [(4, 4), (4, 4), (8, 8), (8, 8)]
    assert {size for training, size in sizes if not training} == {(8, 8)}


def test_resized_batches_keep_their_labels():
    """Scaled masks keep exact labels, the ignore label included (nearest neighbour), in either
    layout; images are resampled to the same size; scale 1 or None leaves the batch as it is."""
    from deeplab_utils.training import _resized

    images = torch.rand(2, 3, 8, 8)
    masks = torch.zeros(2, 8, 8, dtype=torch.int64)
    masks[:, :4, :4], masks[:, 4:, 4:] = 3, 255  # 2 x 2 blocks of 4 x 4 pixels
    small_images, small_masks = _resized(images, masks, 0.5)
    assert small_images.shape == (2, 3, 4, 4) and small_masks.dtype == torch.int64
    expected = torch.tensor([[3, 3, 0, 0], [3, 3, 0, 0], [0, 0, 255, 255], [0, 0, 255, 255]])
    assert torch.equal(small_masks[0], expected)
    binary = (masks[:, None] == 3).float()  # (B, 1, H, W), the seed's binary layout
    assert torch.equal(
        _resized(images, binary, 0.5)[1], (expected[None, None] == 3).float().expand(2, 1, 4, 4)
    )
    assert _resized(images, masks, None)[1] is masks and _resized(images, masks, 1.0)[0] is images
