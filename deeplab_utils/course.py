"""The course's own trained model: notebook 07 trains it, notebook 08 reuses it.

Teaching-aid layer. Both notebooks build the same run with :func:`prepare_run` (DeepLabV3+ on
the built-in ShapesDataset, sizes from :func:`~deeplab_utils.runtime.run_sizes`), so that
notebook 08 loads what notebook 07 saved, or, run on its own, trains the very same model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .checkpoint import load_checkpoint, read_train_config
from .data import build_dataset
from .losses import DiceCELoss
from .model import DeepLabV3Plus
from .runtime import RunSizes
from .training import History, TrainConfig, fit, make_loader


@dataclass
class CourseRun:
    """Everything a training run of the course needs, built by :func:`prepare_run`."""

    model: nn.Module  # DeepLabV3Plus, freshly initialised from the run's seed
    train_set: Dataset  # ShapesDataset with training augmentation
    val_set: Dataset  # ShapesDataset of unseen scenes, no augmentation
    train_loader: DataLoader  # reproducible order (resumable)
    val_loader: DataLoader
    config: TrainConfig
    loss_fn: nn.Module  # DiceCELoss: cross-entropy + soft Dice (notebook 05)
    checkpoint: Path  # <workdir>/runs/course-<short|full>/checkpoint.pt


def prepare_run(sizes: RunSizes, workdir: str | Path, *, seed: int = 0) -> CourseRun:
    """Build the model, data, loaders and training configuration of the course's run.

    Args:
        sizes: from :func:`~deeplab_utils.runtime.run_sizes`.
        workdir: folder holding ``runs/`` (the ``WORKDIR`` of the notebooks' setup cell).
        seed: seeds the weights, the data and its order.
    """
    common = {"image_size": sizes.image_size, "seed": seed}
    train_set = build_dataset("shapes", split="train", num_samples=sizes.train_samples, **common)
    val_set = build_dataset("shapes", split="val", num_samples=sizes.val_samples, **common)
    torch.manual_seed(seed)  # the same initial weights every time
    # Residual blocks start as the identity: from scratch, training takes off sooner.
    model = DeepLabV3Plus(train_set.num_classes, zero_init_residual=True)
    config = TrainConfig(
        steps=sizes.steps,
        batch_size=sizes.batch_size,
        optimizer="adam",
        lr=2e-3,  # tuned on this dataset at batch 8 (the main job, at batch 24, uses more)
        warmup_steps=sizes.steps // 10,
        eval_every=sizes.eval_every,
        checkpoint_every=sizes.eval_every,
        seed=seed,
    )
    name = "course-full" if sizes.full else "course-short"
    return CourseRun(
        model=model,
        train_set=train_set,
        val_set=val_set,
        train_loader=make_loader(train_set, batch_size=sizes.batch_size, shuffle=True, seed=seed),
        val_loader=make_loader(val_set, batch_size=sizes.batch_size, shuffle=False, seed=seed),
        config=config,
        loss_fn=DiceCELoss(),
        checkpoint=Path(workdir) / "runs" / name / "checkpoint.pt",
    )


def train(run: CourseRun, *, progress: bool = True) -> History:
    """Train ``run.model`` with :func:`~deeplab_utils.training.fit`, resuming a stopped run.

    A checkpoint of the same configuration that stopped early (say, Colab disconnected) is
    continued; one of another configuration is replaced.
    """
    resume = run.checkpoint.exists() and read_train_config(run.checkpoint) == run.config.to_dict()
    return fit(
        run.model,
        run.train_loader,
        run.val_loader,
        config=run.config,
        loss_fn=run.loss_fn,
        num_classes=run.train_set.num_classes,
        checkpoint_path=run.checkpoint,
        resume=resume,
        progress=progress,
    )


def load_or_train(
    sizes: RunSizes, workdir: str | Path, *, seed: int = 0, progress: bool = True
) -> tuple[CourseRun, History]:
    """The course's trained model: loaded if a finished run is on disk, else trained now.

    Returns:
        The run (``run.model`` on the CPU, in eval mode, whether loaded or trained on a GPU) and
        its training history.
    """
    run = prepare_run(sizes, workdir, seed=seed)
    if run.checkpoint.exists():
        state = load_checkpoint(run.checkpoint, model=run.model)
        if state["train_config"] == run.config.to_dict() and state["step"] == run.config.steps:
            run.model.eval()
            return run, History.from_dict(state["history"])
        run = prepare_run(sizes, workdir, seed=seed)  # fresh weights: that run was different
    history = train(run, progress=progress)
    run.model.cpu().eval()  # where a loaded model is: the same device either way
    return run, history
