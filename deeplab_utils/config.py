"""One run's settings: :class:`RunConfig`, the course's recipe as its defaults.

Training layer (4). The main job's options are its fields; the notebooks use smaller instances
(:mod:`deeplab_utils.course`). A field left as ``None`` is decided where it is used, by
:func:`settle`, so ``dataclasses.replace(RunConfig(), optimizer="sgd")`` gets SGD's learning rate.
Taught in notebook 07.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from .aspp import check_rates, scaled_aspp_rates
from .model import ModelConfig
from .runtime import amp_is_fast

# Peak learning rate and the part of the steps that warms up, per optimiser: Adam's for the
# shapes from random weights (the main job's, chosen on seed 2 and confirmed on seeds 0-4:
# benchmarks/README.md), SGD's for fine-tuning from ImageNet weights, the rate near the paper's
# 0.007 (DeepLabv3, Sec. 4).
DEFAULT_LR = {"adam": 8e-3, "sgd": 0.01}
WARMUP_PART = {"adam": 0.2, "sgd": 0.1}
# Progressive resizing of the shapes recipe (benchmarks/README.md); photographs train at full size.
SHAPES_START_SCALE = 0.75
# Steps of the main job. Where mixed precision is fast (CUDA, a CPU with native bf16) a step costs
# less, so the same ten minutes buy more of them (benchmarks/README.md).
MAIN_JOB_STEPS = {False: 950, True: 1700}
# Settings a resumed run may change: where things are, how often it reports and how fast it
# runs. Any other change would make the continued run another experiment.
FREE_ON_RESUME = frozenset(
    {"data_dir", "sbd_dir", "out", "val_every", "workers", "device", "amp", "channels_last"}
)


def option(default: Any, help: str) -> Any:
    """A field with its command-line help: the option and its text are defined once, here."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class RunConfig:
    """Everything a training run needs but the code: data, model, recipe, and where it runs.

    A bad value raises a ValueError naming the field, so every layer below may trust it.
    Taught in notebook 07.
    """

    # --- data ---
    dataset: Literal["shapes", "pets", "voc"] = option(
        "shapes", "shapes is built in; pets (Oxford-IIIT Pet) and voc (PASCAL VOC 2012) need files"
    )
    data_dir: str = option("data", "folder holding the pets / voc files")
    image_size: int = option(64, "side of the square training images (px)")
    train_samples: int | None = option(None, "training images (default: all; shapes: 5000)")
    val_samples: int | None = option(None, "validation images (default: all; shapes: 256)")
    pets_mode: Literal["binary", "trimap"] = option(
        "binary", "pets: pet/background with the border band ignored (the usual IoU), or trimap"
    )
    voc_trainaug: bool = option(
        False, "voc: train on VOC train + SBD (10,582 images, VOC val left out) as the paper does"
    )
    sbd_dir: str | None = option(None, "folder holding SBD's benchmark_RELEASE/ (default: data)")
    # --- model ---
    output_stride: Literal[16, 8] = option(16, "input size / feature size (paper, Table 3)")
    separable: bool = option(True, "atrous separable convolutions in ASPP and decoder (Sec. 3.1)")
    aspp_rates: str | tuple[int, ...] = option(
        "scaled", "ASPP's rates: 'scaled' to the image (notebook 02), 'paper' or e.g. 2,4,6"
    )
    multi_grid: tuple[int, int, int] | None = option(
        None, "unit rates of layer4's blocks, e.g. 1 2 4 (DeepLabv3, Sec. 3.2; default: none)"
    )
    backbone_weights: str | None = option(
        None, "'imagenet' (torchvision's, downloaded once) or a .pth file (default: random)"
    )
    # --- recipe ---
    steps: int | None = option(None, f"optimiser steps (default: {MAIN_JOB_STEPS[False]}, "
                               f"{MAIN_JOB_STEPS[True]} with mixed precision)")  # fmt: skip
    batch_size: int = option(16, "images per step (per process under torchrun)")
    optimizer: Literal["adam", "sgd"] = option(
        "adam", "adam (the seed's; tuned here) or sgd (the paper's: momentum 0.9, decay 1e-4)"
    )
    lr: float | None = option(None, f"peak learning rate (default: {DEFAULT_LR['adam']:g} adam, "
                              f"{DEFAULT_LR['sgd']:g} sgd)")  # fmt: skip
    warmup_steps: int | None = option(None, "linear warm-up steps (default: warmup_part of steps)")
    warmup_part: float | None = option(
        None,
        "the part of the steps that warms up, unless warmup_steps (default: "
        f"{WARMUP_PART['adam']} adam, {WARMUP_PART['sgd']} sgd)",
    )
    poly_power: float = option(0.9, "exponent of the poly decay (DeepLabv3, Sec. 4)")
    grad_clip: float | None = option(None, "largest global gradient norm (default: no clipping)")
    start_scale: float | None = option(
        None, "progressive resizing: the first steps' images scaled by this (shapes: 0.75, else 1)"
    )
    start_part: float = option(0.5, "the part of the steps at start_scale")
    seed: int = option(0, "seed of the initial weights, the data and its order")
    # --- where and how it runs ---
    amp: bool | None = option(None, "mixed precision (default: where fast: CUDA, CPUs with bf16)")
    channels_last: bool | None = option(
        None, "NHWC convolutions (default: on a CPU, where the backbone's layer3-4 stay NCHW)"
    )
    device: str = option("auto", "auto, cpu, cuda, cuda:1, mps")
    workers: int = option(0, "DataLoader worker processes (0: a resume repeats the run exactly)")
    val_every: int = option(200, "steps between validations and checkpoints (0: at the end)")
    out: str | None = option(
        None, "folder of checkpoint.pt, history.json, predictions.png (default: runs/<dataset>)"
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check_field(f.name, getattr(self, f.name))
        if self.steps is not None and (self.warmup_steps or 0) >= self.steps:
            raise ValueError(
                f"warmup_steps must be below steps ({self.steps}), got {self.warmup_steps}"
            )
        if self.voc_trainaug and self.dataset != "voc":
            raise ValueError(f"voc_trainaug needs dataset='voc', got {self.dataset!r}")
        if self.aspp_rates not in ("scaled", "paper"):  # (2, 4, 6), or "2,4,6" from the CLI
            words = str(self.aspp_rates).strip("()[] ").split(",")
            rates = [int(w) if w.strip().isdigit() else w for w in words]
            allowed = "'scaled', 'paper' or positive ints such as 2,4,6"
            try:
                object.__setattr__(self, "aspp_rates", check_rates(rates, "aspp_rates", allowed))
            except ValueError:
                raise ValueError(f"aspp_rates must be {allowed}, got {self.aspp_rates!r}") from None
        # The model's own checks; multi_grid as a tuple (JSON gives a list)
        object.__setattr__(self, "multi_grid", self.model_config(2).multi_grid)

    def model_config(self, num_classes: int) -> ModelConfig:
        """The :class:`~deeplab_utils.model.ModelConfig` of this run's network."""
        rates = self.aspp_rates
        if rates == "scaled":
            rates = scaled_aspp_rates(self.output_stride, self.image_size)
        rates = None if rates == "paper" else rates  # None: the paper's, for the output stride
        return ModelConfig(num_classes, self.output_stride, self.separable, aspp_rates=rates,
                           multi_grid=self.multi_grid)  # fmt: skip


_HINTS = typing.get_type_hints(RunConfig)
# The smallest value of each integer field.
_LOWEST = {"image_size": 1, "train_samples": 1, "val_samples": 1, "steps": 1, "batch_size": 1}
_LOWEST |= {"warmup_steps": 0, "seed": 0, "workers": 0, "val_every": 0}


# The allowed values of each float field, said and tested (poly_power 0: a constant rate).
_RANGES = {
    "lr": ("a number > 0", lambda v: 0 < v < math.inf),
    "grad_clip": ("a number > 0", lambda v: 0 < v < math.inf),
    "poly_power": ("a number >= 0", lambda v: 0 <= v < math.inf),
    "start_scale": ("a number in (0, 1]", lambda v: 0 < v <= 1),
    "start_part": ("a number in [0, 1)", lambda v: 0 <= v < 1),
    "warmup_part": ("a number in [0, 1)", lambda v: 0 <= v < 1),
}


def _check_field(name: str, value: Any) -> None:
    """A ValueError naming the field unless ``value`` fits its annotation (and its range)."""
    kind = _HINTS[name]
    allowed = typing.get_args(kind) if typing.get_origin(kind) is Literal else None
    if value is None and type(None) in typing.get_args(kind):
        return
    if allowed is not None and value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    if bool in (kind, *typing.get_args(kind)) and not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    if name in _LOWEST and (type(value) is not int or value < _LOWEST[name]):
        raise ValueError(f"{name} must be an int >= {_LOWEST[name]}, got {value!r}")
    allowed, test = _RANGES.get(name, ("", None))
    if test is not None and not (type(value) in (int, float) and test(value)):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")


def peak_lr(config: RunConfig) -> float:
    """The learning rate at the top of the schedule: ``config.lr``, or the optimiser's own."""
    return DEFAULT_LR[config.optimizer] if config.lr is None else config.lr


def settle(config: RunConfig, device: torch.device) -> RunConfig:
    """``config`` with every ``None`` (and ``"auto"``) decided for ``device``, where a run starts:
    mixed precision where it is fast (:func:`~deeplab_utils.runtime.amp_is_fast`), NHWC on a
    CPU, the main job's steps for that precision, the optimiser's learning rate and part of the
    steps as warm-up, progressive resizing on the shapes."""
    amp = amp_is_fast(device) if config.amp is None else config.amp
    steps = MAIN_JOB_STEPS[amp] if config.steps is None else config.steps
    nhwc = device.type == "cpu" if config.channels_last is None else config.channels_last
    part = WARMUP_PART[config.optimizer] if config.warmup_part is None else config.warmup_part
    warmup = config.warmup_steps
    if warmup is None:  # the part's floor; 1e-9 against products such as 0.29 * 100 = 28.999...
        warmup = int(part * steps + 1e-9)
    scale = config.start_scale or (SHAPES_START_SCALE if config.dataset == "shapes" else 1.0)
    decided = {"amp": amp, "steps": steps, "channels_last": nhwc, "warmup_steps": warmup,
               "warmup_part": part}  # fmt: skip
    return dataclasses.replace(config, device=str(device), lr=peak_lr(config), start_scale=scale,
                               **decided)  # fmt: skip


class ResumeError(ValueError):
    """A run cannot continue with these settings; the message names the setting and values."""


def resumed(config: RunConfig, saved: dict[str, Any], done: int) -> RunConfig:
    """``config`` continuing a run saved with ``saved`` (its settled config) after ``done`` steps.

    A field left as ``None`` takes the run's value (its precision, steps, warm-up...); a field in
    ``FREE_ON_RESUME`` may change; ``steps`` may grow (the poly schedule stretches to the new
    total). Any other difference raises :class:`ResumeError`.
    """
    kept = {}
    for f in dataclasses.fields(config):
        if f.name not in saved:  # a setting newer than the saved run (settled ones decide it)
            continue
        new, old = getattr(config, f.name), saved[f.name]
        old = tuple(old) if isinstance(old, list) else old
        if new is None:
            kept[f.name] = old
        elif new != old and f.name not in FREE_ON_RESUME and (f.name != "steps" or new < done):
            hint = f" (it has done {done} steps)" if f.name == "steps" else ""
            raise ResumeError(
                f"it was trained with {f.name}={old!r}{hint}, now {f.name}={new!r}; "
                "use the run's setting, or start a new run in another folder"
            )
    return dataclasses.replace(config, **kept)
