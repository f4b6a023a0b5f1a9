"""The main job on real datasets, offline: fake Pets, VOC and SBD in their real on-disk formats
and fake ImageNet weights where torchvision caches them (tests/fake_datasets.py)."""

from __future__ import annotations

import json

import pytest
import torch
from fake_datasets import (
    write_fake_imagenet_weights,
    write_fake_pets,
    write_fake_sbd,
    write_fake_voc,
)

from deeplab_utils.data import build_dataset
from deeplab_utils.train import main

SMALL = [
    "--steps", "2", "--image-size", "32", "--batch-size", "2", "--val-every", "0",
    "--no-progress", "--output-stride", "16",
]  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Pets, VOC and SBD side by side in one data folder, as a learner would keep them."""
    root = tmp_path_factory.mktemp("data")
    return {"root": root, "pets": write_fake_pets(root), "voc": write_fake_voc(root),
            "sbd": write_fake_sbd(root)}  # fmt: skip


def _run(argv, tmp_path):
    out = tmp_path / "run"
    assert main([*SMALL, *argv, "--out", str(out)]) == 0
    return json.loads((out / "history.json").read_text(encoding="utf-8")), out


def _scored_pixels(pets, ids, mode):
    """Pixels a Pets evaluation counts over ``ids``: all, or all but the border band (3)."""
    trimaps = [pets.trimaps[i] for i in ids]
    return sum(t.size if mode == "trimap" else int((t != 3).sum()) for t in trimaps)


@pytest.mark.parametrize(("mode", "classes"), [("binary", 2), ("trimap", 3)])
def test_pets_trains_and_scores_every_original_pixel(data, tmp_path, mode, classes):
    """Two steps on Pets; validation counts each held-out trainval picture's pixels at its
    original size (the border band ignored in binary mode), and no test picture's."""
    history, out = _run(["--dataset", "pets", "--data-dir", str(data["root"]),
                         "--pets-mode", mode], tmp_path)  # fmt: skip
    assert (
        history["class_names"][:2] == ["background", "pet"]
        and len(history["class_names"]) == classes
    )
    counted = torch.tensor(history["val"][-1]["confusion_matrix"]).sum().item()
    val_ids = build_dataset("pets", split="val", root=data["root"]).image_ids
    assert set(val_ids) <= set(data["pets"].splits["trainval"])
    assert counted == _scored_pixels(data["pets"], val_ids, mode)
    assert "test" not in history
    assert (out / "predictions.png").stat().st_size > 0


def test_pets_never_reads_the_test_split_unless_asked(tmp_path):
    """Without --final-test a Pets run trains and validates with test.txt gone."""
    write_fake_pets(tmp_path / "data")
    (tmp_path / "data" / "oxford-iiit-pet" / "annotations" / "test.txt").unlink()
    history, _ = _run(["--dataset", "pets", "--data-dir", str(tmp_path / "data")], tmp_path)
    assert history["eval_step"] == [2]


def test_final_test_scores_the_test_split_once_and_says_so(data, tmp_path, capsys):
    """--final-test scores every test picture once, after training; the report names the test
    split, and history.json keeps it apart from the validation curve."""
    history, _ = _run(["--dataset", "pets", "--data-dir", str(data["root"]), "--final-test"],
                      tmp_path)  # fmt: skip
    test = history["test"]
    assert (test["split"], test["images"]) == ("test", len(data["pets"].splits["test"]))
    counted = torch.tensor(test["confusion_matrix"]).sum().item()
    assert counted == _scored_pixels(data["pets"], data["pets"].splits["test"], "binary")
    out = capsys.readouterr().out
    assert "TEST split" in out and out.count("\nmIoU") == 2  # validation's table, then test's


def test_final_test_needs_a_dataset_with_a_test_split(tmp_path, capsys):
    """--final-test on shapes (or VOC, whose test labels are not public) exits 2 saying why."""
    with pytest.raises(SystemExit) as exit_info:
        main([*SMALL, "--final-test", "--out", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    assert "--final-test: only pets has a labelled test split" in capsys.readouterr().err


def test_voc_trains_and_scores_at_original_size(data, tmp_path):
    """Two steps on VOC; validation counts every non-void pixel of the val masks as they are."""
    history, _ = _run(["--dataset", "voc", "--data-dir", str(data["root"])], tmp_path)
    assert len(history["class_names"]) == 21
    counted = torch.tensor(history["val"][-1]["confusion_matrix"]).sum().item()
    voc = data["voc"]
    expected = sum(int((voc.masks[i] != 255).sum()) for i in voc.splits["val"])
    assert counted == expected


def test_voc_trainaug_with_imagenet_weights(data, tmp_path, monkeypatch):
    """--voc-trainaug trains on VOC train + SBD without VOC val, starting from ImageNet weights
    found in torchvision's cache (placed there by hand: nothing downloads)."""
    torch_home = tmp_path / "torch"
    weights = torch.load(write_fake_imagenet_weights(torch_home), weights_only=True)
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    argv = ["--dataset", "voc", "--data-dir", str(data["root"]), "--voc-trainaug",
            "--backbone-weights", "imagenet", "--optimizer", "sgd", "--lr", "1e-12"]  # fmt: skip
    _, out = _run(argv, tmp_path)
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    torch.testing.assert_close(
        state["model"]["backbone.layer2.0.conv2.weight"], weights["layer2.0.conv2.weight"],
        rtol=0, atol=1e-6,
    )  # fmt: skip
    assert state["config"]["voc_trainaug"] is True


def test_imagenet_weights_offline_are_a_clear_error(tmp_path, monkeypatch, capsys):
    """Without the cached file and without a network: exit 2, one message with what was
    tried and how to supply the file."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(SystemExit) as exit_info:
        main([*SMALL, "--train-samples", "2", "--val-samples", "1", "--backbone-weights",
              "imagenet", "--out", str(tmp_path / "run")])  # fmt: skip
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "resnet50-0676ba61.pth" in err and "Traceback" not in err
