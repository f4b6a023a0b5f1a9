"""One training run, built one way: the main job and the notebooks share :func:`build_run`.

A :class:`RunConfig` says what to train on and which model; :func:`build_run` makes the
datasets, loaders, model and loss; :func:`train_run` trains them, storing the config in the
checkpoint so that :func:`check_resume` can refuse other settings. Taught in notebook 07.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .aspp import check_rates, scaled_aspp_rates
from .backbone import load_backbone_weights
from .checkpoint import CheckpointError, read_checkpoint_info
from .data import (
    DATASET_NAMES,
    PETS_MODES,
    build_dataset,
    collate_original_size,
    eval_transforms,
)
from .losses import DiceCELoss
from .model import ModelConfig, build_model
from .training import History, TrainConfig, evaluate, fit, make_loader

__all__ = [
    "Run",
    "RunConfig",
    "ResumeError",
    "build_run",
    "check_resume",
    "evaluate_test_split",
    "preview_batch",
    "train_run",
]

# Settings a resumed run may change: how often it reports, where the data lives, and how fast
# it runs; everything else would make the continued run a different experiment.
FREE_ON_RESUME = frozenset(
    {"data_dir", "eval_every", "checkpoint_every", "log_every", "amp", "channels_last"}
)


class ResumeError(CheckpointError):
    """A run cannot be resumed with these settings; the message names the setting and values."""


@dataclass(frozen=True)
class RunConfig:
    """What a run trains on, which model, and (``train``) how; the main job's defaults.

    Taught in notebook 07.
    """

    dataset: str = "shapes"  # "shapes" (built in), "pets" or "voc" (files in data_dir)
    data_dir: str = "data"  # folder of the real datasets, in torchvision's layout
    image_size: int = 64  # side of the square training images
    train_samples: int | None = None  # training set length; None = all (shapes: 5000)
    val_samples: int | None = None  # validation set length; None = all (shapes: 256)
    output_stride: int = 16  # 16 trains about 3x cheaper than 8 (paper, Table 3)
    separable: bool = True  # atrous separable convolutions in ASPP and decoder (Sec. 3.1)
    # ASPP's atrous rates: "scaled" follows the image (scaled_aspp_rates: the paper's rates
    # fall mostly outside a small image's feature map, notebook 02), "paper", or a tuple.
    aspp_rates: str | tuple[int, ...] = "scaled"
    multi_grid: tuple[int, ...] | None = None  # layer4's unit rates, e.g. (1, 2, 4); None: one rate
    # "imagenet" (torchvision's ImageNet ResNet-50, downloaded once), a .pth state dict, or
    # None: random initialisation.
    backbone_weights: str | None = None
    pets_mode: str = "binary"  # pets: "binary" pet/background (the usual IoU) or "trimap"
    voc_trainaug: bool = False  # voc: train on VOC train + SBD (10,582 images), not VOC train
    sbd_dir: str | None = None  # where SBD is (with voc_trainaug); None = data_dir
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.dataset not in DATASET_NAMES:
            raise ValueError(f"dataset must be one of {DATASET_NAMES}, got {self.dataset!r}")
        if self.pets_mode not in PETS_MODES:
            raise ValueError(f"pets_mode must be one of {PETS_MODES}, got {self.pets_mode!r}")
        if self.voc_trainaug and self.dataset != "voc":
            raise ValueError(f"voc_trainaug needs dataset='voc', got dataset={self.dataset!r}")
        for name in ("image_size", "train_samples", "val_samples"):
            value = getattr(self, name)
            invalid = not isinstance(value, int) or isinstance(value, bool) or value < 1
            if value is not None and invalid:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.aspp_rates not in ("scaled", "paper"):
            rates = check_rates(self.aspp_rates, "aspp_rates", "'scaled', 'paper' or positive ints")
            object.__setattr__(self, "aspp_rates", rates)
        if not isinstance(self.train, TrainConfig):
            raise TypeError(f"train must be a TrainConfig, got {type(self.train).__name__}")
        self.model_config(2)  # output_stride, separable: the model's own checks

    def model_config(self, num_classes: int) -> ModelConfig:
        """The :class:`~deeplab_utils.model.ModelConfig` of this run's network."""
        rates: tuple[int, ...] | None
        if self.aspp_rates == "scaled":
            rates = scaled_aspp_rates(self.output_stride, self.image_size)
        else:
            rates = None if self.aspp_rates == "paper" else tuple(self.aspp_rates)
        return ModelConfig(
            num_classes=num_classes,
            output_stride=self.output_stride,
            separable=self.separable,
            aspp_rates=rates,
            multi_grid=self.multi_grid,
        )

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of primitives (the ``train`` config nested, its lr and warm-up
        resolved), as stored in checkpoints and compared on resume."""
        return dataclasses.asdict(self) | {"train": self.train.to_dict()}


@dataclass
class Run:
    """Everything a training run needs, built by :func:`build_run`."""

    config: RunConfig
    model: nn.Module  # freshly initialised from the run's seed (or its backbone weights)
    train_set: Dataset
    val_set: Dataset
    train_loader: DataLoader  # reproducible order (resumable)
    val_loader: DataLoader
    loss_fn: nn.Module  # DiceCELoss: cross-entropy + soft Dice (notebook 05)
    checkpoint: Path | None  # where train_run saves; None: nowhere


def _datasets(config: RunConfig) -> tuple[Dataset, Dataset]:
    """Training and validation sets; real datasets' val masks keep their original size (the
    standard protocol scores every pixel of the original annotation)."""
    common = {
        "root": config.data_dir, "image_size": config.image_size, "seed": config.train.seed,
        "pets_mode": config.pets_mode,
    }  # fmt: skip
    train = build_dataset(
        config.dataset, split="train", num_samples=config.train_samples,
        voc_trainaug=config.voc_trainaug, sbd_root=config.sbd_dir, **common,
    )  # fmt: skip
    val = build_dataset(
        config.dataset, split="val", num_samples=config.val_samples,
        original_size_masks=config.dataset != "shapes", **common,
    )  # fmt: skip
    if len(train) < config.train.batch_size:
        raise ValueError(
            f"batch_size {config.train.batch_size} is larger than the training set ({len(train)})"
        )
    return train, val


def _model(config: RunConfig, num_classes: int) -> nn.Module:
    torch.manual_seed(config.train.seed)  # the same initial weights on every run and rank
    # From scratch every residual block starts as the identity, so training takes off sooner.
    model = build_model(
        config.model_config(num_classes), zero_init_residual=config.backbone_weights is None
    )
    if config.backbone_weights is not None:
        try:
            load_backbone_weights(model, config.backbone_weights)
        except (RuntimeError, ValueError, OSError, EOFError, pickle.UnpicklingError) as exc:
            first = str(exc).splitlines()[0]
            raise ValueError(f"backbone weights {config.backbone_weights}: {first}") from exc
    return model


def build_run(
    config: RunConfig,
    *,
    checkpoint: str | Path | None = None,
    workers: int = 0,
    num_replicas: int = 1,
    rank: int = 0,
    pin_memory: bool = False,
) -> Run:
    """Build the datasets, loaders, model and loss of ``config``; nothing is trained yet.

    Args:
        checkpoint: where :func:`train_run` saves (and resumes from).
        workers: DataLoader worker processes (0 keeps a resumed run exactly reproducible).
        num_replicas, rank: the DDP world size and this process's rank.

    Raises:
        ValueError: a setting that cannot work (e.g. a batch larger than the training set).
        DatasetNotFoundError: a real dataset's files are missing (the message shows the layout).
    """
    train_set, val_set = _datasets(config)
    options = {"batch_size": config.train.batch_size, "seed": config.train.seed}
    options |= {"num_replicas": num_replicas, "rank": rank, "workers": workers}
    collate = collate_original_size if config.dataset != "shapes" else None
    return Run(
        config=config,
        model=_model(config, train_set.num_classes),
        train_set=train_set,
        val_set=val_set,
        train_loader=make_loader(train_set, shuffle=True, pin_memory=pin_memory, **options),
        val_loader=make_loader(val_set, shuffle=False, collate_fn=collate, **options),
        loss_fn=DiceCELoss(),
        checkpoint=None if checkpoint is None else Path(checkpoint),
    )


def preview_batch(run: Run, n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` validation images ``(n, 3, S, S)`` and their masks ``(n, S, S)``.

    The masks at the model's input size, to draw beside the images: a real dataset's
    validation masks keep their original size for scoring, so they are read again resized,
    from the run's own validation set (its file list is not scanned again).
    """
    shown = run.val_set
    if run.config.dataset != "shapes":
        shown = copy.copy(run.val_set)  # the same files; masks resized with the images
        shown.transform = eval_transforms(run.config.image_size)
    n = min(n, len(shown))
    samples = [shown[i] for i in range(n)]
    return torch.stack([s[0] for s in samples]), torch.stack([s[1] for s in samples])


def evaluate_test_split(
    run: Run,
    *,
    model: nn.Module | None = None,
    device: torch.device | str | None = None,
    workers: int = 0,
    num_replicas: int = 1,
    rank: int = 0,
) -> dict[str, Any]:
    """The final score on the dataset's test split, once training and model choice are done.

    Only Oxford-IIIT Pet has a labelled test split; the run never reads it otherwise (its
    validation set is a held-out part of trainval), so choose models and settings on validation
    and call this once. Every test image is scored at its original size, as validation is.

    Args:
        model: the model to score instead of ``run.model`` (e.g. DDP-wrapped: then every
            process calls this with its ``num_replicas`` and ``rank``).

    Returns:
        :func:`~deeplab_utils.training.evaluate`'s metrics, with ``"split": "test"`` and
        ``"images"``: the number of test images.

    Raises:
        ValueError: the dataset has no labelled test split (shapes, VOC).
    """
    config = run.config
    test_set = build_dataset(
        config.dataset, split="test", root=config.data_dir, image_size=config.image_size,
        pets_mode=config.pets_mode, original_size_masks=True,
    )  # fmt: skip
    loader = make_loader(
        test_set, batch_size=config.train.batch_size, shuffle=False, workers=workers,
        num_replicas=num_replicas, rank=rank, collate_fn=collate_original_size,
    )  # fmt: skip
    metrics = evaluate(
        run.model if model is None else model, loader, test_set.num_classes, device=device,
        amp=bool(config.train.amp), channels_last=bool(config.train.channels_last),
    )  # fmt: skip
    return {"split": "test", "images": len(test_set), **metrics}


def _flat(config: dict[str, Any]) -> dict[str, Any]:
    flat = {k: v for k, v in config.items() if k != "train"}
    return {**flat, **config.get("train", {})}


def check_resume(config: RunConfig, path: str | Path) -> RunConfig:
    """The config to continue the run saved at ``path`` with, or a :class:`ResumeError`.

    Every setting must equal the saved one (``lr`` and ``warmup_steps`` compared as the runs
    use them, defaults resolved), except those in ``FREE_ON_RESUME`` and ``steps``,
    which may grow (the poly schedule is recomputed for the new total: the learning rate rises
    again, then decays to 0 at the new end). ``amp`` and ``channels_last`` left as None take
    the saved run's values, so a resumed run keeps its precision on any machine.

    Raises:
        ResumeError: naming the first changed setting and both values.
        FileNotFoundError, CheckpointError: no checkpoint, or a corrupt one.
    """
    info = read_checkpoint_info(path)
    saved = info["run_config"]
    if not saved:
        raise ResumeError(
            f"{path} does not record its run's settings (written by an older version of the "
            "course), so it cannot be checked for a resume; start a new run"
        )
    done, used = info["step"], info["train_config"] or {}
    current = _flat(config.to_dict())
    for name, value in _flat(saved).items():
        new = current.get(name)
        if isinstance(value, list):
            value = tuple(value)
        if name in FREE_ON_RESUME or new == value:
            continue
        if name == "steps" and new >= done:
            continue
        hint = f" (it has done {done} steps)" if name == "steps" else ""
        raise ResumeError(
            f"cannot resume {path}: it was trained with {name}={value!r}{hint}, now "
            f"{name}={new!r}; use the run's setting, or start a new run in another folder"
        )
    keep = {
        name: used.get(name) if getattr(config.train, name) is None else getattr(config.train, name)
        for name in ("amp", "channels_last")
    }
    return dataclasses.replace(config, train=dataclasses.replace(config.train, **keep))


def train_run(
    run: Run,
    *,
    resume: bool = False,
    model: nn.Module | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> History:
    """Train ``run`` with :func:`~deeplab_utils.training.fit`, evaluating on its val set.

    Args:
        resume: continue from ``run.checkpoint`` (check it first with :func:`check_resume`).
        model: the model to train instead of ``run.model``, e.g. ``run.model`` wrapped in
            DistributedDataParallel.
    """
    return fit(
        model if model is not None else run.model, run.train_loader, run.val_loader,
        config=run.config.train, loss_fn=run.loss_fn, num_classes=run.train_set.num_classes,
        checkpoint_path=run.checkpoint, resume=resume, device=device, progress=progress,
        run_config=run.config.to_dict(),
    )  # fmt: skip
