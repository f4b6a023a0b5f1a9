"""Checkpoints: one file holding all a run needs to continue, written atomically.

Training layer (4). A checkpoint is a dict saved with ``torch.save`` and read with
``torch.load(..., weights_only=True)`` only, so it holds tensors and plain values, never pickled
classes: the step, the model's and optimiser's states, the fp16 scaler's, each process's torch
random-generator states, the history and the run's settled config. Taught in notebook 07
(saving, resuming, and :func:`load_model` to rebuild the network).
"""

from __future__ import annotations

import dataclasses
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .aspp import aspp_rates
from .files import atomic_write
from .model import ModelConfig, build_model
from .runtime import rank_and_world, unwrap


class CheckpointError(ValueError):
    """A checkpoint file is corrupt, or does not fit its model (the main job says so in a line)."""


def rng_state() -> dict[str, Any]:
    """This process's torch generators (CPU and CUDA): all the course's data, augmentation and
    dropout draw from, so a resumed run restores them to draw what it would have."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []
    return {"cpu": torch.get_rng_state(), "cuda": cuda}


def save_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    step: int,
    optimizer: torch.optim.Optimizer | None = None,
    scaler: torch.amp.GradScaler | None = None,
    history: dict[str, Any] | None = None,
    config: Any = None,
) -> None:
    """Save a resumable checkpoint to ``path`` atomically: a crash mid-write keeps the last one.

    Under torchrun every process calls it (each hands over its own generator states); rank 0
    writes, and no process goes on before the file is complete. ``config`` (a dataclass or a
    dict) is stored as a dict; the model's own ``.config`` (a ModelConfig) too.
    """
    rank, world = rank_and_world()
    states = [rng_state()]
    if world > 1:
        states = [None] * world
        dist.all_gather_object(states, rng_state())
    if rank == 0:
        model = unwrap(model)
        model_config = getattr(model, "config", None)
        payload = {
            "step": step, "model": model.state_dict(), "rng": states, "history": _plain(history),
            "optimizer": None if optimizer is None else optimizer.state_dict(),
            "scaler": None if scaler is None else scaler.state_dict(),
            "config": _plain(config), "model_config": _plain(model_config),
        }  # fmt: skip
        with atomic_write(path) as file:
            torch.save(payload, file)
    if world > 1:
        dist.barrier()  # nobody reads a checkpoint rank 0 is still writing


def _plain(config: Any) -> dict[str, Any] | None:
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    return None if config is None else dict(config)


def read_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """The checkpoint dict at ``path``, or a one-line error saying what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: train first or check the path")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path} is not a readable checkpoint (corrupt, truncated or not a torch file): {first}"
        ) from exc
    if not isinstance(payload, dict) or not {"model", "step"} <= payload.keys():
        raise CheckpointError(
            f"{path} is a torch file but not a checkpoint of this course; for a bare state dict "
            "use model.load_state_dict(torch.load(path, weights_only=True))"
        )
    return payload


def _load_weights(payload: dict[str, Any], model: nn.Module, path: str | Path) -> None:
    """Load the weights, naming the setting or tensor that differs when they do not fit."""
    saved, current = payload.get("model_config") or {}, _plain(getattr(model, "config", None))
    for name in (current or {}).keys() - {"output_stride"}:  # OS 16 -> 8: paper, Table 3
        if name in saved and _setting(saved, name) != _setting(current, name):
            raise CheckpointError(
                f"checkpoint was trained with {name}={saved[name]!r} but the model has "
                f"{name}={current[name]!r}; build the model with {name}={saved[name]!r} "
                "(or use load_model(path))"
            )
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as exc:  # its message names each tensor that differs, and both shapes
        raise CheckpointError(f"checkpoint {path} does not fit the model: {exc}") from exc


def _setting(config: dict[str, Any], name: str) -> Any:
    """A model setting as the model uses it: ASPP's ``None`` is the paper's rates."""
    value = tuple(config[name]) if isinstance(config[name], list) else config[name]
    if name == "aspp_rates" and value in (None, aspp_rates(config["output_stride"])):
        return "paper"  # the paper's rates, by name or spelled out: the same model
    return value


def load_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scaler: torch.amp.GradScaler | None = None,
    restore_rng: bool = False,
) -> dict[str, Any]:
    """Load a checkpoint into ``model`` (and the optimiser and scaler when given); return it.

    ``restore_rng`` (when resuming) restores this process's generators, so the continued run
    draws what the uninterrupted one would have. A scaler keeps its fresh state when the run was
    saved without one (a CPU run continued on CUDA with fp16 finds its own scale).
    """
    payload = read_checkpoint(path, "cpu")
    _load_weights(payload, unwrap(model), path)
    if optimizer is not None:
        if payload.get("optimizer") is None:
            raise CheckpointError(
                f"{path} holds weights only (no optimiser state): it cannot "
                "be resumed; start a new run from its weights instead"
            )
        optimizer.load_state_dict(payload["optimizer"])
    if scaler is not None and scaler.is_enabled() and payload.get("scaler"):
        scaler.load_state_dict(payload["scaler"])
    rank = rank_and_world()[0]
    if restore_rng and rank < len(payload.get("rng") or []):
        state = payload["rng"][rank]
        torch.set_rng_state(state["cpu"])
        for index, cuda in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda, index)
    return payload


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the network saved in a checkpoint, with its weights, in eval mode. Notebook 07."""
    payload = read_checkpoint(path)
    if not payload.get("model_config"):
        raise CheckpointError(
            f"checkpoint {path} holds no model config; build the model "
            "yourself and call load_checkpoint(path, model=model)"
        )
    model = build_model(ModelConfig(**payload["model_config"]))
    _load_weights(payload, model, path)
    return model.to(map_location).eval()
