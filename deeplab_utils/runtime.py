"""Where the code runs: device choice, seeding, and the notebooks' run sizes (CPU vs GPU).

Depends on torch alone, so that every layer (training included) may use it.
"""

from __future__ import annotations

import itertools
import os
import random
from dataclasses import dataclass

import numpy as np
import torch

DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """Return the device to run on: the one asked for, else CUDA, then Apple MPS, then CPU.

    Args:
        device: ``None`` or ``"auto"`` to choose automatically, or a device such as ``"cuda:0"``.

    Raises:
        ValueError: if a device is asked for that this machine does not have.
    """
    if isinstance(device, torch.device):
        device = str(device)
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(
            f"device must be one of {DEVICE_CHOICES} (or e.g. 'cuda:1'), got {device!r}"
        ) from exc
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} was asked for but CUDA is not available here; "
            "use device='cpu' (or 'auto'), or on Colab pick Runtime > Change runtime type > GPU"
        )
    if chosen.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} was asked for but Apple MPS is not available here")
    return chosen


def bf16_is_fast(capability: str, avx512_bf16: bool, amx: bool) -> bool:
    """Whether bf16 autocast speeds a CPU up: the decision alone, from what the CPU reports.

    ``capability`` is ``torch.backends.cpu.get_cpu_capability()`` (the kernels torch runs:
    ``"AVX2"``, ``"AVX512"``, ``"AMX"``, ...); ``avx512_bf16`` and ``amx`` are the CPU's native
    bf16 features. bf16 is fast only where the CPU has one of them *and* torch runs its AVX-512
    (or AMX) kernels: a CPU limited to AVX2 (``ATEN_CPU_CAPABILITY=avx2``, as ``make test-avx2``
    plays a laptop) emulates bf16 slowly. A pure function, so the tests decide every input.
    """
    return capability in ("AVX512", "AMX") and bool(avx512_bf16 or amx)


def model_device(model: torch.nn.Module) -> torch.device:
    """Where ``model``'s parameters (or buffers) are; the CPU for a model with neither."""
    tensor = next(itertools.chain(model.parameters(), model.buffers()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def amp_is_fast(device: str | torch.device) -> bool:
    """Whether mixed precision speeds training up on ``device``, so a job may turn it on itself.

    True on CUDA (fp16 tensor cores); on a CPU, what :func:`bf16_is_fast` decides from this
    host's kernels and bf16 features; False on Apple MPS.

    Raises:
        ValueError: if ``device`` is not a device name.
    """
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be a torch device or its name, got {device!r}") from exc
    if kind == "cuda":
        return True
    if kind != "cpu":
        return False
    # Private helpers (torch >= 2.1); a torch without them gets the safe answer, False.
    native = [getattr(torch.cpu, name, lambda: False)() for name in _BF16_FEATURES]
    return bf16_is_fast(torch.backends.cpu.get_cpu_capability(), *native)


_BF16_FEATURES = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every GPU) so that a run can be repeated.

    Raises:
        ValueError: if ``seed`` is not an int in ``[0, 2**63)`` (torch's range).
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an int in [0, 2**63), got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 -- learners and libraries use the global RNG
    torch.manual_seed(seed)  # also seeds every CUDA device
    # For subprocesses (DataLoader workers, Jupyter kernels); Python refuses values >= 2**32.
    os.environ["PYTHONHASHSEED"] = str(seed % 2**32)


def environment_report() -> str:
    """Describe this machine for the course: versions, the device found, and whether on Colab.

    One ``name: value`` line each. The text differs between machines, so a notebook cell
    printing it is excluded from nbval's output comparison. Taught in notebook 00.
    """
    import platform
    import sys

    import torchvision  # imported here: runtime stays cheap to import without it

    device = pick_device()
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        found = f"CUDA GPU: {props.name}, {props.total_memory / 2**30:.1f} GiB"
    elif device.type == "mps":
        found = "Apple MPS GPU"
    else:
        found = f"CPU only: {os.cpu_count()} cores, torch threads: {torch.get_num_threads()}"
    lines = [
        f"python: {platform.python_version()}",
        f"torch: {torch.__version__}",
        f"torchvision: {torchvision.__version__}",
        f"numpy: {np.__version__}",
        f"device: {device.type} ({found})",
        f"on Colab: {'yes' if 'google.colab' in sys.modules else 'no'}",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class RunSizes:
    """How big the notebooks' training and evaluation runs are; one place for all of them.

    The short shapes run is for a laptop CPU and CI; the full ones are for a GPU (Colab). The
    real datasets (Oxford-IIIT Pet, PASCAL VOC) need a GPU; their short sizes only try the code
    path. Notebooks read them with :func:`run_sizes`. Taught in notebook 07.
    """

    image_size: int  # side of the square training images
    batch_size: int  # images per optimiser step
    steps: int  # optimiser steps of the notebooks' training run
    train_samples: int | None  # length of the training set (None: the whole dataset)
    val_samples: int | None  # length of the validation set (None: the whole dataset)
    eval_every: int  # steps between validations (the mIoU curve's resolution)
    full: bool  # True for the full (GPU) run
    dataset: str = "shapes"  # "shapes" (built in), "pets" or "voc"


SHORT_RUN = RunSizes(
    image_size=64, batch_size=16, steps=400, train_samples=5000, val_samples=256,
    eval_every=200, full=False,
)  # fmt: skip
FULL_RUN = RunSizes(
    image_size=128, batch_size=16, steps=3000, train_samples=8000, val_samples=256,
    eval_every=250, full=True,
)  # fmt: skip
# Real photographs, fine-tuned from ImageNet weights on a GPU: the paper's batch of 16, its
# 513-pixel crops for VOC (Sec. 4) and 384 for the smaller Pets pictures; shortened schedules.
REAL_RUNS = {
    ("pets", True): RunSizes(384, 16, 2000, None, None, 500, True, "pets"),
    ("voc", True): RunSizes(513, 16, 10000, None, None, 1000, True, "voc"),
    ("pets", False): RunSizes(128, 4, 20, 64, 16, 20, False, "pets"),
    ("voc", False): RunSizes(128, 4, 20, 64, 16, 20, False, "voc"),
}


def run_sizes(*, full: bool = False, dataset: str = "shapes") -> RunSizes:
    """The short run (default: laptops and CI) or the full run (``full=True``, for a GPU).

    A notebook calls ``run_sizes(full=FULL_RUN, dataset=DATASET)``. The device is not
    consulted (the full run works on a CPU too, only slowly), so that a notebook does the same
    thing wherever it runs. Taught in notebook 07.

    Raises:
        ValueError: if ``full`` is not a bool or ``dataset`` is unknown.
    """
    if not isinstance(full, bool):
        raise ValueError(f"full must be True or False, got {full!r}")
    if dataset == "shapes":
        return FULL_RUN if full else SHORT_RUN
    if (dataset, full) not in REAL_RUNS:
        raise ValueError(f"dataset must be 'shapes', 'pets' or 'voc', got {dataset!r}")
    return REAL_RUNS[dataset, full]
