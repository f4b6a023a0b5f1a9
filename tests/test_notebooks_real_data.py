"""Notebooks 07 and 08 on real photographs, offline: their DATASET = "pets" path runs end to end
on a fake Oxford-IIIT Pet in the real on-disk format, with fake ImageNet weights where
torchvision caches them. The committed notebooks keep the shapes outputs; this only runs them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fake_datasets import write_fake_imagenet_weights, write_fake_pets

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SETTING = 'DATASET = "shapes"'


def _run(name: str, env: dict[str, str]) -> dict:
    """Execute notebook ``name`` with DATASET = "pets" in a kernel that sees ``env``."""
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    settings = [cell for cell in nb.cells if SETTING in cell.source]
    assert len(settings) == 1, f"{name}: one cell must set {SETTING}"
    settings[0].source = settings[0].source.replace(SETTING, 'DATASET = "pets"')
    saved = dict(os.environ)
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        client = nbclient.NotebookClient(
            nb, timeout=900, kernel_name="python3",
            resources={"metadata": {"path": str(NOTEBOOKS)}},
        )  # fmt: skip
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return nb


@pytest.fixture(scope="module")
def pets_workdir(tmp_path_factory):
    """A notebooks' working folder whose data/ holds a fake Pets, and a torch cache with fake
    ImageNet weights: nothing is downloaded."""
    workdir = tmp_path_factory.mktemp("workdir")
    write_fake_pets(workdir / "data")
    torch_home = tmp_path_factory.mktemp("torch")
    write_fake_imagenet_weights(torch_home)
    return {"DEEPLAB_WORKDIR": str(workdir), "TORCH_HOME": str(torch_home)}


def test_notebooks_07_and_08_run_on_pets(pets_workdir):
    """07 trains the Pets run from ImageNet weights and 08 evaluates it at the photographs'
    original size, every cell without an error (an error would raise here)."""
    trained = _run("07_training.ipynb", pets_workdir)
    printed = "".join(
        out.get("text", "") for cell in trained.cells for out in cell.get("outputs", [])
    )
    assert "classes: ('background', 'pet')" in printed
    assert "backbone: imagenet" in printed
    checkpoint = Path(pets_workdir["DEEPLAB_WORKDIR"]) / "runs" / "course-pets-short"
    assert (checkpoint / "checkpoint.pt").is_file()
    evaluated = _run("08_evaluation_and_inference.ipynb", pets_workdir)
    printed = "".join(
        out.get("text", "") for cell in evaluated.cells for out in cell.get("outputs", [])
    )
    assert "pixels counted:" in printed
