"""Where the notebooks run: the environment, Colab and Google Drive, and the working folder.

Teaching-aid layer: what every notebook's setup cell calls. (The maintainer's side, the badges
and the repository they point at, is ``tools/notebooks.py``, outside the package.)
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch
import torchvision

from .checks.pieces import keep_pieces_in, pieces_folder
from .runtime import pick_device

DRIVE_FOLDER = "deeplab-course"  # under "My Drive": checkpoints and datasets survive a disconnect
COLAB_CONTENT = Path("/content")  # Colab's working folder
WORKDIR_ENV = "DEEPLAB_WORKDIR"  # outside Colab, a working folder other than the repository


def environment_report() -> str:
    """This machine for the course, one ``name: value`` line each: versions, the device found,
    whether on Colab. (It differs between machines: notebook 00's cell printing it is left out
    of nbval's comparison.) Taught in notebook 00."""
    device = pick_device()
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        found = f"CUDA GPU: {props.name}, {props.total_memory / 2**30:.1f} GiB"
    elif device.type == "mps":
        found = "Apple MPS GPU"
    else:
        found = f"CPU only: {os.cpu_count()} cores, torch threads: {torch.get_num_threads()}"
    versions = {"python": platform.python_version(), "torch": torch.__version__,
                "torchvision": torchvision.__version__, "numpy": np.__version__}  # fmt: skip
    lines = [f"{name}: {version}" for name, version in versions.items()]
    on_colab = "yes" if "google.colab" in sys.modules else "no"
    lines += [f"device: {device.type} ({found})", f"on Colab: {on_colab}"]
    return "\n".join(lines)


def local_workdir(start: Path | None = None) -> Path:
    """The repository root: the parent of the nearest ``notebooks/`` at or above ``start`` (the
    current folder), so that ``notebooks/`` and ``notebooks/student/`` share one ``runs/``."""
    here = Path.cwd() if start is None else Path(start)
    return next((p.parent for p in (here, *here.parents) if p.name == "notebooks"), here)


def setup_notebook(*, mount_drive: bool = False) -> Path:
    """Report the environment, check for a GPU on Colab, and return the working folder.

    The working folder holds ``data/`` and ``runs/``: the repository root locally (or the
    folder named by ``DEEPLAB_WORKDIR``), and on Colab ``/content/deeplab-course``, or
    ``My Drive/deeplab-course`` with ``mount_drive`` (so a disconnect loses nothing). The
    exercises that pass their checks are kept in its ``my_pieces/`` (:mod:`.checks.pieces`).
    """
    print(environment_report())
    on_colab = "google.colab" in sys.modules
    if on_colab and not torch.cuda.is_available():
        print(
            "No GPU in this Colab runtime: Runtime > Change runtime type > T4 GPU, then run the "
            "notebook again. (Everything also runs on the CPU, with the short settings.)"
        )
    if not on_colab:  # DEEPLAB_WORKDIR: e.g. the tests' second, AVX2-only run of 07 and 08
        workdir = Path(os.environ.get(WORKDIR_ENV) or local_workdir())
    elif mount_drive:
        from google.colab import drive  # type: ignore[import-not-found]  # exists on Colab only

        drive.mount(str(COLAB_CONTENT / "drive"))
        workdir = COLAB_CONTENT / "drive" / "MyDrive" / DRIVE_FOLDER
    else:
        print("Tip: setup_notebook(mount_drive=True) keeps checkpoints and data on Google Drive.")
        workdir = COLAB_CONTENT / DRIVE_FOLDER
    workdir.mkdir(parents=True, exist_ok=True)
    keep_pieces_in(pieces_folder(workdir))
    return workdir
