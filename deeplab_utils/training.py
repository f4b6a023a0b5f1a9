"""The training loop: the poly schedule, the optimiser, the data order, and :func:`fit`.

Training layer (4). :func:`fit` is the whole run on one screen, as nanoGPT's ``train.py``, for
any model mapping ``(B, 3, H, W)`` to logits ``(B, C, H, W)``. The data order is a function of the
seed and the step alone (:class:`StepSampler`) and a checkpoint carries every state, so a resumed
one-process CPU run (``workers=0``) ends with exactly the weights of an uninterrupted one.
:func:`train_step` and :func:`train_steps` are the plain step and loop the learner writes.
Taught in notebook 07.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

# The text bar, not tqdm.auto's widget: the same in a terminal, Jupyter, Colab and a stored
# notebook (a widget's stored text is its first state, 0 %).
from tqdm import tqdm

from .checkpoint import load_checkpoint, save_checkpoint
from .config import RunConfig, peak_lr, settle
from .evaluation import eval_loader, evaluate
from .run import Run
from .runtime import autocast, pick_device, rank_and_world, seed_everything, to_layout

SGD_MOMENTUM = 0.9  # DeepLabv3 (arXiv 1706.05587), Sec. 4, kept by DeepLabv3+
SGD_WEIGHT_DECAY = 1e-4  # DeepLabv3, Sec. 4: "weight decay 0.0001"

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Optimizer = torch.optim.Optimizer


class NonFiniteLossError(FloatingPointError):
    """A NaN or infinite loss, caught before it touches the weights (``fit``) or the checkpoint
    (``course.train_with``, which says so in ``kept``). Taught in notebook 07."""

    def __init__(
        self, loss: float, step: int, lr: float, kept: str = "the weights were left as they were"
    ) -> None:
        super().__init__(
            f"the loss became {loss} at step {step} (learning rate {lr:.3g}); {kept}. "
            "Lower --lr (or add warm-up), or turn off --amp."
        )


def poly_lr_lambda(step: int, total_steps: int, power: float = 0.9, warmup_steps: int = 0) -> float:
    """Multiplier of the peak learning rate at 0-based ``step``: the paper's "poly" policy.

    ``(1 - step / total_steps) ** power`` (DeepLabv3, Sec. 4), times a linear warm-up
    ``(step + 1) / warmup_steps`` during the first ``warmup_steps`` steps; 0 from
    ``total_steps`` on. Taught in notebook 07.
    """
    if step >= total_steps:
        return 0.0
    factor = (1.0 - step / total_steps) ** power
    if step < warmup_steps:
        factor *= (step + 1) / warmup_steps
    return factor


def build_optimizer(model: nn.Module, config: RunConfig) -> Optimizer:
    """SGD with momentum 0.9 and weight decay 1e-4 (the paper's), or Adam (the seed's choice),
    at the run's peak learning rate. Taught in notebook 07."""
    params, lr = [p for p in model.parameters() if p.requires_grad], peak_lr(config)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr, momentum=SGD_MOMENTUM, weight_decay=SGD_WEIGHT_DECAY)
    # The same Adam in one kernel instead of a loop over every tensor (CPU and CUDA tensors).
    fused = bool(params) and {p.device.type for p in params} <= {"cpu", "cuda"}
    return torch.optim.Adam(params, lr, fused=fused or None)


class StepSampler(Sampler[list[int]]):
    """The indices of each step's batch, from step ``start`` to ``end - 1`` (``end``: by
    default ``config.steps``).

    Epoch ``e`` is a permutation of the dataset drawn from ``(config.seed, e)`` alone, cut into
    global batches of ``batch_size * world`` (an epoch's remainder is dropped: BatchNorm
    dislikes a batch of one); this process takes its rank's slice of each. So any step's batch
    is known without reading the ones before it: a resumed run starts at its step, on every rank.
    """

    def __init__(self, size: int, config: RunConfig, start: int = 0, end: int | None = None):
        self.size, self.start = size, start
        self.batch, self.seed = config.batch_size, config.seed
        self.end = config.steps if end is None else end
        self.rank, self.world = rank_and_world()
        self.per_epoch = size // (self.batch * self.world)
        if self.per_epoch == 0:
            raise ValueError(
                f"batch_size {self.batch} x {self.world} process(es) is larger than the training "
                f"set ({size} samples): lower batch_size or use more samples"
            )

    def __len__(self) -> int:
        return self.end - self.start

    def __iter__(self) -> Iterator[list[int]]:
        epoch, order = -1, np.empty(0, dtype=np.int64)
        for step in range(self.start, self.end):
            if step // self.per_epoch != epoch:
                epoch = step // self.per_epoch
                order = np.random.default_rng([self.seed, epoch]).permutation(self.size)
            first = ((step % self.per_epoch) * self.world + self.rank) * self.batch
            yield order[first : first + self.batch].tolist()


def train_loader(
    dataset: Dataset, config: RunConfig, *, start: int = 0, end: int | None = None
) -> DataLoader:
    """The batches of steps ``start`` to ``end - 1`` (default: to ``config.steps - 1``; this
    process's share under DDP)."""
    sampler = StepSampler(len(dataset), config, start, end)
    # Workers draw their augmentation seeds from this generator: a function of the run's seed,
    # rank and first step, not of whatever drew from torch's global one before.
    seeds = torch.Generator().manual_seed(config.seed * 1_000_003 + sampler.rank * 10_007 + start)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=config.workers,
                      generator=seeds, pin_memory=torch.cuda.is_available())  # fmt: skip


@dataclass
class History:
    """What :func:`fit` saw: each step's loss and learning rate, each validation's metrics."""

    step: list[int] = field(default_factory=list)  # 1-based optimiser step
    loss: list[float] = field(default_factory=list)  # training loss of that step
    lr: list[float] = field(default_factory=list)  # learning rate used by that step
    eval_step: list[int] = field(default_factory=list)  # step after which validation ran
    val: list[dict[str, Any]] = field(default_factory=list)  # evaluate()'s metrics and loss
    eval_seconds: list[float] = field(default_factory=list)  # training time until then

    def record_step(self, step: int, loss: float, lr: float) -> None:
        self.step.append(step)
        self.loss.append(loss)
        self.lr.append(lr)

    def record_eval(self, step: int, metrics: dict[str, Any], seconds: float) -> None:
        self.eval_step.append(step)
        self.val.append(metrics)
        self.eval_seconds.append(seconds)

    @classmethod
    def from_dict(cls, data: dict[str, list]) -> History:
        """The history a checkpoint saved (``dataclasses.asdict`` of one)."""
        return cls(**data)


def train_step(
    model: nn.Module, images: torch.Tensor, masks: torch.Tensor, optimizer: Optimizer, loss_fn: Loss
) -> float:
    """One plain optimiser step on ``images (B, 3, H, W)``, ``masks (B, H, W)``; returns the loss.

    The step notebook 07 has the learner write; :func:`fit`'s own step adds mixed precision,
    the NaN check and clipping.
    """
    optimizer.zero_grad(set_to_none=True)  # backward() adds to .grad: start from nothing
    loss = loss_fn(model(images), masks)
    loss.backward()
    optimizer.step()
    return loss.item()  # a float: the step's autograd graph can be freed


def train_steps(
    model: nn.Module, loader: Any, loss_fn: Loss, optimizer: Optimizer, scheduler: Any, steps: int
) -> list[float]:
    """The bare loop: ``steps`` :func:`train_step` s, through ``loader`` as often as needed, the
    schedule moved once per step (the poly policy counts iterations); returns every loss.

    The loop notebook 07 has the learner write.
    """
    model.train()  # BatchNorm normalises with batch statistics, dropout drops
    losses: list[float] = []
    while len(losses) < steps:
        for images, masks in loader:  # a new pass: a DataLoader reshuffles
            losses.append(train_step(model, images, masks, optimizer, loss_fn))
            scheduler.step()
            if len(losses) == steps:
                break
    return losses


def _mean_over_ranks(loss: torch.Tensor) -> float:
    value = loss.detach().float().clone()
    if dist.is_available() and dist.is_initialized():  # every rank then stops on a NaN together
        dist.all_reduce(value)
        value /= dist.get_world_size()
    return value.item()


def _resized(images: torch.Tensor, masks: torch.Tensor, scale: float | None) -> tuple:
    """A batch scaled by ``scale`` for progressive resizing: images ``(B, 3, s*H, s*W)``
    (bilinear, antialiased), masks ``(B, s*H, s*W)`` or ``(B, 1, s*H, s*W)`` (nearest: the labels,
    255 included, stay labels)."""
    if scale is None or scale == 1:
        return images, masks
    size = [round(scale * side) for side in images.shape[-2:]]
    images = F.interpolate(images, size, mode="bilinear", align_corners=False, antialias=True)
    planes = masks.float() if masks.ndim == 4 else masks[:, None].float()  # (B, 1, H, W)
    resized = F.interpolate(planes, size, mode="nearest").to(masks.dtype)
    return images, resized if masks.ndim == 4 else resized[:, 0]


def _due(step: int, every: int, last: int) -> bool:
    return step == last or (every > 0 and step % every == 0)


def _show_validation(bar: tqdm, step: int, loss: float, metrics: dict[str, Any]) -> None:
    """The validation's mIoU on the progress bar, or without a bar a line for the logs."""
    miou = "n/a" if metrics["miou"] is None else f"{metrics['miou']:.3f}"
    bar.set_postfix(loss=f"{loss:.4f}", val_miou=miou)
    if bar.disable and rank_and_world()[0] == 0:
        print(f"step {step}/{bar.total}: val mIoU {miou}")


def fit(run: Run, *, resume: bool = False, progress: bool = True) -> History:
    """Train ``run.model`` on ``run.train_set`` as ``run.config`` says; validate and checkpoint.

    Each step: the poly learning rate, a batch (scaled by ``start_scale`` in the first
    ``start_part`` of the run), forward under autocast, a NaN check before any weight changes,
    backward, clip, step. Every ``val_every`` steps, and at the end, it scores
    ``run.val_set`` and saves ``run.checkpoint`` (if the run has an ``out`` folder), which
    ``resume`` continues. Under torchrun ``run.model`` is DDP-wrapped: each process trains on
    its share of every batch, and rank 0 writes. Taught in notebook 07.
    """
    device, rank = pick_device(run.config.device), rank_and_world()[0]
    cfg, model = settle(run.config, device), run.model
    seed_everything(cfg.seed + rank)  # each process draws its own dropout and augmentation
    layout = torch.channels_last if cfg.channels_last else torch.preserve_format  # NHWC or not
    to_layout(model, device, cfg.channels_last)  # NHWC on a CPU, but for its 4x4 stages
    loss_fn = run.loss_fn.to(device) if isinstance(run.loss_fn, nn.Module) else run.loss_fn
    optimizer = build_optimizer(model, cfg)
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp and device.type == "cuda")
    parts, step, history = {"model": model, "optimizer": optimizer, "scaler": scaler}, 0, History()
    if resume:
        saved = load_checkpoint(run.checkpoint, **parts, restore_rng=True)
        step, history = saved["step"], History.from_dict(saved["history"])
    batches = iter(train_loader(run.train_set, cfg, start=step))
    val_loader = None if run.val_set is None else eval_loader(run.val_set, cfg)
    started = time.perf_counter() - (history.eval_seconds or [0.0])[-1]
    model.train()
    with tqdm(total=cfg.steps, initial=step, disable=not progress or rank > 0) as bar:
        while step < cfg.steps:
            lr = cfg.lr * poly_lr_lambda(step, cfg.steps, cfg.poly_power, cfg.warmup_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            early = step < cfg.start_part * cfg.steps  # progressive resizing: small, then full
            images, masks = _resized(*next(batches), cfg.start_scale if early else None)
            with autocast(device, cfg.amp):
                logits = model(images.to(device, memory_format=layout))  # (B, C, H, W)
                loss = loss_fn(logits, masks.to(device))
            loss_value = _mean_over_ranks(loss)
            if not math.isfinite(loss_value):
                raise NonFiniteLossError(loss_value, step + 1, lr)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.grad_clip is not None:
                scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)  # fp16 skips the step if its scaled gradients overflowed
            scaler.update()
            step += 1
            history.record_step(step, loss_value, lr)
            bar.update()
            bar.set_postfix(loss=f"{loss_value:.4f}", refresh=False)
            if _due(step, cfg.val_every, cfg.steps):  # validate and checkpoint, as nanoGPT
                if val_loader is not None:
                    metrics = evaluate(model, val_loader, device=device, amp=cfg.amp,
                                       loss_fn=loss_fn)  # fmt: skip
                    history.record_eval(step, metrics, time.perf_counter() - started)
                    _show_validation(bar, step, loss_value, metrics)
                if run.checkpoint:
                    save_checkpoint(run.checkpoint, step=step, config=cfg, history=history, **parts)
    return history
