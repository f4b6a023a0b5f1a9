"""Tests for deeplab_utils.training: schedule, loop, evaluation, resume, NaN and OOM handling."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from deeplab_utils.training import (
    History,
    NonFiniteLossError,
    ResumableSampler,
    TrainConfig,
    build_optimizer,
    build_scheduler,
    evaluate,
    fit,
    make_loader,
    poly_lr_lambda,
    train_one_epoch,
)

NUM_CLASSES = 3


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


# --- schedule -----------------------------------------------------------------------------------


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


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"step": -1, "total_steps": 10}, "step must be >= 0, got -1"),
        ({"step": 0, "total_steps": 0}, "total_steps must be >= 1, got 0"),
        ({"step": 0, "total_steps": 10, "power": -1.0}, "power must be >= 0, got -1.0"),
    ],
)
def test_poly_lr_lambda_rejects_bad_values(kwargs, match):
    """Bad arguments raise ValueError naming the value."""
    step = kwargs.pop("step")
    with pytest.raises(ValueError, match=match):
        poly_lr_lambda(step, **kwargs)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_scheduler_sets_lr_of_each_step(optimizer):
    """The optimiser's LR at step s is base_lr * (1 - s/T)^0.9 with warm-up, computed by hand."""
    config = TrainConfig(steps=10, optimizer=optimizer, lr=0.5, warmup_steps=3)
    opt = build_optimizer(nn.Linear(2, 2), config=config)
    sched = build_scheduler(opt, config=config)
    for s in range(10):
        expected = 0.5 * (1 - s / 10) ** 0.9 * (min(s + 1, 3) / 3)
        assert opt.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-12)
        opt.step()
        sched.step()


def test_build_optimizer_uses_paper_sgd_recipe():
    """SGD gets momentum 0.9 and weight decay 1e-4 (paper Sec. 4); Adam gets the given lr."""
    sgd = build_optimizer(nn.Linear(2, 2), config=TrainConfig(optimizer="sgd", lr=0.01))
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.param_groups[0]["momentum"] == 0.9
    assert sgd.param_groups[0]["weight_decay"] == 1e-4
    adam = build_optimizer(nn.Linear(2, 2), config=TrainConfig(optimizer="adam", lr=0.002))
    assert isinstance(adam, torch.optim.Adam)
    assert adam.param_groups[0]["lr"] == 0.002


def test_fused_adam_follows_plain_adam():
    """The optimiser build_optimizer returns (fused on CPU) takes the steps of textbook Adam."""
    torch.manual_seed(0)
    ours_model, plain_model = nn.Linear(6, 4), nn.Linear(6, 4)
    plain_model.load_state_dict(ours_model.state_dict())
    ours = build_optimizer(ours_model, config=TrainConfig(optimizer="adam", lr=0.01))
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


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 0}, "steps must be a positive int, got 0"),
        ({"batch_size": -2}, "batch_size must be a positive int, got -2"),
        ({"optimizer": "rmsprop"}, "optimizer must be 'sgd' or 'adam', got 'rmsprop'"),
        ({"lr": 0.0}, "lr must be a positive number, got 0.0"),
        ({"lr": float("nan")}, "lr must be a positive number, got nan"),
        ({"steps": 5, "warmup_steps": 5}, r"warmup_steps must be smaller than steps \(5\), got 5"),
        ({"grad_clip": -1.0}, "grad_clip must be None or a positive number, got -1.0"),
        ({"eval_every": -1}, "eval_every must be a non-negative int, got -1"),
    ],
)
def test_train_config_validates(kwargs, match):
    """TrainConfig rejects bad values with a ValueError naming the field and value."""
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


# --- data order ---------------------------------------------------------------------------------


def test_sampler_order_depends_on_seed_and_epoch_only():
    """Same (seed, epoch) gives the same order, another epoch another; set_start skips a prefix."""
    data = list(range(20))
    a, b = ResumableSampler(data, seed=3), ResumableSampler(data, seed=3)
    a.set_epoch(2)
    b.set_epoch(1)
    b.set_epoch(2)
    order = list(a)
    assert order == list(b)
    assert sorted(order) == data
    a.set_epoch(3)
    assert list(a) != order
    b.set_start(7)
    assert list(b) == order[7:]
    assert len(b) == 13


# --- training loop ------------------------------------------------------------------------------


def test_loss_goes_down_on_a_fixed_batch():
    """Twenty Adam steps on one repeated batch lower the loss of that batch."""
    model = new_model()
    model.body[3].p = 0.0  # no dropout: the loss of a fixed batch is then comparable
    images, masks = tiny_dataset(4)[:]
    config = TrainConfig(steps=20, lr=0.05)
    opt = build_optimizer(model, config=config)
    sched = build_scheduler(opt, config=config)
    losses: list[float] = []
    last = train_one_epoch(
        model,
        [(images, masks)] * 20,
        loss_fn=ce_loss,
        optimizer=opt,
        scheduler=sched,
        config=config,
        device=torch.device("cpu"),
        on_step=lambda step, loss, lr, logits, m: losses.append(loss),
    )
    assert last == 20
    assert losses[-1] < 0.5 * losses[0]


def test_fit_records_history_and_evaluates():
    """fit runs exactly `steps` steps, logs each step's loss and LR and evaluates on schedule."""
    train = make_loader(tiny_dataset(16), batch_size=4, shuffle=True)
    val = make_loader(tiny_dataset(8, seed=1), batch_size=4, shuffle=False)
    config = TrainConfig(steps=6, optimizer="sgd", lr=0.1, eval_every=4, log_every=2)
    history = fit(new_model(), train, val, config=config, loss_fn=ce_loss, progress=False)
    assert history.step == [1, 2, 3, 4, 5, 6]
    assert all(math.isfinite(x) for x in history.loss)
    assert history.lr == pytest.approx([0.1 * (1 - s / 6) ** 0.9 for s in range(6)])
    assert history.eval_step == [4, 6]
    assert 0.0 <= history.val[-1]["miou"] <= 1.0
    assert len(history.val[-1]["iou"]) == NUM_CLASSES
    restored = History.from_dict(json.loads(json.dumps(history.to_dict())))
    assert restored == history


def test_fit_with_bf16_autocast_and_channels_last_on_cpu():
    """amp=True on CPU (bf16 autocast) and channels_last train with finite losses."""
    train = make_loader(tiny_dataset(8), batch_size=4, shuffle=True)
    config = TrainConfig(steps=3, amp=True, channels_last=True, grad_clip=1.0)
    history = fit(new_model(), train, config=config, loss_fn=ce_loss, progress=False)
    assert len(history.loss) == 3
    assert all(math.isfinite(x) for x in history.loss)


def test_fit_binary_one_channel_model():
    """A one-channel model with a BCE loss trains and is scored as 2 classes (logit > 0)."""
    g = torch.Generator().manual_seed(0)
    images = torch.randn(8, 3, 8, 8, generator=g)
    masks = (images[:, 0] > 0).float().unsqueeze(1)  # (B, 1, H, W) float, the seed's layout
    loader = make_loader(TensorDataset(images, masks), batch_size=4, shuffle=True)
    torch.manual_seed(0)
    model = nn.Conv2d(3, 1, 1)

    def bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, target)

    config = TrainConfig(steps=2)
    history = fit(model, loader, loader, config=config, loss_fn=bce, progress=False)
    assert len(history.val[-1]["iou"]) == 2


def test_evaluate_against_hand_computed_metrics():
    """A perfect model scores mIoU 1; an always-background model's IoU matches NumPy."""
    data = tiny_dataset(8)
    images, masks = data[:]

    class Oracle(nn.Module):
        def forward(self, x):
            return F.one_hot(x.argmax(dim=1), NUM_CLASSES).permute(0, 3, 1, 2).float()

    class Background(nn.Module):
        def forward(self, x):
            out = torch.zeros(x.shape[0], NUM_CLASSES, *x.shape[2:])
            out[:, 0] = 1.0
            return out

    loader = make_loader(data, batch_size=3, shuffle=False)
    perfect = evaluate(Oracle(), loader, NUM_CLASSES, device="cpu")
    assert perfect["miou"] == 1.0
    assert perfect["pixel_accuracy"] == 1.0

    result = evaluate(Background(), loader, NUM_CLASSES, device="cpu")
    m = masks.numpy()
    valid = m != 255
    iou0 = np.sum(m[valid] == 0) / np.sum(valid)  # TP / (TP + FP), FN = 0
    assert result["iou"][0] == pytest.approx(iou0)
    assert result["iou"][1] == 0.0 and result["iou"][2] == 0.0
    assert result["miou"] == pytest.approx(iou0 / 3)


# --- resume -------------------------------------------------------------------------------------


class StopAt:
    """A loss that raises KeyboardInterrupt on its `stop`-th call, like a killed process."""

    def __init__(self, stop: int) -> None:
        self.stop, self.calls = stop, 0

    def __call__(self, logits, masks):
        self.calls += 1
        if self.calls == self.stop:
            raise KeyboardInterrupt
        return ce_loss(logits, masks)


@pytest.mark.parametrize(("optimizer", "interrupt_at"), [("sgd", 3), ("adam", 4), ("adam", 6)])
def test_resume_equals_uninterrupted(tmp_path, optimizer, interrupt_at):
    """A run stopped after a checkpoint and resumed ends with weights equal to a straight run."""
    # 18 samples, batch 4, drop_last: 4 steps per epoch, so 10 steps cross two epoch boundaries.
    config = TrainConfig(
        steps=10, optimizer=optimizer, lr=0.05, warmup_steps=2, eval_every=3, checkpoint_every=2
    )

    def loaders():
        return (
            make_loader(tiny_dataset(18), batch_size=4, shuffle=True, seed=config.seed),
            make_loader(tiny_dataset(6, seed=1), batch_size=4, shuffle=False),
        )

    straight = new_model()
    expected = fit(straight, *loaders(), config=config, loss_fn=ce_loss, progress=False)

    path = tmp_path / "ckpt.pt"
    with pytest.raises(KeyboardInterrupt):
        fit(
            new_model(),
            *loaders(),
            config=config,
            loss_fn=StopAt(interrupt_at + 1),
            checkpoint_path=path,
            progress=False,
        )
    # Fresh objects, as in a new process; a different initial seed, which the checkpoint overrides.
    resumed = new_model(seed=123)
    torch.manual_seed(999)
    got = fit(
        resumed,
        *loaders(),
        config=config,
        loss_fn=ce_loss,
        checkpoint_path=path,
        resume=True,
        progress=False,
    )
    for key, value in weights(straight).items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=0, atol=0, msg=key)
    assert got.loss == expected.loss
    assert got.val == expected.val


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    """resume=True with no checkpoint file raises FileNotFoundError naming the path."""
    loader = make_loader(tiny_dataset(8), batch_size=4, shuffle=True)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        fit(
            new_model(),
            loader,
            config=TrainConfig(steps=1),
            loss_fn=ce_loss,
            checkpoint_path=tmp_path / "missing.pt",
            resume=True,
            progress=False,
        )


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
    config = TrainConfig(steps=5, lr=0.01)
    ref = new_model()  # the same run, stopped cleanly before step 3
    with pytest.raises(KeyboardInterrupt):
        fit(
            ref,
            make_loader(tiny_dataset(16), batch_size=4, shuffle=True),
            config=config,
            loss_fn=StopAt(3),
            progress=False,
        )
    model = new_model()
    with pytest.raises(NonFiniteLossError, match=r"at step 3 .*--lr.*--amp"):
        fit(
            model,
            make_loader(tiny_dataset(16), batch_size=4, shuffle=True),
            config=config,
            loss_fn=NanAt(3),
            progress=False,
        )
    for key, value in weights(ref).items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0, msg=key)


def test_out_of_memory_names_the_settings_to_lower():
    """A CUDA out-of-memory error in a step is re-raised naming batch size, image size and amp."""

    class Hungry(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, NUM_CLASSES, 1)

        def forward(self, x):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    loader = make_loader(tiny_dataset(8), batch_size=4, shuffle=True)
    with pytest.raises(torch.OutOfMemoryError, match=r"--batch-size.*--image-size.*--amp"):
        fit(Hungry(), loader, config=TrainConfig(steps=1), loss_fn=ce_loss, progress=False)


def test_too_small_dataset_is_a_clear_error():
    """A dataset smaller than one batch (drop_last) raises a ValueError saying so."""
    loader = make_loader(tiny_dataset(3), batch_size=4, shuffle=True)
    with pytest.raises(ValueError, match="smaller than one batch"):
        fit(new_model(), loader, config=TrainConfig(steps=1), loss_fn=ce_loss, progress=False)


def test_a_step_the_grad_scaler_skips_raises_no_schedule_warning():
    """fp16 training skips a step whose scaled gradients overflowed (always the first, while
    GradScaler finds its scale); torch's "scheduler before optimiser" warning is not shown."""
    from deeplab_utils.training import _train_step

    class SkippingScaler:  # GradScaler's interface, skipping every step as on an overflow
        def scale(self, loss):
            return loss

        def step(self, optimizer):
            pass

        def update(self):
            pass

    model = new_model()
    config = TrainConfig(steps=4, lr=0.01)
    optimizer = build_optimizer(model, config=config)
    scheduler = build_scheduler(optimizer, config=config)
    before = weights(model)
    images, masks = tiny_dataset(4).tensors
    kwargs = dict(loss_fn=ce_loss, optimizer=optimizer, scheduler=scheduler, config=config)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        for step in (1, 2):
            _train_step(
                model, (images, masks), scaler=SkippingScaler(), device=torch.device("cpu"),
                step=step, **kwargs,
            )  # fmt: skip
    assert scheduler.last_epoch == 2  # the schedule moved on ...
    for key, value in before.items():  # ... while the weights did not
        if value.is_floating_point() and "running" not in key:
            torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0, msg=key)


def test_fit_moves_the_loss_to_the_device():
    """A loss holding tensors of its own (DiceCELoss's class weights) goes where the model goes.

    (With only a CPU here, the move is observed, not a CUDA device-mismatch error.)
    """
    from deeplab_utils.losses import DiceCELoss

    moves = []

    class Watched(DiceCELoss):
        def to(self, *args, **kwargs):
            moves.append(torch.device(args[0] if args else kwargs["device"]))
            return super().to(*args, **kwargs)

    loss = Watched(class_weights=[1.0, 2.0, 1.0])
    loader = make_loader(tiny_dataset(8), batch_size=4, shuffle=True)
    history = fit(
        new_model(), loader, config=TrainConfig(steps=1), loss_fn=loss, device="cpu",
        progress=False,
    )  # fmt: skip
    assert math.isfinite(history.loss[0])
    assert moves == [torch.device("cpu")]


# --- derived defaults ---------------------------------------------------------------------------


def test_replace_gives_the_defaults_of_the_new_optimizer_and_steps():
    """dataclasses.replace re-derives what was left as None: SGD's rate for optimizer="sgd"
    (0.01, not Adam's 5e-3), and a tenth of the new steps as warm-up."""
    import dataclasses

    recipe = TrainConfig(steps=100)
    sgd = dataclasses.replace(recipe, optimizer="sgd")
    assert build_optimizer(nn.Linear(2, 2), config=sgd).param_groups[0]["lr"] == 0.01
    longer = dataclasses.replace(recipe, steps=200)  # warm-up: 20 steps, not the old 10
    opt = build_optimizer(nn.Linear(2, 2), config=longer)
    build_scheduler(opt, config=longer)
    assert opt.param_groups[0]["lr"] == pytest.approx(5e-3 / 20, rel=1e-12)  # step 0: 1/20
    explicit = dataclasses.replace(TrainConfig(lr=0.3, warmup_steps=4), optimizer="sgd")
    assert (explicit.resolved_lr(), explicit.resolved_warmup_steps()) == (0.3, 4)


def test_checkpoint_records_the_learning_rate_and_warmup_the_run_used(tmp_path):
    """A checkpoint's train_config holds the resolved lr and warm-up, not None."""
    from deeplab_utils.checkpoint import read_train_config

    path = tmp_path / "c.pt"
    loader = make_loader(tiny_dataset(8), batch_size=4, shuffle=True)
    config = TrainConfig(steps=20, optimizer="sgd", log_every=0)
    fit(new_model(), loader, config=config, loss_fn=ce_loss, checkpoint_path=path, progress=False)
    saved = read_train_config(path)
    assert (saved["lr"], saved["warmup_steps"]) == (0.01, 2)


def test_evaluate_runs_where_the_model_is(monkeypatch):
    """On a machine with a GPU, a CPU model is evaluated on the CPU (its parameters' device),
    not sent batches on CUDA; the result equals an explicit device="cpu"."""
    model = new_model().eval()
    loader = make_loader(tiny_dataset(6), batch_size=3, shuffle=False)
    expected = evaluate(model, loader, NUM_CLASSES, device="cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU machine
    assert evaluate(model, loader, NUM_CLASSES) == expected


def test_a_validation_without_labelled_pixels_logs_n_a(capsys):
    """A validation set whose masks are all ignore (255) has no mIoU: the log line says "n/a"
    rather than printing 0.000, a score the model did not get."""
    train = make_loader(tiny_dataset(8), batch_size=4, shuffle=True)
    images = torch.randn(4, 3, 8, 8)
    unlabelled = TensorDataset(images, torch.full((4, 8, 8), 255, dtype=torch.long))
    val = make_loader(unlabelled, batch_size=2, shuffle=False)
    config = TrainConfig(steps=2, eval_every=2, amp=False)
    history = fit(new_model(), train, val, config=config, loss_fn=ce_loss, progress=False)
    assert history.val[-1]["miou"] is None
    assert "step 2/2: val mIoU n/a" in capsys.readouterr().out
