"""The main job: train DeepLabV3+ from the command line. Taught in notebook 07.

    python -m deeplab_utils.train                    # shapes dataset, whatever device is present
    deeplab-train --dataset pets --data-dir data --amp --steps 5000
    torchrun --nproc_per_node=2 -m deeplab_utils.train --steps 400   # DistributedDataParallel

Writes under ``--out`` (default ``runs/<dataset>``) ``checkpoint.pt`` (resumable with
``--resume``), ``history.json`` (per-step loss and LR, validation metrics) and
``predictions.png`` (image | ground truth | prediction), and prints a per-class IoU table.
:func:`resolve_args` turns the command line into a :class:`~deeplab_utils.run.RunConfig`,
``build_run`` (shared with the notebooks) makes the run, :func:`_train` trains it (under
DistributedDataParallel with torchrun) and :func:`_report` writes the results.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .aspp import check_rates
from .backbone import IMAGENET, backbone_state_dict
from .checkpoint import CheckpointError, read_train_config
from .figures import prediction_grid_png
from .files import atomic_write
from .run import (
    Run,
    RunConfig,
    build_run,
    check_resume,
    evaluate_test_split,
    preview_batch,
    train_run,
)
from .runtime import DEVICE_CHOICES, pick_device
from .training import DEFAULT_LR, History, NonFiniteLossError, TrainConfig, _autocast

__all__ = ["DEFAULTS", "CliDefaults", "build_parser", "main", "resolve_args"]

CHECKPOINT_NAME = "checkpoint.pt"
HISTORY_NAME = "history.json"
PREDICTIONS_NAME = "predictions.png"
PREDICTION_ROWS = 4  # validation images shown in predictions.png


@dataclass(frozen=True)
class CliDefaults:
    """What only the command line decides; the recipe's defaults are RunConfig's and
    TrainConfig's (``deeplab_utils.run``, ``deeplab_utils.training``)."""

    # Steps of the main job: where mixed precision is fast (a GPU, a CPU with native bf16) a
    # step costs less, so the same time buys more of them (benchmarks/README.md).
    steps: int = RunConfig().train.steps
    steps_with_amp: int = 1200
    workers: int = 0  # DataLoader worker processes; 0 keeps resumed runs exactly reproducible
    device: str = "auto"
    val_every: int = 200  # steps between validations (the curve in history.json)
    checkpoint_every: int = 200  # steps between checkpoints


DEFAULTS = CliDefaults()
RECIPE = RunConfig()  # the main job's data, model and training defaults


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" to each option's help, except where the default is None: those
    options say in their own words what happens without them."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def _add_data_options(add: Any) -> None:
    add(
        "--dataset",
        choices=["shapes", "pets", "voc"],
        default=RECIPE.dataset,
        help="shapes is built in; pets (Oxford-IIIT Pet) and voc (PASCAL VOC 2012) need files",
    )
    add("--data-dir", default=RECIPE.data_dir, help="folder holding the pets / voc files")
    add("--image-size", type=int, default=RECIPE.image_size, help="side of the square crops (px)")
    add(
        "--train-samples",
        type=int,
        help="limit the training set to this many samples (default: all)",
    )
    add(
        "--val-samples",
        type=int,
        help="limit the validation set to this many samples (default: all)",
    )
    add(
        "--pets-mode",
        choices=["binary", "trimap"],
        default=RECIPE.pets_mode,
        help="pets: pet/background with the border band ignored (the usual IoU), or the "
        "3-class trimap",
    )
    add(
        "--voc-trainaug",
        action="store_true",
        help="voc: train on VOC train + SBD (10,582 images, VOC val excluded), as the paper "
        "does; needs SBD (see --sbd-dir) and scipy",
    )
    add("--sbd-dir", help="folder holding SBD's benchmark_RELEASE/ (default: --data-dir)")


def _add_model_options(add: Any) -> None:
    add(
        "--output-stride",
        type=int,
        choices=[8, 16],
        default=RECIPE.output_stride,
        help="input size / feature size; 8 is more accurate and much slower",
    )
    add(
        "--separable",
        action=argparse.BooleanOptionalAction,
        default=RECIPE.separable,
        help="atrous separable convolutions in ASPP and decoder (paper, Sec. 3.1)",
    )
    add(
        "--aspp-rates",
        default=RECIPE.aspp_rates,
        help="atrous rates of ASPP's 3x3 branches: 'paper' (6,12,18 at output stride 16, "
        "doubled at 8), 'scaled' (the paper's times image-size/513, never more) or a list "
        "such as 2,4,6",
    )
    add(
        "--multi-grid",
        type=int,
        nargs=3,
        metavar=("R1", "R2", "R3"),
        help="unit rates of layer4's three blocks (DeepLabv3 Sec. 3.2): 1 2 4 gives rates 2 4 8 "
        "at --output-stride 16 (default: torchvision's one rate for the whole stage)",
    )
    add(
        "--backbone-weights",
        metavar="imagenet|PATH",
        help="start the backbone from torchvision's ImageNet ResNet-50: 'imagenet' downloads "
        "it once (about 100 MB, cached where torchvision caches), or PATH to a state dict "
        "(.pth) you have (default: random initialisation)",
    )


def _add_training_options(add: Any) -> None:
    t = RECIPE.train
    add(
        "--steps",
        type=int,
        help=f"optimiser steps in total (default: {DEFAULTS.steps}, or "
        f"{DEFAULTS.steps_with_amp} where mixed precision is on)",
    )
    add(
        "--batch-size",
        type=int,
        default=t.batch_size,
        help="images per step (per process under torchrun)",
    )
    add(
        "--optimizer",
        choices=["sgd", "adam"],
        default=t.optimizer,
        help="sgd = paper's recipe (momentum 0.9, weight decay 1e-4); adam = the seed's",
    )
    add(
        "--lr",
        type=float,
        help=f"peak learning rate, poly-decayed (default: {DEFAULT_LR['adam']} for adam, "
        f"{DEFAULT_LR['sgd']} for sgd)",
    )
    add(
        "--warmup-steps",
        type=int,
        help="steps of linear learning-rate warm-up before the poly decay (default: a tenth "
        "of --steps; --resume keeps the run's)",
    )
    add(
        "--amp",
        action=argparse.BooleanOptionalAction,
        help="mixed precision: fp16 on CUDA, bf16 on CPU (default: on where it is faster: "
        "CUDA, and CPUs with native bf16 such as AVX512-BF16 or AMX; --resume keeps the run's)",
    )
    add(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        help="NHWC memory layout for the convolutions (default: on for a CPU, off elsewhere; "
        "--resume keeps the run's)",
    )
    add("--seed", type=int, default=t.seed, help="seed of initialisation, data order, augmentation")


def _add_job_options(add: Any) -> None:
    add("--workers", type=int, default=DEFAULTS.workers, help="DataLoader worker processes")
    add("--device", default=DEFAULTS.device, help=f"one of {DEVICE_CHOICES}, or e.g. cuda:1")
    add("--out", help="output folder (default: runs/<dataset>)")
    add(
        "--checkpoint-every",
        type=int,
        default=DEFAULTS.checkpoint_every,
        help="steps between checkpoints (0 = only at the end)",
    )
    add(
        "--val-every",
        type=int,
        default=DEFAULTS.val_every,
        help="steps between validations (0 = only at the end)",
    )
    add(
        "--resume",
        action="store_true",
        help="continue from <out>/checkpoint.pt with the same settings (--steps may grow)",
    )
    add(
        "--final-test",
        action="store_true",
        help="after training, score the final model once on the test split and report it as "
        "such (pets only: validation is a held-out tenth of trainval, so the test images are "
        "otherwise never read)",
    )
    add("--no-progress", action="store_true", help="no progress bar (e.g. in logs)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m deeplab_utils.train`` (every option has a default)."""
    parser = argparse.ArgumentParser(
        prog="deeplab-train",
        description="Train DeepLabV3+ (Chen et al. 2018) on a segmentation dataset.",
        epilog="Multi-GPU / multi-process: torchrun --nproc_per_node=N -m deeplab_utils.train ...",
        formatter_class=_HelpFormatter,
    )
    for add_options in (
        _add_data_options,
        _add_model_options,
        _add_training_options,
        _add_job_options,
    ):
        add_options(parser.add_argument)
    return parser


# --- 1. Argument resolution ---


def _check_ranges(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject out-of-range numbers with argparse's one-line error (exit code 2)."""
    for name in ("steps", "batch_size", "image_size", "train_samples", "val_samples"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    for name in ("workers", "checkpoint_every", "val_every", "seed"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    if args.warmup_steps is not None and not 0 <= args.warmup_steps < args.steps:
        parser.error(
            f"--warmup-steps must be >= 0 and smaller than --steps ({args.steps}), "
            f"got {args.warmup_steps}"
        )
    if args.lr is not None and not args.lr > 0:
        parser.error(f"--lr must be a positive number, got {args.lr}")


def _aspp_rates(parser: argparse.ArgumentParser, value: str) -> str | tuple[int, ...]:
    value = str(value).strip()
    if value in ("paper", "scaled"):
        return value
    try:  # the same check as RunConfig's, with the command line's wording
        return check_rates([int(part) for part in value.split(",")])
    except ValueError:
        parser.error(
            "--aspp-rates must be 'paper', 'scaled' or positive integers such as 2,4,6; "
            f"got {value!r}"
        )


def _check_paths(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.dataset != "shapes" and not Path(args.data_dir).is_dir():
        parser.error(
            f"--data-dir {args.data_dir!r} does not exist; put the {args.dataset} files there "
            "(see notebook 06) or pass --data-dir"
        )
    weights = args.backbone_weights
    if weights not in (None, IMAGENET) and not Path(weights).is_file():
        parser.error(f"--backbone-weights: no file at {weights!r} (nor 'imagenet')")
    if args.final_test and args.dataset != "pets":
        parser.error(
            "--final-test: only pets has a labelled test split (VOC's test labels are not "
            f"public, shapes has none); got --dataset {args.dataset}"
        )
    if args.resume and not (Path(args.out) / CHECKPOINT_NAME).is_file():
        parser.error(f"--resume: no checkpoint at {Path(args.out) / CHECKPOINT_NAME}")


def resolve_args(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[RunConfig, torch.device]:
    """The run the command line asks for, and its device; bad values exit 2 (one line).

    Raises:
        CheckpointError: ``--resume`` with a corrupt checkpoint, or one of other settings.
    """
    args.out = args.out or f"runs/{args.dataset}"
    try:
        device = pick_device(args.device)
    except ValueError as exc:
        parser.error(f"--device: {exc}")
    _check_paths(parser, args)
    checkpoint = Path(args.out) / CHECKPOINT_NAME
    saved = read_train_config(checkpoint) if args.resume else {}  # a resumed run keeps its own
    if args.steps is None:
        amp = TrainConfig(amp=args.amp).for_device(device).amp  # the rule fit applies
        args.steps = saved.get("steps", DEFAULTS.steps_with_amp if amp else DEFAULTS.steps)
    if args.warmup_steps is None and "warmup_steps" in saved:
        args.warmup_steps = saved["warmup_steps"]  # a tenth of the old total, not the new one
    _check_ranges(parser, args)
    train = {"steps": args.steps, "batch_size": args.batch_size, "optimizer": args.optimizer}
    train |= {"lr": args.lr, "warmup_steps": args.warmup_steps, "amp": args.amp, "seed": args.seed}
    train |= {"channels_last": args.channels_last, "eval_every": args.val_every}
    train["checkpoint_every"] = args.checkpoint_every
    try:
        config = RunConfig(
            dataset=args.dataset, data_dir=args.data_dir, image_size=args.image_size,
            train_samples=args.train_samples, val_samples=args.val_samples,
            output_stride=args.output_stride, separable=args.separable,
            aspp_rates=_aspp_rates(parser, args.aspp_rates),
            multi_grid=tuple(args.multi_grid) if args.multi_grid else None,
            backbone_weights=args.backbone_weights, pets_mode=args.pets_mode,
            voc_trainaug=args.voc_trainaug, sbd_dir=args.sbd_dir, train=TrainConfig(**train),
        )  # fmt: skip
    except ValueError as exc:
        parser.error(str(exc))
    if args.resume:
        config = check_resume(config, checkpoint)
    return dataclasses.replace(config, train=config.train.for_device(device)), device


# --- 2. Processes: DistributedDataParallel under torchrun ---


@dataclass(frozen=True)
class _World:
    size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_world(device: torch.device) -> _World:
    # torchrun sets these; a plain `python -m` run has none and stays single-process.
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return _World()
    world = _World(size, int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")))
    # By the device asked for, not by what the machine has: `--device cpu` on a GPU machine
    # trains on CPU tensors, which NCCL cannot reduce.
    backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(world.local_rank)
    dist.init_process_group(backend=backend)
    return world


def _wrap(model: nn.Module, device: torch.device, world: _World, channels_last: bool) -> nn.Module:
    """``model`` ready to train: NHWC if asked, in DistributedDataParallel under torchrun."""
    if channels_last:  # before DDP wraps the model: it registers the parameters as they are
        model.to(memory_format=torch.channels_last)
    if not world.distributed:
        return model
    if device.type == "cuda":
        # BatchNorm statistics over the whole global batch, not each process's slice.
        # (PyTorch's SyncBatchNorm runs on GPUs only; CPU processes keep their own.)
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device)
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None
    )


def _weights_agree(model: nn.Module, world: _World) -> bool:
    """True when every rank ends with the same weights (DDP's promise), checked by a checksum."""
    if not world.distributed:
        return True
    with torch.no_grad():
        total = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum()
    gathered = [torch.zeros_like(total) for _ in range(world.size)]
    dist.all_gather(gathered, total)
    return all(torch.equal(g, gathered[0]) for g in gathered)


# --- 3. The report: IoU table, history.json, predictions.png ---


def _print_iou_table(metrics: dict[str, Any], class_names: tuple[str, ...] | list[str]) -> None:
    """Per-class IoU, mIoU and pixel accuracy; "n/a" where a score is undefined (None)."""
    width = max(len(name) for name in [*class_names, "pixel acc."])
    none = "n/a (no labelled pixels)"  # every pixel was 255 = ignore
    print(f"\n{'class':<{width}}  IoU")
    for name, iou in zip(class_names, metrics["iou"], strict=False):
        print(f"{name:<{width}}  {'n/a' if iou is None else f'{iou:.3f}'}")
    for name, key in (("mIoU", "miou"), ("pixel acc.", "pixel_accuracy")):
        print(f"{name:<{width}}  {none if metrics[key] is None else f'{metrics[key]:.3f}'}")


@torch.no_grad()
def _save_predictions(run: Run, model: nn.Module, path: Path, device: torch.device) -> None:
    """Image | ground truth | prediction for the first validation images, with a legend."""
    images, masks = preview_batch(run, PREDICTION_ROWS)  # (N, 3, H, W), (N, H, W)
    model.eval()
    with _autocast(device, bool(run.config.train.amp)):  # the precision the run trained in
        preds = model(images.to(device)).argmax(dim=1).cpu()  # (N, C, H, W) -> (N, H, W)
    columns = {"ground truth": masks, "prediction": preds}
    png = prediction_grid_png(images, columns, run.val_set.palette, run.val_set.class_names)
    with atomic_write(path) as file:
        file.write(png)


def _peak_memory_mb() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20  # KiB on Linux, B on macOS


def _report(
    run: Run,
    history: History,
    out: Path,
    device: torch.device,
    seconds: float,
    test: dict[str, Any] | None = None,
) -> None:
    """Rank 0's summary: the IoU tables (validation; the test split when scored), then
    history.json and predictions.png (atomically)."""
    if history.val:
        print(f"\nvalidation ({len(run.val_set)} images) after step {history.eval_step[-1]}:")
        _print_iou_table(history.val[-1], run.train_set.class_names)
    if test is not None:
        print(
            f"\nTEST split ({test['images']} images), scored once after training; validation "
            "never saw it:"
        )
        _print_iou_table(test, run.train_set.class_names)
    summary = {
        "class_names": list(run.train_set.class_names),
        "run_config": run.config.to_dict(),
        "train_config": run.config.train.to_dict(),
        **history.to_dict(),
    }
    if test is not None:
        summary["test"] = test
    with atomic_write(out / HISTORY_NAME, "w", encoding="utf-8") as file:
        json.dump(summary, file, indent=1)
    _save_predictions(run, run.model, out / PREDICTIONS_NAME, device)
    peak = _peak_memory_mb()
    print(
        f"\ndone in {seconds:.0f} s{f', peak memory {peak:.0f} MB' if peak is not None else ''}; "
        f"wrote {out / CHECKPOINT_NAME}, {out / HISTORY_NAME}, {out / PREDICTIONS_NAME}"
    )


# --- main ---


def _build(args: argparse.Namespace, config: RunConfig, device: torch.device, world: _World) -> Run:
    if world.distributed and config.backbone_weights == IMAGENET:
        try:
            if world.local_rank == 0:  # one download per machine; the other ranks read the cache
                backbone_state_dict(IMAGENET)
        finally:
            dist.barrier()  # a failed download fails on every rank, none waits for ever
    return build_run(
        config, checkpoint=Path(args.out) / CHECKPOINT_NAME, workers=args.workers,
        num_replicas=world.size, rank=world.rank, pin_memory=device.type == "cuda",
    )  # fmt: skip


def _train(args: argparse.Namespace, run: Run, device: torch.device, world: _World) -> int:
    """Train ``run`` on this process (DDP-wrapped under torchrun), report; return the exit code."""
    t = run.config.train
    model = _wrap(run.model, device, world, bool(t.channels_last))
    if world.main:
        print(
            f"DeepLabV3+ on {run.config.dataset} ({len(run.train_set)} train / "
            f"{len(run.val_set)} val, {run.train_set.num_classes} classes), {t.steps} steps of "
            f"batch {t.batch_size}{f' x {world.size} processes' if world.distributed else ''} "
            f"on {device}{' with mixed precision' if t.amp else ''}"
            f"{' (resuming)' if args.resume else ''}",
            flush=True,
        )
    started = time.perf_counter()
    history = train_run(
        run, resume=args.resume, model=model, device=device,
        progress=world.main and not args.no_progress,
    )  # fmt: skip
    agree = _weights_agree(model, world)
    seconds = time.perf_counter() - started
    test = None
    if args.final_test:  # every process scores its share of the test images
        test = evaluate_test_split(
            run, model=model, device=device, workers=args.workers, num_replicas=world.size,
            rank=world.rank,
        )  # fmt: skip
    if world.main:
        _report(run, history, Path(args.out), device, seconds, test)
        if world.distributed:
            print(
                f"DDP: weights identical on all {world.size} processes"
                if agree
                else f"DDP: WARNING, weights differ between the {world.size} processes"
            )
    return 0 if agree else 1


def main(argv: list[str] | None = None) -> int:
    """Run the main job; return the exit code (0 on success). Taught in notebook 07.

    Bad arguments and missing dataset files exit with code 2 and argparse's message (for a
    dataset: where it was expected and its layout); a training failure (NaN loss, GPU out of
    memory, a checkpoint that cannot be resumed) prints a one-line error and returns 1; an
    interruption (Ctrl-C) returns 130 and says how to resume.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config, device = resolve_args(parser, args)
    except CheckpointError as exc:
        print(f"deeplab-train: error: {exc}", file=sys.stderr)
        return 1
    world = _init_world(device)
    if world.distributed and device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
    succeeded = False
    try:
        try:
            run = _build(args, config, device, world)
        except (FileNotFoundError, ValueError) as exc:  # a dataset's files, or a setting
            parser.error(str(exc))
        code = _train(args, run, device, world)
        succeeded = True
        return code
    except (NonFiniteLossError, torch.OutOfMemoryError, CheckpointError) as exc:
        print(f"deeplab-train: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if world.main:
            print(
                "\ninterrupted; continue with the same command plus --resume "
                f"(last checkpoint: {Path(args.out) / CHECKPOINT_NAME})",
                file=sys.stderr,
            )
        return 130
    finally:
        if world.distributed:
            if succeeded:  # a failed rank must not wait here while its peers wait elsewhere
                dist.barrier()
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
