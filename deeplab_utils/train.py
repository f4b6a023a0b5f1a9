"""The main job: train DeepLabV3+ from the command line. Taught in notebook 07.

    python -m deeplab_utils.train                    # shapes dataset, whatever device is present
    deeplab-train --dataset pets --data-dir data --amp --steps 5000
    torchrun --nproc_per_node=2 -m deeplab_utils.train --steps 400   # DistributedDataParallel

Its options are :class:`~deeplab_utils.config.RunConfig`'s fields, with their help text and
defaults, plus ``--resume``, ``--final-test`` and ``--no-progress``. It writes to ``--out``
(default ``runs/<dataset>``) ``checkpoint.pt`` (continued by ``--resume``), ``history.json``
and ``predictions.png`` (image | ground truth | prediction), and prints a per-class IoU table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import typing
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import nn

from .backbone import IMAGENET, backbone_state_dict
from .checkpoint import CheckpointError, read_checkpoint
from .config import FREE_ON_RESUME, ResumeError, RunConfig, resumed, settle
from .data import DatasetNotFoundError
from .figures import prediction_grid_png
from .files import atomic_write
from .inference import predict
from .run import CHECKPOINT, Run, build_run, evaluate_test_split, preview_batch
from .runtime import autocast, pick_device, rank_and_world, to_layout, unwrap
from .training import History, NonFiniteLossError, fit

JOB_FLAGS = {
    "resume": "continue <out>/checkpoint.pt: options left out keep the run's values, --steps may "
    "grow, and another value of a setting that defines the run is refused",
    "final_test": "after training, score the model once on the test split and report it as such "
    "(pets only: validation is a held-out tenth of trainval, so test images are otherwise unread)",
    "no_progress": "no progress bar (for logs): one line per validation instead",
}
OOM_HINT = "Lower, in this order: --batch-size, --image-size, --output-stride 16, or use --amp. "


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds "(default: X)" to each option's help, except where the default is None: those
    options say in their own words what happens without them."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return action.help if action.default is None else super()._get_help_string(action)


def _option(hint: Any) -> dict[str, Any]:
    """argparse's settings for a RunConfig field annotated ``hint``."""
    kinds = [k for k in typing.get_args(hint) if k is not type(None)] or [hint]
    if bool in kinds:
        return {"action": argparse.BooleanOptionalAction}
    if typing.get_origin(hint) is Literal:
        return {"choices": kinds, "type": type(kinds[0])}
    if typing.get_origin(kinds[0]) is tuple:  # multi_grid: "--multi-grid 1 2 4"
        return {"nargs": len(typing.get_args(kinds[0])), "type": int}
    return {"type": str if tuple in map(typing.get_origin, kinds) else kinds[0]}


def build_parser() -> argparse.ArgumentParser:
    """The options of ``python -m deeplab_utils.train``: one per RunConfig field, and the job's."""
    parser = argparse.ArgumentParser(
        prog="deeplab-train", formatter_class=_HelpFormatter,
        description="Train DeepLabV3+ (Chen et al. 2018) on a segmentation dataset.",
        epilog="Multi-GPU: torchrun --nproc_per_node=N -m deeplab_utils.train ...")  # fmt: skip
    hints = typing.get_type_hints(RunConfig)
    for f in dataclasses.fields(RunConfig):
        name, kind = f"--{f.name.replace('_', '-')}", _option(hints[f.name])
        parser.add_argument(name, default=f.default, help=f.metadata["help"], **kind)
    for name, text in JOB_FLAGS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", action="store_true", help=text)
    return parser


def _config(parser: argparse.ArgumentParser, args: argparse.Namespace) -> RunConfig:
    values = {k: v for k, v in vars(args).items() if k not in JOB_FLAGS}
    values["out"] = values["out"] or f"runs/{values['dataset']}"
    try:
        config = RunConfig(**values)
        pick_device(config.device)
    except ValueError as exc:
        parser.error(str(exc))
    return config


def parse(argv: list[str] | None = None) -> tuple[RunConfig, argparse.Namespace]:
    """The run the command line asks for, and its job flags; a bad value exits 2 (one line).

    With ``--resume`` the options left out take the saved run's values. Raises CheckpointError
    (a corrupt checkpoint) and ResumeError (a setting that differs from the run's).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    config = _config(parser, args)
    if args.final_test and config.dataset != "pets":
        parser.error("--final-test: only pets has a labelled test split (VOC's test labels are "
                     f"not public, shapes has none); got --dataset {config.dataset}")  # fmt: skip
    if args.resume:
        path = Path(config.out) / CHECKPOINT
        if not path.is_file():
            parser.error(f"--resume: no checkpoint at {path}")
        saved = read_checkpoint(path)
        if not saved.get("config"):  # saved by hand, with save_checkpoint(..., config=None)
            raise ResumeError(f"{path} does not record its run's settings; start a new run")
        parser.set_defaults(**{k: v for k, v in saved["config"].items() if k not in FREE_ON_RESUME})
        config = resumed(_config(parser, parser.parse_args(argv)), saved["config"], saved["step"])
    return config, args


def _start_processes(config: RunConfig) -> RunConfig:
    """Under torchrun, join the process group; each GPU process gets its own GPU."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return config
    device = pick_device(config.device)
    # By the device asked for, not the machine: NCCL cannot reduce `--device cpu`'s tensors.
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if config.backbone_weights == IMAGENET and int(os.environ.get("LOCAL_RANK", "0")) == 0:
        backbone_state_dict(IMAGENET)  # one download per machine; the others read the cache
    dist.barrier()
    return dataclasses.replace(config, device=str(device))


def _wrap(model: nn.Module, config: RunConfig) -> nn.Module:
    """``model`` on its device in its layout; under torchrun in DistributedDataParallel."""
    device = pick_device(config.device)
    to_layout(model, device, config.channels_last)
    if rank_and_world()[1] == 1:
        return model
    if device.type == "cuda":  # BatchNorm over the global batch (SyncBatchNorm: GPUs only)
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def _iou_table(title: str, metrics: dict[str, Any], class_names: list[str]) -> None:
    """Per-class IoU, mIoU and pixel accuracy; "n/a" where a score is undefined (None)."""
    width = max(len(name) for name in [*class_names, "pixel acc."])
    print(f"\n{title}\n{'class':<{width}}  IoU")
    totals = [("mIoU", metrics["miou"]), ("pixel acc.", metrics["pixel_accuracy"])]
    for name, score in [*zip(class_names, metrics["iou"], strict=True), *totals]:
        undefined = "n/a" if name in class_names else "n/a (no labelled pixels)"
        print(f"{name:<{width}}  {undefined if score is None else f'{score:.3f}'}")


def _predictions_png(run: Run) -> bytes:
    """Image | ground truth | prediction for the first validation images, with a legend."""
    images, masks = preview_batch(run, 4)  # (N, 3, H, W), (N, H, W)
    device, model = pick_device(run.config.device), unwrap(run.model)  # rank 0 alone: no DDP
    with autocast(device, run.config.amp):  # the precision the run trained in
        preds = predict(model, images.to(device)).argmax(dim=1).cpu()  # (N, H, W)
    columns = {"ground truth": masks, "prediction": preds}
    return prediction_grid_png(images, columns, run.val_set.palette, run.val_set.class_names)


def _report(run: Run, history: History, seconds: float, test: dict[str, Any] | None) -> None:
    """The IoU tables, then history.json and predictions.png, each written atomically."""
    names = list(run.train_set.class_names)
    if history.val:
        title = f"validation ({len(run.val_set)} images) after step {history.eval_step[-1]}:"
        _iou_table(title, history.val[-1], names)
    if test is not None:
        title = f"TEST split ({test['images']} images), scored once after training; validation "
        _iou_table(title + "never saw it:", test, names)
    summary = {"class_names": names, "config": dataclasses.asdict(run.config),
               **dataclasses.asdict(history), **({"test": test} if test else {})}  # fmt: skip
    with atomic_write(Path(run.config.out) / "history.json", "w", encoding="utf-8") as file:
        json.dump(summary, file, indent=1)
    with atomic_write(Path(run.config.out) / "predictions.png") as file:
        file.write(_predictions_png(run))
    print(f"\ndone in {seconds:.0f} s; wrote {run.checkpoint}, history.json, predictions.png")


def _announce(run: Run, resume: bool) -> None:
    c, world = run.config, rank_and_world()[1]
    sets = f"{len(run.train_set)} train / {len(run.val_set)} val, {run.train_set.num_classes}"
    batch = f"batch {c.batch_size}" + (f" x {world} processes" if world > 1 else "")
    precision, resuming = " with mixed precision" * c.amp, " (resuming)" * resume
    print(f"DeepLabV3+ on {c.dataset} ({sets} classes), {c.steps} steps of {batch} on {c.device}"
          f"{precision}{resuming}", flush=True)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run the main job; return the exit code. Taught in notebook 07.

    Bad options and missing dataset files exit 2 with argparse's one-line message; a failure
    while training (NaN loss, GPU out of memory, a checkpoint that cannot be resumed) prints one
    line and returns 1; Ctrl-C returns 130 and says how to resume.
    """
    try:
        config, args = parse(argv)
    except (CheckpointError, ResumeError) as exc:
        print(f"deeplab-train: error: cannot resume: {exc}", file=sys.stderr)
        return 1
    config = _start_processes(config)
    config = settle(config, pick_device(config.device))
    rank, succeeded = rank_and_world()[0], False
    try:
        try:
            run = build_run(config)
        except (DatasetNotFoundError, ValueError) as exc:  # a dataset's files, or a setting
            build_parser().error(str(exc))
        if rank == 0:
            _announce(run, args.resume)
        run.model, started = _wrap(run.model, config), time.perf_counter()
        history = fit(run, resume=args.resume, progress=rank == 0 and not args.no_progress)
        seconds = time.perf_counter() - started
        test = evaluate_test_split(run) if args.final_test else None
        if rank == 0:
            _report(run, history, seconds, test)
        succeeded = True
        return 0
    except (NonFiniteLossError, CheckpointError, torch.OutOfMemoryError) as exc:
        hint = OOM_HINT if isinstance(exc, torch.OutOfMemoryError) else ""
        print(f"deeplab-train: error: {hint}{exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if rank == 0:
            print(f"\ninterrupted; continue with the same command plus --resume (last "
                  f"checkpoint: {Path(config.out) / CHECKPOINT})", file=sys.stderr)  # fmt: skip
        return 130
    finally:
        if rank_and_world()[1] > 1:
            if succeeded:  # a failed process must not wait here while its peers wait elsewhere
                dist.barrier()
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
