"""The training loop: the recipe (``TrainConfig``), the poly schedule, evaluation and ``fit``.

A plain loop to read beside notebook 07, for any model mapping ``(B, 3, H, W)`` to logits
``(B, C, H, W)``, any ``loss_fn(logits, masks)`` and any dataset of ``(image, mask)``.
With a loader from :func:`make_loader` (``workers=0``) a one-process CPU run resumed from its
checkpoint ends with exactly the weights of an uninterrupted one: the data order is a function of
``(seed, epoch)`` alone and the checkpoint carries every state, RNGs included. (On a GPU,
non-deterministic kernels make it only statistically the same.)
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import re
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

# The text bar, not tqdm.auto's widget: the same in a terminal, Jupyter, Colab and a stored
# notebook (a widget's stored text is its first state, 0 %).
from tqdm import tqdm

from .checkpoint import load_checkpoint, save_checkpoint
from .evaluation import pairs_at_mask_size
from .metrics import IGNORE_INDEX, SegmentationMetrics
from .runtime import amp_is_fast, model_device, pick_device, seed_everything

__all__ = [
    "DEFAULT_LR",
    "History",
    "NonFiniteLossError",
    "ResumableSampler",
    "ShardSampler",
    "TrainConfig",
    "build_optimizer",
    "build_scheduler",
    "confusion_matrix",
    "evaluate",
    "fit",
    "make_loader",
    "poly_lr_lambda",
    "train_one_epoch",
    "train_step",
    "train_steps",
]

SGD_MOMENTUM = 0.9  # DeepLabv3 (arXiv 1706.05587), Sec. 4, kept by DeepLabv3+
SGD_WEIGHT_DECAY = 1e-4  # DeepLabv3, Sec. 4: "weight decay 0.0001"
POLY_POWER = 0.9  # DeepLabv3, Sec. 4: lr * (1 - iter/max_iter)^0.9
# Peak learning rate per optimiser: Adam's tuned for this course's recipe (benchmarks/README.md),
# SGD's near the paper's (DeepLabv3, Sec. 4).
DEFAULT_LR = {"adam": 5e-3, "sgd": 0.01}

OOM_HINT = (
    "the GPU ran out of memory. Lower, in this order: --batch-size, --image-size, use "
    "--output-stride 16 (not 8), and turn on --amp. On Colab, also restart the runtime to free "
    "memory held by earlier cells."
)


class NonFiniteLossError(FloatingPointError):
    """A NaN or infinite loss, caught before it touches the weights. Taught in notebook 07."""


def _check_int(config: Any, names: tuple[str, ...], low: int) -> None:
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            kind = "a positive int" if low == 1 else "a non-negative int"
            raise ValueError(f"{name} must be {kind}, got {value!r}")


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained (not which model, nor on which data): the course's one recipe.

    The main job and the notebooks share it and differ only in ``steps`` and ``batch_size``.
    ``None`` fields are decided for you: ``lr`` and ``warmup_steps`` where they are used
    (:meth:`resolved_lr`, :meth:`resolved_warmup_steps`), so ``dataclasses.replace(config,
    optimizer="sgd")`` gets SGD's rate; ``amp`` and ``channels_last`` by :func:`fit` for its
    device. Taught in notebook 07.
    """

    steps: int = 850  # total optimiser steps; the paper's poly schedule counts iterations
    batch_size: int = 16  # images per step (per process under DDP); read by make_loader
    optimizer: Literal["sgd", "adam"] = "adam"  # "sgd" = paper's recipe; "adam" = the seed's
    lr: float | None = None  # peak learning rate; None: DEFAULT_LR[optimizer] (resolved_lr)
    warmup_steps: int | None = None  # linear warm-up before the poly decay; None: steps // 10
    poly_power: float = POLY_POWER  # exponent of the poly decay; 0 keeps lr constant
    grad_clip: float | None = None  # max global gradient norm, or None for no clipping
    amp: bool | None = None  # mixed precision (fp16 on CUDA, bf16 on CPU); None: where fast
    channels_last: bool | None = None  # NHWC convolutions; None: on a CPU, where they are faster
    eval_every: int = 0  # evaluate every this many steps; 0 = only at the end
    checkpoint_every: int = 0  # save every this many steps; 0 = only at the end
    seed: int = 0  # seeds weights' initialisation, data order and augmentation
    log_every: int = 10  # refresh the progress bar's loss every this many steps; 0 = never

    def __post_init__(self) -> None:
        _check_int(self, ("steps", "batch_size"), 1)
        _check_int(self, ("eval_every", "checkpoint_every", "seed", "log_every"), 0)
        if self.optimizer not in DEFAULT_LR:
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        lr = self.lr
        if lr is not None and not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a positive number, got {lr!r}")
        if self.warmup_steps is not None:
            _check_int(self, ("warmup_steps",), 0)
            if self.warmup_steps >= self.steps:
                raise ValueError(
                    f"warmup_steps must be smaller than steps ({self.steps}), "
                    f"got {self.warmup_steps}"
                )
        if not (isinstance(self.poly_power, int | float) and self.poly_power >= 0):
            raise ValueError(f"poly_power must be a number >= 0, got {self.poly_power!r}")
        if self.grad_clip is not None and not (
            isinstance(self.grad_clip, int | float) and self.grad_clip > 0
        ):
            raise ValueError(f"grad_clip must be None or a positive number, got {self.grad_clip!r}")
        for name in ("amp", "channels_last"):
            if getattr(self, name) not in (None, True, False):
                raise ValueError(f"{name} must be None, True or False, got {getattr(self, name)!r}")

    def resolved_lr(self) -> float:
        """The peak learning rate: ``lr``, or the optimiser's default when it is None."""
        return DEFAULT_LR[self.optimizer] if self.lr is None else self.lr

    def resolved_warmup_steps(self) -> int:
        """The warm-up: ``warmup_steps``, or a tenth of ``steps`` when it is None."""
        return self.steps // 10 if self.warmup_steps is None else self.warmup_steps

    def for_device(self, device: torch.device) -> TrainConfig:
        """This config with ``amp`` and ``channels_last`` decided for ``device`` where None."""
        amp = amp_is_fast(device) if self.amp is None else self.amp
        channels_last = device.type == "cpu" if self.channels_last is None else self.channels_last
        return dataclasses.replace(self, amp=amp, channels_last=channels_last)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of primitives (JSON-able, and loadable with ``weights_only=True``), with
        ``lr`` and ``warmup_steps`` as the run uses them: what checkpoints record."""
        used = {"lr": self.resolved_lr(), "warmup_steps": self.resolved_warmup_steps()}
        return dataclasses.asdict(self) | used


@dataclass
class History:
    """What :func:`fit` saw: loss and LR per step, metrics per evaluation. Taught in notebook 07."""

    step: list[int] = field(default_factory=list)  # 1-based optimiser step
    loss: list[float] = field(default_factory=list)  # training loss of that step
    lr: list[float] = field(default_factory=list)  # learning rate used by that step
    eval_step: list[int] = field(default_factory=list)  # step after which validation ran
    val: list[dict[str, Any]] = field(default_factory=list)  # metrics of that evaluation
    eval_seconds: list[float] = field(default_factory=list)  # training time until then

    def record_step(self, step: int, loss: float, lr: float) -> None:
        self.step.append(step)
        self.loss.append(loss)
        self.lr.append(lr)

    def record_eval(self, step: int, metrics: dict[str, Any], seconds: float) -> None:
        self.eval_step.append(step)
        self.val.append(metrics)
        self.eval_seconds.append(seconds)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (lists of numbers; metric tensors become lists)."""
        return {f.name: list(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> History:
        """Rebuild a History from :meth:`to_dict`'s output (``None``: an empty history)."""
        data = data or {}
        return cls(**{f.name: list(data.get(f.name, [])) for f in dataclasses.fields(cls)})


# --- Optimiser and learning-rate schedule ---


def poly_lr_lambda(
    step: int, total_steps: int, power: float = POLY_POWER, warmup_steps: int = 0
) -> float:
    """Multiplier of the base learning rate at 0-based ``step``: the paper's "poly" policy.

    ``(1 - step / total_steps) ** power`` (DeepLabv3, Sec. 4), times a linear warm-up
    ``(step + 1) / warmup_steps`` during the first ``warmup_steps`` steps; 0 from
    ``total_steps`` on. Taught in notebook 07.

    Raises:
        ValueError: a negative step, power or warm-up, or ``total_steps`` below 1.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if power < 0:
        raise ValueError(f"power must be >= 0, got {power}")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
    if step >= total_steps:
        return 0.0
    factor = (1.0 - step / total_steps) ** power
    if step < warmup_steps:
        factor *= (step + 1) / warmup_steps
    return factor


def build_scheduler(
    optimizer: torch.optim.Optimizer, *, config: TrainConfig
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` following :func:`poly_lr_lambda`; ``.step()`` it once per optimiser step.

    Taught in notebook 07.
    """
    schedule = functools.partial(
        poly_lr_lambda,
        total_steps=config.steps,
        power=config.poly_power,
        warmup_steps=config.resolved_warmup_steps(),
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def build_optimizer(model: nn.Module, *, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD with momentum 0.9 and weight decay 1e-4 (paper, Sec. 4), or Adam (the seed's choice).

    Taught in notebook 07.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.resolved_lr(), momentum=SGD_MOMENTUM, weight_decay=SGD_WEIGHT_DECAY
        )
    # The same Adam in one kernel instead of a loop over every tensor; fused Adam runs on CPU
    # and CUDA tensors only (torch >= 2.4).
    fused = bool(params) and {p.device.type for p in params} <= {"cpu", "cuda"}
    return torch.optim.Adam(params, lr=config.resolved_lr(), fused=fused or None)


# --- Data order that a checkpoint can reproduce; evaluation shards ---


class ResumableSampler(DistributedSampler):
    """A ``DistributedSampler`` that can start mid-epoch, so a resumed run sees the same batches.

    Epoch ``e``'s order is a function of ``(seed, e)`` alone; ``set_start(n)`` skips the first
    ``n`` indices of this process's share without loading them. The defaults
    ``num_replicas=1, rank=0`` are for a run without DDP. Taught in notebook 07.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        super().__init__(
            dataset,
            num_replicas=num_replicas,
            rank=rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
        )
        self.start = 0

    def set_start(self, start: int) -> None:
        """Skip the first ``start`` indices of the current epoch (until the next ``set_epoch``)."""
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        self.start = start

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch (hence the shuffle) and start again from its first index."""
        super().set_epoch(epoch)
        self.start = 0

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self.start, None)

    def __len__(self) -> int:
        return max(self.num_samples - self.start, 0)


class ShardSampler(Sampler[int]):
    """Evaluation order: process ``rank`` of ``num_replicas`` takes ``rank, rank + R, ...``.

    Unlike ``DistributedSampler`` it never pads the shards to equal length, so summed over the
    processes every sample is counted exactly once.
    """

    def __init__(self, dataset: Dataset, *, num_replicas: int = 1, rank: int = 0) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, {num_replicas}), got {rank}")
        self.indices = range(rank, len(dataset), num_replicas)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def make_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    workers: int = 0,
    drop_last: bool | None = None,
    num_replicas: int = 1,
    rank: int = 0,
    pin_memory: bool = False,
    collate_fn: Callable[[list[Any]], Any] | None = None,
) -> DataLoader:
    """A DataLoader whose order :func:`fit` can reproduce on resume. Taught in notebook 07.

    Args:
        shuffle: True for training (a new, resumable order each epoch: :class:`ResumableSampler`),
            False for evaluation (each process its :class:`ShardSampler` share, every sample once).
        drop_last: drop the last incomplete batch; defaults to ``shuffle`` (BatchNorm dislikes
            a batch of one).
        num_replicas, rank: the DDP world size and this process's rank (1, 0 without DDP).
        collate_fn: how samples become a batch (default: stacked), e.g.
            :func:`~deeplab_utils.data.collate_original_size` for original-size masks.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    drop_last = shuffle if drop_last is None else drop_last
    if shuffle:
        sampler: Sampler[int] = ResumableSampler(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed
        )
    else:
        sampler = ShardSampler(dataset, num_replicas=num_replicas, rank=rank)
    # An own generator, so that starting an iterator does not draw from torch's global RNG
    # (which would shift dropout and augmentation after a resume); _batches reseeds it.
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        drop_last=drop_last,
        generator=generator,
        pin_memory=pin_memory,
        persistent_workers=False,
        collate_fn=collate_fn,
    )


def _batches(loader: DataLoader, *, seed: int, start_step: int) -> Iterator:
    """Batches for ever, epoch after epoch, starting where step ``start_step`` left off."""
    sampler = loader.sampler
    if isinstance(sampler, ResumableSampler):
        sampler.set_start(0)  # an earlier run may have left it mid-epoch
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise ValueError(
            "the training loader yields no batch: the dataset is smaller than one batch; "
            "lower the batch size or use more samples"
        )
    epoch, skip = divmod(start_step, steps_per_epoch)
    while True:
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        if loader.generator is not None:
            # Workers' augmentation seeds come from it: a function of (seed, rank, epoch).
            loader.generator.manual_seed(seed * 100_003 + epoch + _rank() * 1_000_000_007)
        if skip and hasattr(sampler, "set_start") and loader.batch_size is not None:
            sampler.set_start(skip * loader.batch_size)
            yield from iter(loader)
        else:  # a loader we cannot position: read and drop the consumed batches
            yield from itertools.islice(iter(loader), skip, None)
        epoch, skip = epoch + 1, 0


# --- One step, one epoch, evaluation ---


def _autocast(device: torch.device, enabled: bool) -> torch.autocast:
    # fp16 on CUDA (with a GradScaler against underflow); bf16 on CPU, whose range needs no scaler.
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype, enabled=enabled)


def _images_to(device: torch.device, images: torch.Tensor, channels_last: bool) -> torch.Tensor:
    images = images.to(device, non_blocking=True)
    return images.contiguous(memory_format=torch.channels_last) if channels_last else images


def _is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _rank() -> int:
    return dist.get_rank() if _is_distributed() else 0


def _unwrap(model: nn.Module) -> nn.Module:
    # DistributedDataParallel keeps the real model in .module; checkpoints hold the real one.
    return getattr(model, "module", model)


def _mean_over_processes(loss: torch.Tensor) -> float:
    value = loss.detach().float().clone()
    if _is_distributed():  # every rank sees the same mean loss, so all stop together on a NaN
        dist.all_reduce(value)
        value /= dist.get_world_size()
    return value.item()


def _train_step(
    model: nn.Module,
    batch: Any,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler | None,
    config: TrainConfig,
    device: torch.device,
    step: int,
) -> tuple[float, float, torch.Tensor, torch.Tensor]:
    """One optimiser step; returns (loss, lr used, detached logits (B, C, H, W), masks)."""
    images = _images_to(device, batch[0], bool(config.channels_last))
    masks = batch[1].to(device, non_blocking=True)
    lr = optimizer.param_groups[0]["lr"]
    try:
        with _autocast(device, bool(config.amp)):
            logits = model(images)  # (B, C, H, W)
            loss = loss_fn(logits, masks)
        loss_value = _mean_over_processes(loss)
        if not math.isfinite(loss_value):
            raise NonFiniteLossError(
                f"the loss became {loss_value} at step {step} (learning rate {lr:.3g}); "
                "the weights were left as they were after the previous step. "
                "Lower --lr (or add warm-up), or turn off --amp."
            )
        optimizer.zero_grad(set_to_none=True)
        (scaler.scale(loss) if scaler is not None else loss).backward()
        if config.grad_clip is not None:
            if scaler is not None:
                scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        if scaler is not None:
            scaler.step(optimizer)  # skipped when the scaled gradients overflowed
            scaler.update()
        else:
            optimizer.step()
        with warnings.catch_warnings():
            # A scaler skips its first step(s) while it finds its scale, so the schedule then
            # moves before the optimiser: torch's warning is expected.
            if scaler is not None:
                warnings.filterwarnings(
                    "ignore", re.escape("Detected call of `lr_scheduler.step()`")
                )
            scheduler.step()
    except torch.OutOfMemoryError as exc:
        raise torch.OutOfMemoryError(f"{OOM_HINT}\n(original error: {exc})") from exc
    return loss_value, lr, logits.detach(), masks


def train_step(
    model: nn.Module,
    images: torch.Tensor,
    masks: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> float:
    """One plain optimiser step on ``images (B, 3, H, W)``, ``masks (B, H, W)``; returns the loss.

    The step notebook 07 writes by hand; :func:`fit`'s own step adds mixed precision, the NaN
    check, clipping and the schedule. Taught in notebook 07.
    """
    optimizer.zero_grad(set_to_none=True)  # backward() adds to .grad: start from nothing
    loss = loss_fn(model(images), masks)
    loss.backward()
    optimizer.step()
    return loss.item()  # a float: the step's autograd graph can be freed


def train_steps(
    model: nn.Module,
    loader: DataLoader | list[Any],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    steps: int,
) -> list[float]:
    """The bare training loop: ``steps`` steps, through ``loader`` as many times as needed.

    :func:`fit`'s loop without evaluation, checkpoints, mixed precision or resuming: one
    :func:`train_step` per batch, the schedule moved once per step (the poly policy counts
    iterations, not epochs). Returns every step's loss. Taught in notebook 07.
    """
    model.train()  # BatchNorm normalises with batch statistics, dropout drops
    losses: list[float] = []
    while len(losses) < steps:
        for images, masks in loader:
            losses.append(train_step(model, images, masks, optimizer, loss_fn))
            scheduler.step()
            if len(losses) == steps:
                break
    return losses


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader | Iterator,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    config: TrainConfig,
    device: torch.device,
    scaler: torch.amp.GradScaler | None = None,
    start_step: int = 0,
    max_steps: int | None = None,
    on_step: Callable[[int, float, float, torch.Tensor, torch.Tensor], None] | None = None,
) -> int:
    """Train over ``loader`` (one epoch, or until ``max_steps`` steps); return the last step.

    Steps count from ``start_step``; after each (1-based) step ``on_step(step, loss, lr, logits,
    masks)`` gets the learning rate that step used, logits ``(B, C, H, W)`` and masks
    ``(B, H, W)``. One pass, for your own loops (:func:`fit` is the whole run).
    Taught in notebook 07.
    """
    model.train()
    step = start_step
    for batch in loader:
        if max_steps is not None and step >= max_steps:
            break
        step += 1
        result = _train_step(
            model, batch, loss_fn=loss_fn, optimizer=optimizer, scheduler=scheduler,
            scaler=scaler, config=config, device=device, step=step,
        )  # fmt: skip
        if on_step is not None:
            on_step(step, *result)
    return step


def _labels_and_target(
    logits: torch.Tensor, masks: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted labels and target, both ``(B, H, W)`` int64, for the metrics."""
    if logits.shape[1] == 1:  # one-channel (binary) model: foreground where the logit is > 0
        labels = (logits[:, 0] > 0).long()  # (B, 1, H, W) -> (B, H, W)
    else:
        labels = logits.argmax(dim=1)  # (B, C, H, W) -> (B, H, W)
    if masks.ndim == 4:
        masks = masks[:, 0]  # (B, 1, H, W) -> (B, H, W), the binary losses' layout
    return labels, masks.long()


def _metrics_to_primitives(result: dict[str, Any]) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            value = value.tolist() if value.ndim else value.item()
        if isinstance(value, list):
            return [plain(v) for v in value]
        return None if isinstance(value, float) and math.isnan(value) else value  # JSON: no NaN

    return {key: plain(value) for key, value in result.items()}


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    num_classes: int | None = None,
    *,
    device: torch.device | str | None = None,
    amp: bool = False,
    channels_last: bool = False,
    ignore_index: int = IGNORE_INDEX,
) -> dict[str, Any]:
    """Validation metrics of ``model`` over ``loader`` (summed over DDP processes).

    ``num_classes`` defaults to the logits' channel count (2 for a one-channel binary model,
    which predicts ``logit > 0``); ``device`` to the model's own (that of its parameters). A
    DDP-wrapped model is evaluated through its ``.module``, so processes with different numbers
    of batches never wait for each other.

    Batches are ``(images (B, 3, h, w), masks)``. Masks ``(B, H, W)`` of the images' size are
    scored as they are; a list of masks at each picture's original size ``(H_i, W_i)``
    (:func:`~deeplab_utils.data.collate_original_size`) by the VOC protocol: each image's
    logits are cropped to the picture and resized back before the argmax
    (:func:`~deeplab_utils.evaluation.restore_original_size`).

    Returns :meth:`~deeplab_utils.metrics.SegmentationMetrics.compute`'s dict with plain
    lists/floats (NaN -> None): ``"pixel_accuracy"``, ``"iou"`` (C,), ``"miou"``, ``"dice"``
    (C,), ``"mean_dice"``, ``"confusion_matrix"`` (C, C). Taught in notebook 08.
    """
    model = _unwrap(model)
    device = model_device(model) if device is None else pick_device(device)
    was_training = model.training
    model.eval()
    metrics = None
    for batch in loader:
        images = _images_to(device, batch[0], channels_last)
        with _autocast(device, amp):
            logits = model(images)  # (B, C, h, w)
        if metrics is None:
            classes = num_classes or max(logits.shape[1], 2)
            metrics = SegmentationMetrics(classes, ignore_index=ignore_index)
        # On the batch's device: the NCCL backend all-reduces GPU tensors only.
        for batch_logits, masks in pairs_at_mask_size(logits, batch[1]):
            metrics.update(*_labels_and_target(batch_logits, masks))
    model.train(was_training)
    if metrics is None:
        raise ValueError("the evaluation loader yields no batch: the dataset is empty")
    metrics.sync()
    return _metrics_to_primitives(metrics.compute())


def confusion_matrix(
    model: nn.Module, loader: DataLoader | list[Any], num_classes: int
) -> torch.Tensor:
    """``(C, C)`` int64 pixel counts over ``loader``: row = target class, column = prediction.

    :func:`evaluate`'s core, for the loop notebook 08 writes by hand (eval mode, no gradients,
    the model's device, argmax, targets of 255 left out). Taught in notebook 08.
    """
    return torch.tensor(evaluate(model, loader, num_classes)["confusion_matrix"])


# --- fit: the whole run ---


def _due(step: int, every: int, last: int) -> bool:
    return step == last or (every > 0 and step % every == 0)


def _save(path: Path, *, model: nn.Module, step: int, history: History, **states: Any) -> None:
    """Rank 0 writes the checkpoint; every rank waits until it is complete."""
    if _rank() == 0:
        save_checkpoint(path, model=_unwrap(model), step=step, history=history.to_dict(), **states)
    if _is_distributed():
        dist.barrier()  # nobody reads a checkpoint rank 0 is still writing


def fit(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader | None = None,
    *,
    config: TrainConfig,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    num_classes: int | None = None,
    checkpoint_path: str | Path | None = None,
    resume: bool = False,
    device: torch.device | str | None = None,
    progress: bool = True,
    run_config: dict[str, Any] | None = None,
) -> History:
    """Train ``model`` for ``config.steps`` steps; evaluate and checkpoint every so often.

    ``model`` maps ``(B, 3, H, W)`` to logits ``(B, C, H, W)`` and may be DDP-wrapped (rank 0
    alone then shows progress and writes). ``num_classes`` defaults as in :func:`evaluate`.
    ``resume`` continues from ``checkpoint_path`` (weights, optimiser, schedule, RNG, step,
    history); ``run_config`` is stored in the checkpoint so that a resume can be checked. Under
    DDP the checkpoint holds rank 0's random generators: rank 0 restores them and every other
    rank ``r`` reseeds from ``(seed, r, step)``, so the ranks keep drawing their own
    augmentation and dropout (reproducibly, though not as the uninterrupted run did).
    Without ``progress``, each validation prints one line (for logs). Taught in notebook 07.

    Raises:
        NonFiniteLossError: the loss became NaN/inf (the hint names --lr and --amp).
        FileNotFoundError: ``resume=True`` but there is no checkpoint yet.
    """
    if resume and checkpoint_path is None:
        raise ValueError("resume=True needs a checkpoint_path to resume from")
    device, rank = pick_device(device), _rank()
    config = config.for_device(device)
    seed_everything(config.seed + rank)  # each process draws its own augmentation and dropout
    model.to(device)
    if isinstance(loss_fn, nn.Module):
        loss_fn.to(device)  # e.g. DiceCELoss's class weights
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, config=config)
    scheduler = build_scheduler(optimizer, config=config)
    scaler = torch.amp.GradScaler("cuda") if config.amp and device.type == "cuda" else None
    states = {"optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}
    history, step = History(), 0
    if resume:
        saved = load_checkpoint(
            checkpoint_path, model=_unwrap(model), map_location=device, restore_rng=rank == 0,
            **states,
        )  # fmt: skip
        history, step = History.from_dict(saved["history"]), saved["step"]
        if rank > 0:  # rank 0's saved generators would give every rank the same numbers
            entropy = np.random.SeedSequence([config.seed, rank, step])
            seed_everything(int(entropy.generate_state(1, np.uint64)[0]) % 2**63)
    batches = _batches(train_loader, seed=config.seed, start_step=step)
    # Wall time for mIoU-vs-minutes curves; a resumed run continues from its last validation.
    started = time.perf_counter() - (history.eval_seconds[-1] if history.eval_seconds else 0.0)
    model.train()
    quiet = not progress or rank > 0  # one progress bar, on rank 0
    with tqdm(total=config.steps, initial=step, desc="train", disable=quiet, mininterval=1) as bar:
        while step < config.steps:
            step += 1
            loss, lr, _, _ = _train_step(
                model, next(batches), loss_fn=loss_fn, config=config, device=device, step=step,
                optimizer=optimizer, scheduler=scheduler, scaler=scaler,
            )  # fmt: skip
            history.record_step(step, loss, lr)
            bar.update(1)
            if config.log_every and step % config.log_every == 0:
                bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            if val_loader is not None and _due(step, config.eval_every, config.steps):
                metrics = evaluate(
                    model, val_loader, num_classes, device=device, amp=config.amp,
                    channels_last=config.channels_last,
                )  # fmt: skip
                history.record_eval(step, metrics, time.perf_counter() - started)
                miou = "n/a" if metrics["miou"] is None else f"{metrics['miou']:.3f}"
                bar.set_postfix(loss=f"{loss:.4f}", val_miou=miou)
                if bar.disable and rank == 0:
                    print(f"step {step}/{config.steps}: val mIoU {miou}")
            if checkpoint_path is not None and _due(step, config.checkpoint_every, config.steps):
                _save(
                    Path(checkpoint_path), model=model, step=step, history=history,
                    config=config.to_dict(), run_config=run_config, **states,
                )  # fmt: skip
    return history
