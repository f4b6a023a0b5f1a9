"""One training run's pieces, built one way: the main job and the notebooks share :func:`build_run`.

Training layer (4). A :class:`~deeplab_utils.config.RunConfig` says what to train on, which
model and how; :func:`build_run` makes the datasets, the freshly initialised model and the loss,
which :func:`~deeplab_utils.training.fit` trains. Taught in notebook 07.
"""

from __future__ import annotations

import copy
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from .backbone import load_backbone_weights
from .config import RunConfig, settle
from .data import build_dataset, eval_transforms
from .evaluation import eval_loader, evaluate
from .losses import DiceCELoss
from .model import build_model
from .runtime import pick_device

CHECKPOINT = "checkpoint.pt"


@dataclass
class Run:
    """What :func:`build_run` makes of a config: nothing is trained yet."""

    config: RunConfig
    model: nn.Module  # initialised from the run's seed (and its backbone weights)
    train_set: Dataset  # (image (3, S, S), mask (S, S)); class_names, palette, num_classes
    val_set: Dataset  # real datasets: each mask at its picture's original size
    loss_fn: nn.Module  # DiceCELoss: cross-entropy + soft Dice (notebook 05)

    @property
    def checkpoint(self) -> Path | None:
        """Where :func:`~deeplab_utils.training.fit` saves and resumes: in ``config.out``."""
        return None if self.config.out is None else Path(self.config.out) / CHECKPOINT


def _dataset(config: RunConfig, split: str, **options: Any) -> Dataset:
    return build_dataset(
        config.dataset, split=split, root=config.data_dir, image_size=config.image_size,
        seed=config.seed, pets_mode=config.pets_mode, **options,
    )  # fmt: skip


def _model(config: RunConfig, num_classes: int) -> nn.Module:
    torch.manual_seed(config.seed)  # the same initial weights on every run and every process
    # From scratch each residual block starts as the identity, so training takes off sooner.
    scratch = config.backbone_weights is None
    model = build_model(config.model_config(num_classes), zero_init_residual=scratch)
    if not scratch:
        try:
            load_backbone_weights(model, config.backbone_weights)
        except (RuntimeError, ValueError, OSError, EOFError, pickle.UnpicklingError) as exc:
            first = str(exc).splitlines()[0]
            raise ValueError(f"backbone weights {config.backbone_weights}: {first}") from exc
    return model


def build_run(config: RunConfig) -> Run:
    """The datasets, model and loss of ``config`` (a DatasetNotFoundError for missing files
    shows where each was expected)."""
    train_set = _dataset(config, "train", num_samples=config.train_samples,
                         voc_trainaug=config.voc_trainaug, sbd_root=config.sbd_dir)  # fmt: skip
    # Real datasets' validation masks keep their original size: the standard protocol scores
    # every pixel of the original annotation.
    val_set = _dataset(config, "val", num_samples=config.val_samples,
                       original_size_masks=config.dataset != "shapes")  # fmt: skip
    return Run(config, _model(config, train_set.num_classes), train_set, val_set, DiceCELoss())


def preview_batch(run: Run, n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` validation images ``(n, 3, S, S)`` and their masks ``(n, S, S)``, at the
    model's input size, to draw beside each other (a real dataset's validation masks, kept at
    their original size for scoring, are read again resized, from the same file list)."""
    shown = run.val_set
    if run.config.dataset != "shapes":
        shown = copy.copy(run.val_set)  # the same files; masks resized with the images
        shown.transform = eval_transforms(run.config.image_size)
    samples = [shown[i] for i in range(min(n, len(shown)))]
    return torch.stack([s[0] for s in samples]), torch.stack([s[1] for s in samples])


def evaluate_test_split(run: Run) -> dict[str, Any]:
    """:func:`~deeplab_utils.evaluation.evaluate`'s metrics on the test split, at each picture's
    original size, with ``"split": "test"`` and ``"images"``: the final score, once training and
    model choice are done. Only Oxford-IIIT Pet has a labelled test split (its validation set is
    a held-out tenth of trainval); a run never reads it otherwise."""
    test_set = _dataset(run.config, "test", original_size_masks=True)
    device = pick_device(run.config.device)
    amp = settle(run.config, device).amp  # the precision the run trained in
    metrics = evaluate(run.model, eval_loader(test_set, run.config), device=device, amp=amp)
    return {"split": "test", "images": len(test_set), **metrics}
