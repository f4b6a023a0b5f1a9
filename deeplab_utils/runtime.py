"""Where the code runs: device choice and seeding.

Depends on torch alone, so that every layer (training included) may use it.
"""

from __future__ import annotations

import os
import random

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

    The text differs between machines, so a notebook cell printing it is excluded from
    nbval's output comparison. Taught in notebook 00.

    Returns:
        Several ``name: value`` lines, e.g. ``"python: 3.11.7\\ntorch: 2.4.0\\n..."``.
    """
    import platform  # local: only this report needs it
    import sys

    import torchvision  # local: runtime stays importable (and cheap) without touching it

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
