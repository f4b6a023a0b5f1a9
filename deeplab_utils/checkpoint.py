"""Checkpoints: one file holding everything needed to resume a run, written atomically.

A checkpoint is a dict saved with ``torch.save`` and read back with
``torch.load(..., weights_only=True)`` only, so it holds tensors and plain Python values and
nothing else (no pickled classes): the model's and optimiser's state dicts, the schedule,
the mixed-precision scaler, the step, the random-number-generator states, and the model and
training configurations as plain dicts.

Taught in notebooks 07 (saving, resuming) and 08 (``load_model`` for evaluation).
"""

from __future__ import annotations

import dataclasses
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .aspp import aspp_rates
from .files import atomic_write
from .model import ModelConfig, build_model

__all__ = [
    "CheckpointError",
    "get_rng_state",
    "load_checkpoint",
    "load_model",
    "model_config_dict",
    "read_checkpoint_info",
    "read_train_config",
    "save_checkpoint",
    "set_rng_state",
]

# 2 added "run_config" (the run's data and model settings, for checking a resume); files of
# format 1 still load. A file from a newer version of the course is refused with a clear error.
FORMAT_VERSION = 2
# Fields of a model config that do not change the weights' shapes. The paper trains at output
# stride 16 and evaluates at 8 (Sec. 4.1, Table 3), so a mismatch here is allowed.
SHAPE_NEUTRAL_FIELDS = frozenset({"output_stride"})


class CheckpointError(ValueError):
    """A checkpoint file is corrupt, or does not fit its model. Taught in notebook 07."""


def get_rng_state() -> dict[str, Any]:
    """The states of torch (CPU and every CUDA device), NumPy and Python ``random``.

    As tensors, lists and numbers only, so that ``torch.load(weights_only=True)`` reads them.
    Taught in notebook 07.
    """
    # The legacy global generator is the one seed_everything seeds and older code draws from.
    np_state = np.random.get_state(legacy=True)  # noqa: NPY002 ('MT19937', keys, pos, gauss...)
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_version, "internal": list(py_internal), "gauss": py_gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states saved by :func:`get_rng_state`. Taught in notebook 07."""
    torch.set_rng_state(state["torch"].cpu())
    np_state = state["numpy"]
    keys = np_state["keys"].cpu().numpy().astype(np.uint32)
    legacy = ("MT19937", keys, np_state["pos"], np_state["has_gauss"], np_state["cached_gaussian"])
    np.random.set_state(legacy)  # noqa: NPY002
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
    cuda_states = state.get("cuda")
    if cuda_states and torch.cuda.is_available():
        # Only as many devices as both this machine and the checkpoint have.
        for index, cuda_state in enumerate(cuda_states[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state.cpu(), index)


def model_config_dict(model: nn.Module) -> dict[str, Any] | None:
    """``model.config`` as a plain dict (``None`` when the model carries no config)."""
    config = getattr(getattr(model, "module", model), "config", None)
    if config is None:
        return None
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    if isinstance(config, dict):
        return dict(config)
    raise TypeError(f"model.config must be a dataclass or a dict, got {type(config).__name__}")


def save_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scaler: torch.amp.GradScaler | None = None,
    step: int,
    config: dict[str, Any],
    history: dict[str, Any] | None = None,
    model_config: dict[str, Any] | None = None,
    run_config: dict[str, Any] | None = None,
) -> Path:
    """Save a resumable checkpoint to ``path`` atomically; return the path. Taught in notebook 07.

    Args:
        model: its ``state_dict`` is saved (a DDP wrapper is unwrapped); its ``.config``
            (a dataclass) is saved as a dict unless ``model_config`` is given.
        optimizer, scheduler, scaler: their states, when given.
        step: optimiser steps done so far.
        config: the training configuration as a dict of primitives (``TrainConfig.to_dict()``).
        history: ``History.to_dict()``, so that a resumed run keeps its curves.
        run_config: the run's data and model settings (``RunConfig.to_dict()``), so that a
            resume can refuse changed settings.
    """
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise ValueError(f"step must be a non-negative int, got {step!r}")
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict (e.g. TrainConfig.to_dict()), got {config!r}")
    path = Path(path)
    module = getattr(model, "module", model)
    payload: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "step": step,
        "model": module.state_dict(),
        "model_config": model_config if model_config is not None else model_config_dict(module),
        "train_config": dict(config),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": get_rng_state(),
        "history": history,
        "run_config": run_config,
    }
    with atomic_write(path) as file:
        torch.save(payload, file)
    return path


def _read(path: str | Path, map_location: Any, *, mmap: bool = False) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint at {path}: train first (python -m deeplab_utils.train) "
            "or check the path"
        )
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(
            f"{path} is not a readable checkpoint (corrupt, truncated or not a torch file): {exc}"
        ) from exc
    if not isinstance(payload, dict) or "model" not in payload or "step" not in payload:
        raise CheckpointError(
            f"{path} is a torch file but not a checkpoint of this course "
            "(expected a dict with 'model' and 'step'); for a bare state dict use "
            "model.load_state_dict(torch.load(path, weights_only=True))"
        )
    version = payload.get("format_version", 1)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {version!r}, newer than this version of the course "
            f"reads (up to {FORMAT_VERSION}): update the course package "
            "(pip install --upgrade deeplab-course) to load it"
        )
    return payload


def _setting(config: dict[str, Any], name: str) -> Any:
    """A model-config field as loaded from a checkpoint, with ASPP's rates resolved."""
    value = config.get(name)  # a field newer than the checkpoint had its default, None
    if name == "aspp_rates" and value is None:  # None: the paper's rates for the stride
        value = aspp_rates(config.get("output_stride", 16))
    return tuple(value) if isinstance(value, list) else value


def _check_fits(payload: dict[str, Any], model: nn.Module) -> None:
    saved = payload.get("model_config")
    current = model_config_dict(model)
    if saved and current:
        for name in current.keys() - SHAPE_NEUTRAL_FIELDS:
            both_paper = name == "aspp_rates" and saved.get(name) is None and current[name] is None
            if not both_paper and _setting(saved, name) != _setting(current, name):
                # The paper's rates (None) load into a model with the same rates spelled out,
                # but never silently into a model with scaled rates, nor the reverse.
                raise CheckpointError(
                    f"checkpoint was trained with {name}={saved.get(name)!r} but the model has "
                    f"{name}={current[name]!r}; build the model with {name}={saved.get(name)!r} "
                    "(or use load_model(path))"
                )
    own = model.state_dict()
    for key, tensor in payload["model"].items():
        if key in own and own[key].shape != tensor.shape:
            raise CheckpointError(
                f"checkpoint tensor {key!r} has shape {tuple(tensor.shape)} but the model's has "
                f"shape {tuple(own[key].shape)}; was the checkpoint trained with another "
                "number of classes or another architecture?"
            )


def read_checkpoint_info(path: str | Path) -> dict[str, Any]:
    """A checkpoint's settings and progress, without its tensors (the file is memory-mapped).

    Returns:
        ``"step"``, ``"train_config"``, ``"model_config"``, ``"run_config"`` (``None`` where
        the checkpoint holds none) and ``"history"``.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: a corrupt file, or not a checkpoint of this course.
    """
    payload = _read(path, "cpu", mmap=True)
    keys = ("step", "train_config", "model_config", "run_config", "history")
    return {key: payload.get(key) for key in keys}


def read_train_config(path: str | Path) -> dict[str, Any]:
    """The training configuration a checkpoint was saved with (``{}`` if it holds none).

    Raises as :func:`read_checkpoint_info` does.
    """
    return dict(read_checkpoint_info(path)["train_config"] or {})


def load_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scaler: torch.amp.GradScaler | None = None,
    map_location: str | torch.device = "cpu",
    restore_rng: bool = False,
) -> dict[str, Any]:
    """Load a checkpoint into ``model`` (and the optimiser, scheduler, scaler when given).

    Returns the whole checkpoint dict: ``"step"``, ``"train_config"``, ``"model_config"``,
    ``"history"``, ``"rng"``, ... ``restore_rng=True`` also restores the random-number
    generators (done when resuming, so that the continued run repeats the uninterrupted one).
    A ``scaler`` keeps its fresh state when the checkpoint holds none (a run continued with
    mixed precision recalibrates its scale), and saved scaler state is ignored without one.
    Taught in notebook 07.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: a corrupt file, or one that does not fit the model (e.g.
            "checkpoint was trained with num_classes=5 but the model has num_classes=3").
    """
    payload = _read(path, map_location)
    module = getattr(model, "module", model)
    _check_fits(payload, module)
    try:
        module.load_state_dict(payload["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {path} does not fit the model: {exc}") from exc
    for name, target in (("optimizer", optimizer), ("scheduler", scheduler), ("scaler", scaler)):
        if target is None:
            continue
        if name == "scaler" and payload.get(name) is None:
            continue  # a run saved without mixed precision: a fresh scaler finds its own scale
        if payload.get(name) is None:
            raise CheckpointError(
                f"checkpoint {path} holds no {name} state, so it cannot resume training; "
                f"load it without {name}= (weights only)"
            )
        target.load_state_dict(payload[name])
    if restore_rng and payload.get("rng"):
        set_rng_state(payload["rng"])
    return payload


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the DeepLabV3Plus saved in a checkpoint, with its weights, in eval mode.

    Taught in notebook 08.

    Raises:
        CheckpointError: the checkpoint has no model config (then build the model yourself and
            use :func:`load_checkpoint`).
    """
    payload = _read(path, map_location)
    saved = payload.get("model_config")
    if not saved:
        raise CheckpointError(
            f"checkpoint {path} holds no model config; build the model yourself and call "
            "load_checkpoint(path, model=model)"
        )
    model = build_model(ModelConfig(**saved))
    _check_fits(payload, model)
    model.load_state_dict(payload["model"])
    model.to(map_location)
    return model.eval()
