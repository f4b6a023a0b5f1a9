"""Where the notebooks run: Colab detection, Google Drive, and the working folder.

Teaching-aid layer: what the notebooks' setup cell calls. (The maintainer's side, the badges
and the repository they point at, is ``tools/notebooks.py``, outside the package.)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from .runtime import environment_report

DRIVE_FOLDER = "deeplab-course"  # under "My Drive": checkpoints and datasets survive a disconnect
COLAB_CONTENT = Path("/content")  # Colab's working folder
WORKDIR_ENV = "DEEPLAB_WORKDIR"  # outside Colab, a working folder other than the repository


def is_colab() -> bool:
    """True inside a Google Colab runtime."""
    return "google.colab" in sys.modules


def local_workdir(start: Path | None = None) -> Path:
    """The notebooks' working folder outside Colab: the repository root.

    That is the parent of the nearest ``notebooks/`` folder at or above ``start`` (default: the
    current folder), so ``notebooks/`` and ``notebooks/student/`` share one ``runs/``; ``start``
    itself when there is none.
    """
    here = Path.cwd() if start is None else Path(start)
    return next((p.parent for p in (here, *here.parents) if p.name == "notebooks"), here)


def setup_notebook(*, mount_drive: bool = False) -> Path:
    """Report the environment, check for a GPU on Colab, and return the working folder.

    The working folder holds ``data/`` and ``runs/``: the repository root locally (or the
    folder named by the environment variable ``DEEPLAB_WORKDIR``), and on Colab
    ``/content/deeplab-course``, or ``My Drive/deeplab-course`` when ``mount_drive`` is True (so
    checkpoints and datasets survive a disconnect).
    """
    print(environment_report())
    if not is_colab():
        if os.environ.get(WORKDIR_ENV):  # e.g. the tests' second, AVX2-only run of 07 and 08
            workdir = Path(os.environ[WORKDIR_ENV])
            workdir.mkdir(parents=True, exist_ok=True)
            return workdir
        return local_workdir()
    if not torch.cuda.is_available():
        print(
            "No GPU in this Colab runtime: Runtime > Change runtime type > T4 GPU, then run the "
            "notebook again. (Everything also runs on the CPU, with the short settings.)"
        )
    if mount_drive:
        from google.colab import drive  # type: ignore[import-not-found]

        drive.mount(str(COLAB_CONTENT / "drive"))
        workdir = COLAB_CONTENT / "drive" / "MyDrive" / DRIVE_FOLDER
    else:
        print("Tip: setup_notebook(mount_drive=True) keeps checkpoints and data on Google Drive.")
        workdir = COLAB_CONTENT / DRIVE_FOLDER
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir
