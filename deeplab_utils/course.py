"""The notebooks' run: the main job's recipe at a laptop's or a GPU's size, trained once.

Teaching-aid layer. Notebooks 07 and 08 build their config with :func:`course_config` (the main
job's :class:`~deeplab_utils.config.RunConfig`, smaller) and their run with
:func:`~deeplab_utils.run.build_run`. Notebook 07 trains the network you assembled
(:func:`your_network`) with your own loop (:func:`train_with`); notebook 08 loads what it saved
or, run on its own, trains the package's network from the same weights (:func:`load_or_train`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from .aspp import aspp_rates
from .backbone import IMAGENET
from .checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from .checks.decoder import _low_level_first, load_reference_weights
from .config import ResumeError, RunConfig, resumed, settle
from .evaluation import eval_loader, evaluate
from .model import DeepLabV3Plus
from .run import Run, build_run
from .runtime import pick_device, seed_everything, to_layout
from .training import (
    History,
    NonFiniteLossError,
    _resized,
    _show_validation,
    build_optimizer,
    fit,
    train_loader,
)  # fmt: skip

# The short run is for a 2-core laptop CPU and CI (notebook 07 trains it in 4-5 minutes),
# the full one for a GPU such as Colab's T4; both at full size throughout (in a run this short,
# progressive resizing cost more than it gave). In 350 steps Adam 1e-2 beat the main job's 8e-3
# (both over a fifth of the steps) on seeds 0-2 (benchmarks/README.md). The full run keeps the
# recipe it has always had, Adam 5e-3 over a tenth: no GPU run has scored another. Real
# photographs need a GPU: they fine-tune from ImageNet weights as the paper does (SGD, batch 16,
# 513-pixel crops for VOC, Sec. 4; 384 for the smaller Pets pictures; full size throughout) on
# shortened schedules; their short runs only try the code path.
# 7 validations: the curve section 7 reads.
SHORT_RUN = RunConfig(steps=350, lr=1e-2, train_samples=5000, val_samples=256, start_scale=1.0,
                      val_every=50)  # fmt: skip
FULL_RUN = replace(SHORT_RUN, image_size=128, steps=3000, lr=5e-3, warmup_part=0.1,
                   train_samples=8000, val_every=250)  # fmt: skip
_REAL = RunConfig(backbone_weights=IMAGENET, optimizer="sgd")
_TRY = {"image_size": 128, "batch_size": 4, "steps": 20, "train_samples": 64, "val_samples": 16}
RUNS = {  # (dataset, full): the run
    ("shapes", False): SHORT_RUN,
    ("shapes", True): FULL_RUN,
    ("pets", True): replace(_REAL, dataset="pets", image_size=384, steps=2000, val_every=500),
    ("voc", True): replace(_REAL, dataset="voc", image_size=513, steps=10_000, val_every=1000),
    ("pets", False): replace(_REAL, dataset="pets", val_every=20, **_TRY),
    ("voc", False): replace(_REAL, dataset="voc", val_every=20, **_TRY),
}


def course_config(workdir: str | Path, *, full: bool = False, dataset: str = "shapes") -> RunConfig:
    """The notebooks' run: short (a laptop, CI) or ``full`` (a GPU), on ``dataset``.

    The device is not consulted (the full run works on a CPU too, only slowly), so a notebook
    does the same wherever it runs. Real datasets are read from ``workdir/data``; the run is
    saved in ``workdir/runs/course-short`` (``course-full``, ``course-pets-full``, ...).
    """
    if not isinstance(full, bool) or (dataset, full) not in RUNS:
        raise ValueError(f"dataset must be 'shapes', 'pets' or 'voc' and full True or False, "
                         f"got {dataset!r} and {full!r}")  # fmt: skip
    name = f"course-{'' if dataset == 'shapes' else dataset + '-'}{'full' if full else 'short'}"
    workdir = Path(workdir)
    return replace(
        RUNS[dataset, full], data_dir=str(workdir / "data"), out=str(workdir / "runs" / name)
    )


def _continued(run: Run) -> bool:
    """Whether ``run`` continues its checkpoint (then ``run.config`` takes the run's values)."""
    if run.checkpoint is None or not run.checkpoint.is_file():
        return False
    saved = read_checkpoint(run.checkpoint)
    try:
        run.config = resumed(run.config, saved.get("config") or {}, saved["step"])
    except ResumeError:
        return False  # another configuration's run: this one replaces it
    return True


def load_or_train(config: RunConfig, *, progress: bool = True) -> tuple[Run, History]:
    """The trained run of ``config``: loaded if it finished before, else trained now by
    :func:`~deeplab_utils.training.fit`. A stopped run of the same configuration (say, Colab
    disconnected) is continued; one of another configuration is replaced. Its model ends on the
    CPU, in eval mode, either way."""
    run = build_run(config)
    history = fit(run, resume=_continued(run), progress=progress)
    run.model.cpu().eval()
    return run, history


def your_network(run: Run, network: type, separable: type) -> nn.Module:
    """Notebook 04's ``network`` (your ``MyDeepLabV3Plus``) at ``run``'s sizes, holding
    ``run.model``'s initial weights: the package's network, written by you (``run.model`` itself
    when ``network`` is the package's ``DeepLabV3Plus``: notebook 04 not written yet).

    Where the run's network is separable (DeepLabv3+, Sec. 3.1), each 3x3 convolution of its
    ASPP and decoder becomes notebook 02's ``separable`` one. The weights are loaded as the
    checks compare them and proven on a random image: a ValueError if the networks differ.
    """
    if network is DeepLabV3Plus:
        return run.model
    config = run.config.model_config(run.train_set.num_classes)
    if config.multi_grid is not None:
        raise ValueError("notebook 04's network has no multi-grid: train it with multi_grid=None")
    rates = config.aspp_rates or aspp_rates(config.output_stride)
    mine = network(config.num_classes, output_stride=config.output_stride, rates=rates)
    if config.separable:
        for parent in [*mine.aspp.modules(), *mine.decoder.modules()]:
            for name, conv in parent.named_children():
                if isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3) and conv.groups == 1:
                    sep = separable(conv.in_channels, conv.out_channels, dilation=conv.dilation[0])
                    setattr(parent, name, sep)
    return _with_weights_of(mine, run.model, run.config.image_size)


def _with_weights_of(mine: nn.Module, model: nn.Module, size: int) -> nn.Module:
    """``mine`` holding ``model``'s weights and computing what ``model`` computes (on a random
    image of ``size``), its biases before a BN dropped: the same state dict as ``model``'s."""
    device, training = next(model.parameters()).device, model.training
    mine.to(device).eval()
    model.eval()
    image = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    try:
        load_reference_weights(mine, model, image)
    except RuntimeError as exc:  # names or shapes: the checks of notebooks 02-04 rule these out
        raise ValueError(f"the package's weights do not fit your network: {exc}") from None
    with torch.no_grad():
        if not torch.allclose(mine(image), model(image), atol=1e-4, rtol=1e-3):
            raise ValueError("your network, with the package's weights, computes something else")
    for key in set(mine.state_dict()) - set(model.state_dict()):  # a bias before a BN, now 0
        mine.get_submodule(key.rpartition(".")[0]).register_parameter("bias", None)
    first = next(k for k in model.state_dict() if k.startswith("decoder.refine.0.0."))
    if not torch.equal(mine.state_dict()[first], model.state_dict()[first]):  # low-level first:
        mine.register_state_dict_post_hook(partial(_reorder, back=True))  # its checkpoints load
        mine.register_load_state_dict_pre_hook(partial(_reorder, back=False))  # into the package's
    mine.config = model.config  # what a checkpoint records to rebuild the network (load_model)
    model.train(training)
    return mine.train(training)


def _reorder(module: nn.Module, state: dict, prefix: str, *_: Any, back: bool) -> None:
    """A state-dict hook: the decoder's concatenation weights in the package's order (``back``),
    or, loading, the package's order read as your decoder concatenates."""
    mine = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    swapped = _low_level_first(mine, back=back) or {}
    state.update({prefix + k: v for k, v in swapped.items() if k.startswith("decoder.refine.")})


class _InBf16(nn.Module):
    """``model`` with its forward under bf16 autocast and its logits back in fp32: mixed
    precision as :func:`~deeplab_utils.training.fit` uses it, entered at every forward. (One
    autocast around a whole call of your loop would reuse the bf16 copies of the weights it
    made at the first step for every later step: autocast caches them until it exits.)"""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with torch.autocast(images.device.type, torch.bfloat16):
            return self.model(images).float()


class _Batches:
    """The batches of steps ``first`` to ``end - 1`` on ``device``: what your loop iterates."""

    def __init__(self, run: Run, cfg: RunConfig, first: int, end: int, bar: tqdm) -> None:
        self.loader = train_loader(run.train_set, cfg, start=first, end=end)
        self.cfg, self.first, self.bar = cfg, first, bar
        self.device = pick_device(cfg.device)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        layout = torch.channels_last if self.cfg.channels_last else torch.preserve_format
        for i, (images, masks) in enumerate(self.loader):
            early = self.first + i < self.cfg.start_part * self.cfg.steps  # as fit resizes
            images, masks = _resized(images, masks, self.cfg.start_scale if early else None)
            self.bar.update()  # before the yield: a loop stops after its last batch's step
            yield images.to(self.device, memory_format=layout), masks.to(self.device)


def train_with(run: Run, loop: Callable, schedule: Callable, *, progress: bool = True) -> History:
    """Train ``run.model`` with your ``loop`` and ``schedule`` (notebook 07's ``my_train_loop``
    and ``my_poly_lr``), ``val_every`` steps per call; between calls, validate and checkpoint.

    Each call gets the steps' batches (the same as :func:`~deeplab_utils.training.fit`'s) and a
    ``LambdaLR`` of your schedule from that step on, so on a CPU in fp32 the run is ``fit``'s
    step for step. A run stopped mid-way continues from its last checkpoint, and a finished one
    returns at once (notebook 08 then loads it). Mixed precision only where it is bf16 (your
    step has no loss scaler); a NaN loss stops the run before its checkpoint is overwritten.
    """
    if run.config.grad_clip is not None:
        raise ValueError("train_with trains your loop as you wrote it: set grad_clip=None")
    device, resume = pick_device(run.config.device), _continued(run)
    cfg, model, history, step = settle(run.config, device), run.model, History(), 0
    loss_fn = run.loss_fn.to(device) if isinstance(run.loss_fn, nn.Module) else run.loss_fn
    seed_everything(cfg.seed)
    to_layout(model, device, cfg.channels_last)
    optimizer = build_optimizer(model, cfg)
    if resume:
        saved = load_checkpoint(run.checkpoint, model=model, optimizer=optimizer, restore_rng=True)
        step, history = saved["step"], History.from_dict(saved["history"])
    cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
    bf16 = device.type == "cpu" or cuda_bf16
    val_loader, every = eval_loader(run.val_set, cfg), cfg.val_every or cfg.steps
    started = time.perf_counter() - (history.eval_seconds or [0.0])[-1]
    with tqdm(total=cfg.steps, initial=step, disable=not progress) as bar:
        while step < cfg.steps:
            end = min(cfg.steps, (step // every + 1) * every)

            def rate(s: int, first: int = step) -> float:  # your schedule, from step `first` on
                return schedule(first + s, cfg.steps, cfg.poly_power, cfg.warmup_steps)

            for group in optimizer.param_groups:
                group["initial_lr"] = cfg.lr
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
            losses = loop(_InBf16(model) if cfg.amp and bf16 else model,
                          _Batches(run, cfg, step, end, bar), loss_fn, optimizer, scheduler,
                          end - step)  # fmt: skip
            _check_losses(losses, end - step)
            for i, loss in enumerate(losses):
                history.record_step(step + i + 1, loss, cfg.lr * rate(i))
                if not math.isfinite(loss):
                    kept = f"the checkpoint of step {step} was kept" if run.checkpoint else ""
                    raise NonFiniteLossError(loss, step + i + 1, cfg.lr * rate(i),
                                             kept or "no checkpoint was kept")  # fmt: skip
            step = end
            metrics = evaluate(model, val_loader, device=device, amp=cfg.amp, loss_fn=loss_fn)
            history.record_eval(step, metrics, time.perf_counter() - started)
            _show_validation(bar, step, losses[-1], metrics)
            if run.checkpoint:
                save_checkpoint(run.checkpoint, step=step, config=cfg, history=history,
                                model=model, optimizer=optimizer)  # fmt: skip
    return history


def _check_losses(losses: Any, steps: int) -> None:
    """Your loop must return one float per step it took: what the curves of section 7 draw."""
    if not isinstance(losses, list) or len(losses) != steps:
        got = f"a list of {len(losses)}" if isinstance(losses, list) else type(losses).__name__
        raise ValueError(f"your loop returned {got}; train_with asked for {steps} steps and needs "
                         "their losses, a list of that many floats")  # fmt: skip
    if not all(isinstance(loss, float) for loss in losses):
        raise ValueError("your loop's losses must be Python floats (loss.item()), not tensors")
