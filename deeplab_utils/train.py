"""The main job: train DeepLabV3+ from the command line.

    python -m deeplab_utils.train                    # shapes dataset, whatever device is present
    deeplab-train --dataset pets --data-dir data --amp --steps 5000
    torchrun --nproc_per_node=2 -m deeplab_utils.train --steps 400   # DistributedDataParallel

Writes under ``--out`` (default ``runs/<dataset>``): ``checkpoint.pt`` (resumable with
``--resume``), ``history.json`` (loss and LR per step, validation metrics) and
``predictions.png`` (rows of image | ground truth | prediction). Prints a per-class IoU table
and the mIoU at the end. Taught in notebook 07.
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

from .checkpoint import CheckpointError, read_train_config
from .runtime import DEVICE_CHOICES, amp_is_fast, pick_device
from .training import NonFiniteLossError, TrainConfig, _autocast, fit, make_loader

__all__ = ["DEFAULTS", "CliDefaults", "build_parser", "main"]

CHECKPOINT_NAME = "checkpoint.pt"
HISTORY_NAME = "history.json"
PREDICTIONS_NAME = "predictions.png"
PREDICTION_ROWS = 4  # samples shown in predictions.png


@dataclass(frozen=True)
class CliDefaults:
    """The command line's defaults, in one place so that they are easy to tune.

    Target: >= 0.85 validation mIoU on shapes within 10 minutes on a 2-core CPU, peak memory
    under 4 GB. Tuned on shapes from scratch (``benchmarks/bench_quality.py``; the README's
    results): these defaults, with zero-initialised residual branches, fused Adam and NHWC
    convolutions on a CPU, reach 0.89 mIoU in about 9 minutes on a quiet machine (2.0 GB;
    --seed 1 and 2: 0.87, 0.83; the three's mean 0.86) where the first defaults (64 px, batch 8,
    regular convs, Adam 1e-3, the paper's ASPP rates) reached 0.36.
    """

    dataset: str = "shapes"  # built in, procedurally generated: nothing to download
    data_dir: str = "data"  # where pets / voc live (torchvision's layout)
    image_size: int = 96  # side of the square training images (64 px learnt far slower)
    steps: int = 800  # optimiser steps: about 9 minutes on a 2-core CPU with bf16
    # Images per step (per process under torchrun). Quality follows the images seen (H100
    # sweep), and a 2-core CPU computes 24 at a time 1.5x faster per image than 8 (with NHWC,
    # below): 19,200 images instead of 11,600 in the same 9 minutes; with lr 2.5e-3 instead of
    # 2e-3, 0.82 -> 0.88 mIoU (batch 32 at 3.5e-3, 620 steps: lower, 0.82 against 0.83, seed 2).
    batch_size: int = 24
    optimizer: str = "adam"  # "sgd" is the paper's recipe (Sec. 4), slower to start from scratch
    # Default --lr with --optimizer adam, tuned at batch 24: 3e-3 beat 2.5e-3 on seeds 1 and 2
    # (+0.006, +0.010 mIoU on one machine); 4e-3 is no better (seed 2: 0.831 against 0.834).
    lr_adam: float = 3e-3
    lr_sgd: float = 0.01  # default --lr with --optimizer sgd (paper: 0.007 on VOC, Sec. 4)
    warmup_steps: int = 80  # linear LR warm-up before the poly decay (at most steps // 10)
    output_stride: int = 16  # 16 trains ~3x cheaper than 8 (paper, Table 3)
    separable: bool = True  # atrous separable convs: ~1.5x faster steps on a CPU (Sec. 3.2)
    # ASPP rates in proportion to the image (scaled_aspp_rates): (1, 2, 3) at 96 px, where the
    # paper's (6, 12, 18), chosen for 513-px crops, fall mostly outside a 6x6 feature map
    # (0.80 -> 0.82 mIoU in the same 9 minutes).
    aspp_rates: str = "scaled"
    workers: int = 0  # DataLoader worker processes; 0 keeps resumed runs exactly reproducible
    device: str = "auto"
    checkpoint_every: int = 200  # steps between checkpoints
    val_every: int = 200  # steps between validations
    seed: int = 0


DEFAULTS = CliDefaults()


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" to each option's help, except where the default is None: those
    options say in their own words what happens without them."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m deeplab_utils.train`` (every option has a default)."""
    d = DEFAULTS
    parser = argparse.ArgumentParser(
        prog="deeplab-train",
        description="Train DeepLabV3+ (Chen et al. 2018) on a segmentation dataset.",
        epilog="Multi-GPU / multi-process: torchrun --nproc_per_node=N -m deeplab_utils.train ...",
        formatter_class=_HelpFormatter,
    )
    add = parser.add_argument
    add(
        "--dataset",
        choices=["shapes", "pets", "voc"],
        default=d.dataset,
        help="shapes is built in; pets (Oxford-IIIT Pet) and voc (PASCAL VOC 2012) need files",
    )
    add("--data-dir", default=d.data_dir, help="folder holding the pets / voc files")
    add("--image-size", type=int, default=d.image_size, help="side of the square crops (px)")
    add("--steps", type=int, default=d.steps, help="optimiser steps in total")
    add(
        "--batch-size",
        type=int,
        default=d.batch_size,
        help="images per step (per process under torchrun)",
    )
    add(
        "--optimizer",
        choices=["sgd", "adam"],
        default=d.optimizer,
        help="sgd = paper's recipe (momentum 0.9, weight decay 1e-4); adam = the seed's",
    )
    add(
        "--lr",
        type=float,
        default=None,
        help=f"peak learning rate, poly-decayed (default: {d.lr_adam} for adam, "
        f"{d.lr_sgd} for sgd)",
    )
    add(
        "--output-stride",
        type=int,
        choices=[8, 16],
        default=d.output_stride,
        help="input size / feature size; 8 is more accurate and much slower",
    )
    add(
        "--warmup-steps",
        type=int,
        default=None,
        help="steps of linear learning-rate warm-up before the poly decay "
        f"(default: {d.warmup_steps}, or a tenth of --steps if that is fewer)",
    )
    add(
        "--separable",
        action=argparse.BooleanOptionalAction,
        default=d.separable,
        help="atrous separable convolutions in ASPP and decoder (paper, Sec. 3.2)",
    )
    add(
        "--aspp-rates",
        default=d.aspp_rates,
        help="atrous rates of ASPP's 3x3 branches: 'paper' (6,12,18 at output stride 16, "
        "doubled at 8), 'scaled' (the paper's times image-size/513, never more: (1,2,3) at "
        "96 px) or a list such as 2,4,6",
    )
    add(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="mixed precision: fp16 on CUDA, bf16 on CPU (default: on where it is faster: "
        "CUDA, and CPUs with native bf16 such as AVX512-BF16 or AMX; --resume keeps the run's)",
    )
    add(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="NHWC memory layout for the convolutions (default: on for a CPU, where it trains "
        "about 10 %% faster; off elsewhere)",
    )
    add("--workers", type=int, default=d.workers, help="DataLoader worker processes")
    add("--device", default=d.device, help=f"one of {DEVICE_CHOICES}, or e.g. cuda:1")
    add("--out", default=None, help="output folder (default: runs/<dataset>)")
    add(
        "--checkpoint-every",
        type=int,
        default=d.checkpoint_every,
        help="steps between checkpoints (0 = only at the end)",
    )
    add(
        "--val-every",
        type=int,
        default=d.val_every,
        help="steps between validations (0 = only at the end)",
    )
    add("--resume", action="store_true", help="continue from <out>/checkpoint.pt")
    add("--seed", type=int, default=d.seed, help="seed of initialisation, data order, augmentation")
    add(
        "--backbone-weights",
        default=None,
        metavar="PATH",
        help="torchvision ImageNet ResNet-50 state dict (.pth) to start the backbone from; "
        "never downloaded (default: random initialisation)",
    )
    add(
        "--train-samples",
        type=int,
        default=None,
        help="limit the training set to this many samples (default: all)",
    )
    add(
        "--val-samples",
        type=int,
        default=None,
        help="limit the validation set to this many samples (default: all)",
    )
    add("--no-progress", action="store_true", help="no progress bar (e.g. in logs)")
    return parser


def _parse_aspp_rates(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[int, ...] | None:
    """--aspp-rates as ModelConfig.aspp_rates: None for the paper's, else a tuple of rates."""
    from .aspp import check_rates, scaled_aspp_rates

    value = str(args.aspp_rates).strip()
    if value == "paper":
        return None
    if value == "scaled":
        return scaled_aspp_rates(args.output_stride, args.image_size)
    try:  # the same check as ModelConfig.aspp_rates, with the command line's wording
        return check_rates([int(part) for part in value.split(",")])
    except ValueError:
        parser.error(
            "--aspp-rates must be 'paper', 'scaled' or positive integers such as 2,4,6; "
            f"got {value!r}"
        )


def _validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject bad values with argparse's one-line error (exit code 2)."""
    for name in ("steps", "batch_size", "image_size"):
        value = getattr(args, name)
        if value < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    for name in ("workers", "checkpoint_every", "val_every", "seed"):
        value = getattr(args, name)
        if value < 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0, got {value}")
    for name in ("train_samples", "val_samples"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    if args.warmup_steps is None:
        args.warmup_steps = min(DEFAULTS.warmup_steps, args.steps // 10)
    if not 0 <= args.warmup_steps < args.steps:
        parser.error(
            f"--warmup-steps must be >= 0 and smaller than --steps ({args.steps}), "
            f"got {args.warmup_steps}"
        )
    args.aspp_rates = _parse_aspp_rates(parser, args)
    if args.lr is not None and not args.lr > 0:
        parser.error(f"--lr must be a positive number, got {args.lr}")
    if args.dataset != "shapes" and not Path(args.data_dir).is_dir():
        parser.error(
            f"--data-dir {args.data_dir!r} does not exist; put the {args.dataset} files there "
            "(see notebook 06) or pass --data-dir"
        )
    if args.backbone_weights is not None and not Path(args.backbone_weights).is_file():
        parser.error(f"--backbone-weights: no file at {args.backbone_weights!r}")
    if args.resume and not (Path(args.out) / CHECKPOINT_NAME).is_file():
        parser.error(f"--resume: no checkpoint at {Path(args.out) / CHECKPOINT_NAME}")


# ---------------------------------------------------------------------------------------------
# Distributed (torchrun) set-up
# ---------------------------------------------------------------------------------------------


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


def _check_ranks_agree(model: nn.Module, world: _World) -> bool:
    """True when every rank ends with the same weights (DDP's promise), checked by a checksum."""
    with torch.no_grad():
        total = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum()
    gathered = [torch.zeros_like(total) for _ in range(world.size)]
    dist.all_gather(gathered, total)
    return all(torch.equal(g, gathered[0]) for g in gathered)


# ---------------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------------


def _print_iou_table(metrics: dict[str, Any], class_names: tuple[str, ...] | list[str]) -> None:
    width = max(len(name) for name in [*class_names, "mIoU"])
    print(f"\n{'class':<{width}}  IoU")
    for name, iou in zip(class_names, metrics["iou"], strict=False):
        print(f"{name:<{width}}  {'n/a' if iou is None else f'{iou:.3f}'}")
    print(f"{'mIoU':<{width}}  {metrics['miou']:.3f}")
    print(f"{'pixel acc.':<{width}}  {metrics['pixel_accuracy']:.3f}")


@torch.no_grad()
def _save_predictions(
    model: nn.Module, dataset: Any, path: Path, device: torch.device, *, amp: bool
) -> None:
    """Rows of image | ground truth | prediction for the first few validation samples."""
    from torchvision.utils import save_image

    from .data import colorize_mask, denormalize

    n = min(PREDICTION_ROWS, len(dataset))
    images = torch.stack([dataset[i][0] for i in range(n)])  # (N, 3, H, W)
    masks = torch.stack([dataset[i][1] for i in range(n)])  # (N, H, W)
    model.eval()
    with _autocast(device, amp):  # the precision the run trained in
        preds = model(images.to(device)).argmax(dim=1).cpu()  # (N, C, H, W) -> (N, H, W)
    palette = getattr(dataset, "palette", None)
    tiles = torch.stack(
        [
            denormalize(images),
            colorize_mask(masks, palette) / 255,
            colorize_mask(preds, palette) / 255,
        ],
        dim=1,
    )  # (N, 3 columns, 3, H, W)
    save_image(tiles.flatten(0, 1), path, nrow=3, padding=2, pad_value=1.0)


def _peak_memory_mb() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20  # KiB on Linux, B on macOS


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the main job; return the exit code (0 on success). Taught in notebook 07.

    Bad arguments exit with code 2 and argparse's one-line message; a training failure (NaN
    loss, GPU out of memory) prints a one-line error and returns 1.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    args.out = args.out or f"runs/{args.dataset}"
    _validate(parser, args)
    lr = args.lr if args.lr is not None else getattr(DEFAULTS, f"lr_{args.optimizer}")
    try:
        device = pick_device(args.device)
    except ValueError as exc:
        parser.error(f"--device: {exc}")
    if args.amp is None and args.resume:
        # A resumed run keeps its precision, even on a machine whose default would differ.
        try:
            args.amp = bool(read_train_config(Path(args.out) / CHECKPOINT_NAME).get("amp"))
        except CheckpointError as exc:
            print(f"deeplab-train: error: {exc}", file=sys.stderr)
            return 1
    if args.amp is None:
        args.amp = amp_is_fast(device)
    if args.channels_last is None:
        # Measured on a 2-core CPU: 12 % faster steps with bf16, 4 % in fp32. On an H100 it
        # slowed the separable model's inference (README, CUDA results), so GPUs keep NCHW.
        args.channels_last = device.type == "cpu"

    from .data import build_dataset
    from .losses import DiceCELoss
    from .model import ModelConfig, build_model

    try:
        train_set = build_dataset(
            args.dataset, split="train", root=args.data_dir, image_size=args.image_size,
            seed=args.seed, num_samples=args.train_samples,
        )  # fmt: skip
        val_set = build_dataset(
            args.dataset, split="val", root=args.data_dir, image_size=args.image_size,
            seed=args.seed, num_samples=args.val_samples,
        )  # fmt: skip
    except (FileNotFoundError, ValueError) as exc:
        parser.error(str(exc).splitlines()[0])
    if len(train_set) < args.batch_size:
        parser.error(
            f"--batch-size {args.batch_size} is larger than the training set ({len(train_set)})"
        )

    config = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        lr=lr,
        warmup_steps=args.warmup_steps,
        amp=args.amp,
        channels_last=args.channels_last,
        eval_every=args.val_every,
        checkpoint_every=args.checkpoint_every,
        seed=args.seed,
    )
    torch.manual_seed(args.seed)  # same initial weights on every rank, and on every re-run
    model = build_model(
        ModelConfig(
            num_classes=train_set.num_classes,
            output_stride=args.output_stride,
            separable=args.separable,
            aspp_rates=args.aspp_rates,
        ),
        # Every residual block starts as the identity: from scratch, training takes off sooner.
        zero_init_residual=args.backbone_weights is None,
    )
    if args.backbone_weights is not None:
        try:
            state = torch.load(args.backbone_weights, map_location="cpu", weights_only=True)
            model.backbone.load_torchvision_state_dict(state)
        except (RuntimeError, ValueError, OSError) as exc:
            parser.error(f"--backbone-weights {args.backbone_weights}: {str(exc).splitlines()[0]}")

    if args.channels_last:
        # Before DDP wraps the model: DDP registers the parameters as they are at wrapping.
        model.to(memory_format=torch.channels_last)
    world = _init_world(device)
    try:
        if world.distributed and device.type == "cuda":
            device = torch.device("cuda", world.local_rank)
        if world.distributed:
            if device.type == "cuda":
                # BatchNorm statistics over the whole global batch, not each process's slice.
                # (PyTorch's SyncBatchNorm runs on GPUs only; CPU processes keep their own.)
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            model.to(device)
            ddp_model: nn.Module = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        else:
            ddp_model = model
        loader_kwargs = {
            "seed": args.seed,
            "workers": args.workers,
            "num_replicas": world.size,
            "rank": world.rank,
            "pin_memory": device.type == "cuda",
        }
        train_loader = make_loader(
            train_set, batch_size=args.batch_size, shuffle=True, **loader_kwargs
        )
        val_loader = make_loader(
            val_set, batch_size=args.batch_size, shuffle=False, **loader_kwargs
        )
        out = Path(args.out)
        if world.main:
            out.mkdir(parents=True, exist_ok=True)
            print(
                f"DeepLabV3+ on {args.dataset} ({len(train_set)} train / {len(val_set)} val, "
                f"{train_set.num_classes} classes), {args.steps} steps of batch {args.batch_size}"
                f"{f' x {world.size} processes' if world.distributed else ''} on {device}"
                f"{' with mixed precision' if args.amp else ''}"
                f"{' (resuming)' if args.resume else ''}",
                flush=True,
            )
        started = time.perf_counter()
        try:
            history = fit(
                ddp_model,
                train_loader,
                val_loader,
                config=config,
                loss_fn=DiceCELoss(ignore_index=255),
                num_classes=train_set.num_classes,
                checkpoint_path=out / CHECKPOINT_NAME,
                resume=args.resume,
                device=device,
                progress=world.main and not args.no_progress,
            )
        except (NonFiniteLossError, torch.OutOfMemoryError, CheckpointError) as exc:
            print(f"deeplab-train: error: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            if world.main:
                print(
                    f"\ninterrupted; continue with the same command plus --resume "
                    f"(last checkpoint: {out / CHECKPOINT_NAME})",
                    file=sys.stderr,
                )
            return 130
        elapsed = time.perf_counter() - started

        agree = _check_ranks_agree(model, world) if world.distributed else True
        if world.main:
            final = history.val[-1] if history.val else None
            if final is not None:
                _print_iou_table(final, train_set.class_names)
            (out / HISTORY_NAME).write_text(
                json.dumps(
                    {
                        "class_names": list(train_set.class_names),
                        "args": vars(args),
                        "train_config": dataclasses.asdict(config),
                        **history.to_dict(),
                    },
                    indent=1,
                )
            )
            _save_predictions(model, val_set, out / PREDICTIONS_NAME, device, amp=args.amp)
            peak = _peak_memory_mb()
            print(
                f"\ndone in {elapsed:.0f} s"
                f"{f', peak memory {peak:.0f} MB' if peak is not None else ''}; "
                f"wrote {out / CHECKPOINT_NAME}, {out / HISTORY_NAME}, {out / PREDICTIONS_NAME}"
            )
            if world.distributed:
                print(
                    f"DDP: weights identical on all {world.size} processes"
                    if agree
                    else f"DDP: WARNING, weights differ between the {world.size} processes"
                )
        return 0 if agree else 1
    finally:
        if world.distributed:
            dist.barrier()
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
