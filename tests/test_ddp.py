"""Test of the main job under torchrun: 2 CPU processes with the gloo backend (DDP)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist


@pytest.mark.skipif(not dist.is_available(), reason="this torch build has no torch.distributed")
def test_two_process_gloo_run(tmp_path):
    """torchrun with 2 CPU processes exits 0, writes one checkpoint, and both ranks agree."""
    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "deeplab_utils.train",
        "--steps", "2", "--image-size", "32", "--batch-size", "2", "--train-samples", "8",
        "--val-samples", "4", "--checkpoint-every", "0", "--device", "cpu", "--no-progress",
        "--out", str(out),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the 2-process run did not finish in 300 s: {exc.stdout}\n{exc.stderr}")
    assert result.returncode == 0, result.stderr[-3000:]
    # Only rank 0 prints and writes: one validation line, one table, one "done" line.
    assert result.stdout.count("step 2/2: val mIoU") == 1
    assert len(re.findall(r"^mIoU\s", result.stdout, flags=re.MULTILINE)) == 1
    assert result.stdout.count("\ndone in ") == 1
    assert "DDP: weights identical on all 2 processes" in result.stdout
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["step"] == 2
    assert not any(key.startswith("module.") for key in state["model"])  # unwrapped from DDP
    history = json.loads((out / "history.json").read_text())
    assert history["step"] == [1, 2]
    assert (out / "predictions.png").is_file()


@pytest.mark.parametrize(("device", "backend"), [("cpu", "gloo"), ("cuda", "nccl")])
def test_backend_follows_the_device_asked_for(monkeypatch, device, backend):
    """`--device cpu` on a GPU machine uses gloo: NCCL cannot reduce CPU tensors."""
    from deeplab_utils import train

    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU machine
    monkeypatch.setattr(torch.cuda, "set_device", lambda index: None)
    monkeypatch.setattr(train.dist, "init_process_group", lambda backend: chosen.append(backend))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    world = train._init_world(torch.device(device))
    assert chosen == [backend] and world.size == 2 and world.main
