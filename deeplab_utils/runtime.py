"""Where the code runs: the device, mixed precision, processes, and seeding.

Depends on torch alone, so that every layer may use it.
"""

from __future__ import annotations

import itertools
import os
import random

import numpy as np
import torch
import torch.distributed as dist

DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")
_BF16_FEATURES = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu's


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The device asked for, or with ``None``/``"auto"`` CUDA, then Apple MPS, then the CPU.

    A device this machine does not have is a ValueError saying what to use instead.
    """
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(
            f"device must be one of {DEVICE_CHOICES} (or e.g. 'cuda:1'), got {device!r}"
        ) from exc
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {str(device)!r} was asked for but CUDA is not available here; use 'cpu' "
            "(or 'auto'), or on Colab pick Runtime > Change runtime type > GPU"
        )
    if chosen.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {str(device)!r} was asked for but Apple MPS is not available")
    return chosen


def model_device(model: torch.nn.Module) -> torch.device:
    """Where ``model``'s parameters (or buffers) are; the CPU for a model with neither."""
    tensor = next(itertools.chain(model.parameters(), model.buffers()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def amp_is_fast(device: str | torch.device) -> bool:
    """Whether mixed precision speeds training up on ``device``, so a run may turn it on itself:
    on CUDA (fp16 tensor cores), never on MPS, and on a CPU only where torch runs AVX-512 (or AMX)
    kernels *and* the CPU has native bf16 (AVX512-BF16 or AMX). A CPU limited to AVX2 (a laptop,
    or ``ATEN_CPU_CAPABILITY=avx2`` as ``make test-avx2`` plays one) emulates bf16 slowly."""
    kind = torch.device(device).type
    if kind != "cpu":
        return kind == "cuda"
    # Private helpers of torch.cpu; a torch without them gets the safe answer, False.
    native = [getattr(torch.cpu, name, lambda: False)() for name in _BF16_FEATURES]
    return torch.backends.cpu.get_cpu_capability() in ("AVX512", "AMX") and any(native)


def autocast(device: torch.device, enabled: bool) -> torch.autocast:
    """Mixed precision on ``device``: fp16 on CUDA (a GradScaler guards it against underflow),
    bf16 elsewhere, whose range needs no scaler."""
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype, enabled=enabled)


# The stages a CPU computes faster in NCHW than in NHWC: the backbone's last two, whose maps are
# 4x4 at the course's 64-pixel images (there NHWC's 3x3 convolutions, dilated ones most, cost up to
# twice NCHW's). With them NCHW and the rest NHWC, a step takes 0.91x the all-NHWC one with AVX2
# kernels and 0.92-0.95x with bf16; all-NCHW takes 0.96x and 1.06x (benchmarks/README.md).
CPU_NCHW_STAGES = ("backbone.layer3", "backbone.layer4")


def to_layout(model: torch.nn.Module, device: torch.device, channels_last: bool) -> None:
    """Put ``model`` on ``device`` with its convolutions in NHWC (``channels_last``) or as they
    are. On a CPU in NHWC, the :data:`CPU_NCHW_STAGES` the model has stay NCHW: their weights
    are made contiguous and a hook makes their input so (once, however often this is called)."""
    model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    if not (channels_last and device.type == "cpu"):
        return
    for name in CPU_NCHW_STAGES:
        try:
            stage = unwrap(model).get_submodule(name)
        except AttributeError:  # another network (smp's, say): NHWC throughout
            continue
        stage.to(memory_format=torch.contiguous_format)
        if not hasattr(stage, "nchw_hook"):
            stage.nchw_hook = stage.register_forward_pre_hook(_nchw_on_cpu)


def _nchw_on_cpu(stage: torch.nn.Module, args: tuple) -> tuple | None:
    """A forward pre-hook: the stage's input ``(B, C, H, W)`` in NCHW when it is on a CPU."""
    first = args[0]
    return (first.contiguous(), *args[1:]) if first.device.type == "cpu" else None


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes: ``(0, 1)`` outside torchrun."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DistributedDataParallel wrapper (checkpoints hold the real one)."""
    return getattr(model, "module", model)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every GPU) so that a run can be repeated.

    A ValueError unless ``seed`` is an int in ``[0, 2**63)``, torch's range.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an int in [0, 2**63), got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 -- learners and libraries use the global RNG
    torch.manual_seed(seed)  # also seeds every CUDA device
    # For subprocesses (DataLoader workers, Jupyter kernels); Python refuses values >= 2**32.
    os.environ["PYTHONHASHSEED"] = str(seed % 2**32)
