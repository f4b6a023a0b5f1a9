"""The training loop: optimiser, poly learning-rate schedule, evaluation and resumable ``fit``.

A plain loop meant to be read in one sitting (notebook 07), not a framework. It is generic:
any ``nn.Module`` mapping images ``(B, 3, H, W)`` to logits ``(B, C, H, W)``, any loss
``loss_fn(logits, masks)``, any dataset of ``(image, mask)`` pairs.

Reproducibility: with a loader from :func:`make_loader` (``workers=0``) a CPU run interrupted at
any step and resumed from its checkpoint ends with exactly the weights of an uninterrupted run,
because the data order is a function of ``(seed, epoch)`` alone and the checkpoint carries the
optimiser, scheduler, scaler, step and random-number-generator states.
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

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from .checkpoint import load_checkpoint, save_checkpoint
from .runtime import pick_device, seed_everything

__all__ = [
    "History",
    "NonFiniteLossError",
    "ResumableSampler",
    "TrainConfig",
    "build_optimizer",
    "build_scheduler",
    "evaluate",
    "fit",
    "make_loader",
    "poly_lr_lambda",
    "train_one_epoch",
]

SGD_MOMENTUM = 0.9  # paper, Sec. 4 (training protocol of DeepLabv3, Sec. 4)
SGD_WEIGHT_DECAY = 1e-4  # DeepLabv3 (arXiv 1706.05587), Sec. 4: "weight decay 0.0001"
POLY_POWER = 0.9  # DeepLabv3, Sec. 4: lr * (1 - iter/max_iter)^0.9

OOM_HINT = (
    "the GPU ran out of memory. Lower, in this order: --batch-size, --image-size, use "
    "--output-stride 16 (not 8), and turn on --amp. On Colab, also restart the runtime to free "
    "memory held by earlier cells."
)


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; raised before the bad gradient touches the weights.

    Taught in notebook 07.
    """


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides how a model is trained (not what model, nor on which data).

    Taught in notebook 07.
    """

    steps: int = 800  # total optimiser steps; the paper's poly schedule counts iterations
    batch_size: int = 8  # images per step (per process under DDP); read by make_loader
    optimizer: Literal["sgd", "adam"] = "adam"  # "sgd" = paper's recipe; "adam" = the seed's
    lr: float = 1e-3  # peak learning rate (paper: 0.007 for SGD on VOC, Sec. 4)
    warmup_steps: int = 0  # linear warm-up from lr/warmup_steps to lr before the poly decay
    poly_power: float = POLY_POWER  # exponent of the poly decay; 0 keeps lr constant
    grad_clip: float | None = None  # max global gradient norm, or None for no clipping
    amp: bool = False  # mixed precision: fp16 + GradScaler on CUDA, bf16 autocast on CPU
    channels_last: bool = False  # NHWC memory layout: faster convolutions on recent GPUs and CPUs
    eval_every: int = 0  # evaluate every this many steps; 0 = only at the end
    checkpoint_every: int = 0  # save every this many steps; 0 = only at the end
    seed: int = 0  # seeds weights' initialisation, data order and augmentation
    log_every: int = 10  # refresh the progress bar's loss / running mIoU every this many steps

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name in ("warmup_steps", "eval_every", "checkpoint_every", "seed", "log_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if self.warmup_steps >= self.steps:
            raise ValueError(
                f"warmup_steps must be smaller than steps ({self.steps}), got {self.warmup_steps}"
            )
        if not (isinstance(self.poly_power, int | float) and self.poly_power >= 0):
            raise ValueError(f"poly_power must be a number >= 0, got {self.poly_power!r}")
        if self.grad_clip is not None and not (
            isinstance(self.grad_clip, int | float) and self.grad_clip > 0
        ):
            raise ValueError(f"grad_clip must be None or a positive number, got {self.grad_clip!r}")

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of primitives (JSON-able, and loadable with ``weights_only=True``)."""
        return dataclasses.asdict(self)


@dataclass
class History:
    """What happened during :func:`fit`: loss and LR at every step, metrics at every evaluation.

    Taught in notebook 07.
    """

    step: list[int] = field(default_factory=list)  # 1-based optimiser step
    loss: list[float] = field(default_factory=list)  # training loss of that step
    lr: list[float] = field(default_factory=list)  # learning rate used by that step
    eval_step: list[int] = field(default_factory=list)  # step after which validation ran
    val: list[dict[str, Any]] = field(default_factory=list)  # metrics of that evaluation
    eval_seconds: list[float] = field(default_factory=list)  # training time until then

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (lists of numbers; metric tensors become lists)."""
        return {
            "step": list(self.step),
            "loss": list(self.loss),
            "lr": list(self.lr),
            "eval_step": list(self.eval_step),
            "val": [dict(v) for v in self.val],
            "eval_seconds": list(self.eval_seconds),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        """Rebuild a History from :meth:`to_dict`'s output."""
        return cls(**{f.name: list(data.get(f.name, [])) for f in dataclasses.fields(cls)})


# ---------------------------------------------------------------------------------------------
# Learning-rate schedule
# ---------------------------------------------------------------------------------------------


def poly_lr_lambda(
    step: int, *, total_steps: int, power: float = POLY_POWER, warmup_steps: int = 0
) -> float:
    """Multiplier of the base learning rate at 0-based ``step``: the paper's "poly" policy.

    ``(1 - step / total_steps) ** power`` (DeepLabv3, Sec. 4), times a linear warm-up
    ``(step + 1) / warmup_steps`` during the first ``warmup_steps`` steps. 0 from
    ``total_steps`` on. Taught in notebook 07.

    Raises:
        ValueError: for a negative step, a non-positive ``total_steps`` or a negative power.
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
    """A ``LambdaLR`` following :func:`poly_lr_lambda`; call ``.step()`` once per optimiser step.

    Taught in notebook 07.
    """
    schedule = functools.partial(
        poly_lr_lambda,
        total_steps=config.steps,
        power=config.poly_power,
        warmup_steps=config.warmup_steps,
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def build_optimizer(model: nn.Module, *, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD with momentum 0.9 and weight decay 1e-4 (paper, Sec. 4), or Adam (the seed's choice).

    Taught in notebook 07.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=SGD_MOMENTUM, weight_decay=SGD_WEIGHT_DECAY
        )
    # The same Adam in one fused kernel instead of a loop over ~300 tensors: a step of the
    # 27 M-weight model takes 17 instead of 60 ms on a 2-core CPU, 10 % of a training step.
    # Fused Adam runs on CPU and CUDA tensors (torch >= 2.4); elsewhere (MPS) the plain loop.
    fused = bool(params) and {p.device.type for p in params} <= {"cpu", "cuda"}
    return torch.optim.Adam(params, lr=config.lr, fused=fused or None)


# ---------------------------------------------------------------------------------------------
# Data order that a checkpoint can reproduce
# ---------------------------------------------------------------------------------------------


class ResumableSampler(DistributedSampler):
    """A ``DistributedSampler`` that can start mid-epoch, so a resumed run sees the same batches.

    The order of epoch ``e`` is a function of ``(seed, e)`` alone (torch's DistributedSampler
    shuffles with a generator seeded by ``seed + epoch``). ``set_start(n)`` skips the first ``n``
    indices of this process's share, without loading them. Outside DDP use
    ``num_replicas=1, rank=0`` (the defaults here). Taught in notebook 07.
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
) -> DataLoader:
    """A DataLoader whose order :func:`fit` can reproduce on resume (see :class:`ResumableSampler`).

    Args:
        shuffle: True for training (new order each epoch), False for evaluation.
        drop_last: drop the last incomplete batch; defaults to ``shuffle`` (BatchNorm dislikes
            a batch of one).
        num_replicas, rank: the DDP world size and this process's rank (1, 0 without DDP).

    Taught in notebook 07.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    drop_last = shuffle if drop_last is None else drop_last
    sampler = ResumableSampler(
        dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed
    )
    # An own generator, so that starting an iterator does not draw from torch's global RNG
    # (which would shift dropout and augmentation after a resume).
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
    )


def _start_epoch(loader: DataLoader, epoch: int, *, seed: int, skip_batches: int) -> Iterator:
    """An iterator over ``loader`` for ``epoch``, the first ``skip_batches`` batches skipped."""
    sampler = loader.sampler
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    if loader.generator is not None:
        # Workers' augmentation seeds come from this generator: make them a function of epoch.
        loader.generator.manual_seed(seed * 100_003 + epoch)
    if skip_batches and hasattr(sampler, "set_start") and loader.batch_size is not None:
        sampler.set_start(skip_batches * loader.batch_size)
        return iter(loader)
    iterator = iter(loader)
    # A loader we cannot position: read and drop the consumed batches (order exact only if the
    # loader's order is itself deterministic).
    for _ in range(skip_batches):
        next(iterator)
    return iterator


# ---------------------------------------------------------------------------------------------
# One step, one epoch, evaluation
# ---------------------------------------------------------------------------------------------


def _autocast(device: torch.device, enabled: bool) -> torch.autocast:
    # fp16 on CUDA (with a GradScaler against underflow); bf16 on CPU, whose range needs no scaler.
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype, enabled=enabled)


def _to_device(
    batch: Any, device: torch.device, channels_last: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    images, masks = batch[0], batch[1]
    images = images.to(device, non_blocking=True)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, masks.to(device, non_blocking=True)


def _is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _rank() -> int:
    return dist.get_rank() if _is_distributed() else 0


def _unwrap(model: nn.Module) -> nn.Module:
    # DistributedDataParallel keeps the real model in .module; checkpoints hold the real one.
    return getattr(model, "module", model)


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
    images, masks = _to_device(batch, device, config.channels_last)
    lr = optimizer.param_groups[0]["lr"]
    try:
        with _autocast(device, config.amp):
            logits = model(images)  # (B, C, H, W)
            loss = loss_fn(logits, masks)
        loss_value = loss.detach().float().clone()
        if _is_distributed():
            # Every rank sees the same mean loss, so all stop together on a NaN.
            dist.all_reduce(loss_value)
            loss_value /= dist.get_world_size()
        loss_value = loss_value.item()
        if not math.isfinite(loss_value):
            raise NonFiniteLossError(
                f"the loss became {loss_value} at step {step} (learning rate {lr:.3g}); "
                "the weights were left as they were after the previous step. "
                "Lower --lr (or add warm-up), or turn off --amp."
            )
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            if config.grad_clip is not None:
                scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            scaler.step(optimizer)  # skipped when the scaled gradients overflowed
            scaler.update()
            with warnings.catch_warnings():
                # The scaler skips the first step(s) while it finds its scale, so the schedule
                # then moves before the optimiser; torch warns about that. Expected here only.
                warnings.filterwarnings(
                    "ignore", re.escape("Detected call of `lr_scheduler.step()`")
                )
                scheduler.step()
        else:
            loss.backward()
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
    except torch.OutOfMemoryError as exc:
        raise torch.OutOfMemoryError(f"{OOM_HINT}\n(original error: {exc})") from exc
    return loss_value, lr, logits.detach(), masks


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

    Steps are counted from ``start_step``; ``on_step(step, loss, lr, logits, masks)`` is called
    after each (1-based) step with the learning rate that step used, logits ``(B, C, H, W)`` and
    masks ``(B, H, W)``.
    Taught in notebook 07.

    Raises:
        NonFiniteLossError: when the loss is NaN or infinite (before the weights change).
        torch.OutOfMemoryError: with a message naming the settings to lower.
    """
    model.train()
    step = start_step
    for batch in loader:
        if max_steps is not None and step >= max_steps:
            break
        loss, lr, logits, masks = _train_step(
            model,
            batch,
            loss_fn=loss_fn,
            optimizer=optimizer,
            scheduler=scheduler,
            scaler=scaler,
            config=config,
            device=device,
            step=step + 1,
        )
        step += 1
        if on_step is not None:
            on_step(step, loss, lr, logits, masks)
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
    out: dict[str, Any] = {}
    for key, value in result.items():
        if isinstance(value, torch.Tensor):
            value = value.tolist() if value.ndim else value.item()
        if isinstance(value, float) and math.isnan(value):
            value = None  # JSON has no NaN
        if isinstance(value, list):
            value = [None if isinstance(v, float) and math.isnan(v) else v for v in value]
        out[key] = value
    return out


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    num_classes: int,
    *,
    device: torch.device | str | None = None,
    amp: bool = False,
    channels_last: bool = False,
    ignore_index: int = 255,
) -> dict[str, Any]:
    """Validation metrics of ``model`` over ``loader`` (all-reduced across DDP processes).

    Each batch is ``(images (B, 3, h, w), masks)``. Masks of the images' size, ``(B, H, W)``,
    are scored as they are. Masks at each picture's original size (a list of ``(H_i, W_i)``
    from a val set built with ``original_size_masks=True`` and batched by
    :func:`~deeplab_utils.data.collate_original_size`) are scored by the standard VOC
    protocol: each image's logits are cropped to the picture (the input holds it resized to
    longer side ``max(h, w)``, padding bottom/right) and resized back to ``(H_i, W_i)``
    before the argmax (:func:`~deeplab_utils.evaluation.restore_original_size`).

    Returns the dict of :class:`~deeplab_utils.metrics.SegmentationMetrics.compute` with tensors
    turned into plain lists/floats (NaN -> None): ``"pixel_accuracy"``, ``"iou"`` (C,),
    ``"miou"``, ``"dice"`` (C,), ``"mean_dice"``, ``"confusion_matrix"`` (C, C).
    Taught in notebook 08.
    """
    from .evaluation import pairs_at_mask_size
    from .metrics import SegmentationMetrics

    device = pick_device(device)
    was_training = model.training
    model.eval()
    metrics = SegmentationMetrics(num_classes, ignore_index=ignore_index)
    for batch in loader:
        images = batch[0].to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with _autocast(device, amp):
            logits = model(images)  # (B, C, h, w)
        # On the batch's device: the NCCL backend all-reduces GPU tensors only.
        for batch_logits, masks in pairs_at_mask_size(logits, batch[1]):
            metrics.update(*_labels_and_target(batch_logits, masks))
    metrics.sync()
    model.train(was_training)
    return _metrics_to_primitives(metrics.compute())


# ---------------------------------------------------------------------------------------------
# fit: the whole run
# ---------------------------------------------------------------------------------------------


def _steps_per_epoch(loader: DataLoader) -> int:
    sampler = loader.sampler
    if isinstance(sampler, ResumableSampler):
        saved, sampler.start = sampler.start, 0
        n = len(loader)
        sampler.start = saved
    else:
        n = len(loader)
    if n == 0:
        raise ValueError(
            "the training loader yields no batch: the dataset is smaller than one batch; "
            "lower the batch size or use more samples"
        )
    return n


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
) -> History:
    """Train ``model`` for ``config.steps`` optimiser steps; evaluate and checkpoint on the way.

    Args:
        model: maps images ``(B, 3, H, W)`` to logits ``(B, C, H, W)``; may be wrapped in
            DistributedDataParallel (only rank 0 then shows progress and writes checkpoints).
        train_loader: yields ``(images, masks)``; use :func:`make_loader` for exact resume.
        val_loader: evaluated every ``config.eval_every`` steps and at the end.
        loss_fn: ``loss_fn(logits, masks) -> scalar``.
        num_classes: for the metrics; defaults to the logits' channel count (2 for a
            one-channel binary model, whose prediction is ``logit > 0``).
        checkpoint_path: where to save every ``config.checkpoint_every`` steps and at the end.
        resume: continue from ``checkpoint_path`` (weights, optimiser, schedule, RNG, step).
        device: defaults to :func:`~deeplab_utils.runtime.pick_device`.
        progress: show a tqdm progress bar with loss and running training mIoU; without it,
            each validation prints one line (for logs).

    Raises:
        NonFiniteLossError: the loss became NaN/inf (the hint names --lr and --amp).
        FileNotFoundError: ``resume=True`` but there is no checkpoint yet.

    Taught in notebook 07.
    """
    from tqdm.auto import tqdm

    from .metrics import SegmentationMetrics

    if resume and checkpoint_path is None:
        raise ValueError("resume=True needs a checkpoint_path to resume from")
    device = pick_device(device)
    seed_everything(config.seed)
    rank = _rank()
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, config=config)
    scheduler = build_scheduler(optimizer, config=config)
    scaler = torch.amp.GradScaler("cuda") if config.amp and device.type == "cuda" else None
    history = History()
    step = 0
    if resume:
        state = load_checkpoint(
            checkpoint_path,
            model=_unwrap(model),
            optimizer=optimizer,
            scheduler=scheduler,
            scaler=scaler,
            map_location=device,
            restore_rng=True,
        )
        step = state["step"]
        if state.get("history"):
            history = History.from_dict(state["history"])

    def save(at_step: int) -> None:
        if checkpoint_path is not None and rank == 0:
            save_checkpoint(
                checkpoint_path,
                model=_unwrap(model),
                optimizer=optimizer,
                scheduler=scheduler,
                scaler=scaler,
                step=at_step,
                config=config.to_dict(),
                history=history.to_dict(),
            )
        if _is_distributed():
            dist.barrier()  # nobody reads a checkpoint rank 0 is still writing

    steps_per_epoch = _steps_per_epoch(train_loader)
    running = None  # training metrics of the current epoch, created once C is known
    bar = tqdm(total=config.steps, initial=step, disable=not progress or rank != 0, desc="train")
    # Wall time of the run, for mIoU-vs-minutes curves; a resumed run continues the clock from
    # its last validation.
    clock_start = time.perf_counter() - (history.eval_seconds[-1] if history.eval_seconds else 0)
    postfix: dict[str, str] = {}

    def on_step(
        at_step: int, loss: float, lr: float, logits: torch.Tensor, masks: torch.Tensor
    ) -> None:
        nonlocal running, num_classes
        history.step.append(at_step)
        history.loss.append(loss)
        history.lr.append(lr)
        if num_classes is None:
            num_classes = max(logits.shape[1], 2)  # a one-channel model predicts 2 classes
        if running is None:
            running = SegmentationMetrics(num_classes)
        running.update(*_labels_and_target(logits, masks))
        bar.update(1)
        if config.log_every and (at_step % config.log_every == 0 or at_step == config.steps):
            postfix.update(loss=f"{loss:.4f}", miou=f"{running.compute()['miou']:.3f}")
            bar.set_postfix(postfix)
        if val_loader is not None and (
            (config.eval_every and at_step % config.eval_every == 0) or at_step == config.steps
        ):
            result = evaluate(
                model,
                val_loader,
                num_classes,
                device=device,
                amp=config.amp,
                channels_last=config.channels_last,
            )
            history.eval_step.append(at_step)
            history.val.append(result)
            history.eval_seconds.append(time.perf_counter() - clock_start)
            if bar.disable and rank == 0:
                print(f"step {at_step}/{config.steps}: val mIoU {result['miou'] or 0:.3f}")
            postfix["val_miou"] = f"{result['miou'] or 0:.3f}"
            bar.set_postfix(postfix)
        if (config.checkpoint_every and at_step % config.checkpoint_every == 0) or (
            at_step == config.steps
        ):
            save(at_step)

    try:
        while step < config.steps:
            epoch, done_in_epoch = divmod(step, steps_per_epoch)
            batches = _start_epoch(
                train_loader, epoch, seed=config.seed, skip_batches=done_in_epoch
            )
            if done_in_epoch == 0 and running is not None:
                running.reset()
            step = train_one_epoch(
                model,
                batches,
                loss_fn=loss_fn,
                optimizer=optimizer,
                scheduler=scheduler,
                config=config,
                device=device,
                scaler=scaler,
                start_step=step,
                max_steps=config.steps,
                on_step=on_step,
            )
    finally:
        bar.close()
    return history
