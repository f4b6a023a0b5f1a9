"""Checkpoints: one file holding all a run needs to continue, written atomically and read with
``torch.load(..., weights_only=True)`` only (tensors and plain values, never pickled classes).

Training layer (4). Taught in notebook 07 (saving, resuming, and :func:`load_model`).
"""

from __future__ import annotations

import dataclasses
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


def save_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    step: int,
    optimizer: torch.optim.Optimizer | None = None,
    scaler: torch.amp.GradScaler | None = None,
    history: Any = None,  # training.History
    config: Any = None,  # config.RunConfig, as the run used it
) -> None:
    """Save a resumable checkpoint to ``path`` atomically: a crash mid-write keeps the last one.

    Under torchrun every process calls it and hands over its own generator states (CPU and CUDA:
    all the course's data, augmentation and dropout draw from them); rank 0 writes, and no process
    goes on before the file is complete.
    """
    rank, world = rank_and_world()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []
    mine = {"cpu": torch.get_rng_state(), "cuda": cuda}
    states = [mine]
    if world > 1:
        states = [None] * world
        dist.all_gather_object(states, mine)
    if rank == 0:
        model = unwrap(model)
        payload = {
            "step": step, "model": model.state_dict(), "rng": states, "history": _plain(history),
            "optimizer": None if optimizer is None else optimizer.state_dict(),
            "scaler": None if scaler is None else scaler.state_dict(),
            "config": _plain(config), "model_config": _plain(getattr(model, "config", None)),
        }  # fmt: skip
        with atomic_write(path) as file:
            torch.save(payload, file)
    if world > 1:
        dist.barrier()  # nobody reads a checkpoint rank 0 is still writing


def _plain(value: Any) -> dict[str, Any] | None:
    return None if value is None else dataclasses.asdict(value)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict at ``path`` (tensors on the CPU), or a one-line error saying what is
    wrong with it."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: train first or check the path")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # random bytes, a truncated zip, a pickled class: all unreadable
        first = str(exc).strip().partition("\n")[0] or type(exc).__name__
        raise CheckpointError(
            f"{path} is not a readable checkpoint (corrupt, truncated or not a torch file): {first}"
        ) from exc
    if not isinstance(payload, dict) or not {"model", "step"} <= payload.keys():
        raise CheckpointError(
            f"{path} is a torch file but not a checkpoint of this course; for a bare state dict "
            "use model.load_state_dict(torch.load(path, weights_only=True))"
        )
    return payload


def _setting(config: dict[str, Any], name: str) -> Any:
    """A model setting as the network uses it: the paper's ASPP rates, named (``None``) or spelled
    out, compare equal."""
    if name == "aspp_rates" and config[name] == aspp_rates(config["output_stride"]):
        return None
    return config[name]


def load_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scaler: torch.amp.GradScaler | None = None,
    restore_rng: bool = False,
) -> dict[str, Any]:
    """Load a checkpoint into ``model`` (and the optimiser and scaler when given); return it.

    A model setting or tensor that differs from the saved one's is named, but the output stride
    may differ (trained at 16, evaluated at 8: paper, Table 3). ``restore_rng`` (resuming) lets
    the continued run draw what the uninterrupted one would have. A scaler keeps its fresh state
    when the run was saved without one (a CPU run continued on CUDA with fp16).
    """
    payload, model = read_checkpoint(path), unwrap(model)
    saved, current = payload.get("model_config") or {}, _plain(getattr(model, "config", None))
    for name in (current or {}).keys() & saved.keys() - {"output_stride"}:
        if _setting(saved, name) != _setting(current, name):
            raise CheckpointError(
                f"checkpoint was trained with {name}={saved[name]!r} but the model has "
                f"{name}={current[name]!r}: build it with the same, or use load_model(path)"
            )
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as exc:  # its message names each tensor that differs, and both shapes
        raise CheckpointError(f"checkpoint {path} does not fit the model: {exc}") from exc
    if optimizer is not None:
        if payload.get("optimizer") is None:  # saved with save_checkpoint(..., optimizer=None)
            raise CheckpointError(f"{path} holds weights only: start a new run from them instead")
        optimizer.load_state_dict(payload["optimizer"])
    if scaler is not None and scaler.is_enabled() and payload.get("scaler"):
        scaler.load_state_dict(payload["scaler"])
    rank, states = rank_and_world()[0], payload.get("rng", [])
    if restore_rng and rank < len(states):  # a rank the saved run did not have starts fresh
        torch.set_rng_state(states[rank]["cpu"])
        for index, cuda in enumerate(states[rank]["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda, index)
    return payload


def load_model(path: str | Path) -> nn.Module:
    """Rebuild the network saved in a checkpoint, with its weights, on the CPU in eval mode.
    Taught in notebook 07."""
    payload = read_checkpoint(path)
    if not payload.get("model_config"):
        raise CheckpointError(
            f"checkpoint {path} holds no model config; build the model "
            "yourself and call load_checkpoint(path, model=model)"
        )
    model = build_model(ModelConfig(**payload["model_config"]))
    model.load_state_dict(payload["model"])
    return model.eval()
