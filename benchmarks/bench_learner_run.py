"""Notebook 07's run two ways, side by side: the package's network trained by ``fit``, and the
network assembled from the learner's saved pieces trained by the learner's loop (``train_with``).

The pieces are those the solved notebooks 02-04 save (run them first with ``DEEPLAB_WORKDIR``
set, then pass that folder's ``my_pieces``); the loop and schedule are the package's
``train_steps`` and ``poly_lr_lambda``, which the solved notebook 07's ``my_train_loop`` and
``my_poly_lr`` equal. Both runs checkpoint at every validation, as the notebook does. The runs
alternate (package, learner, package, ...) so that a host's drift hits both alike.

Usage::

    python benchmarks/bench_learner_run.py --pieces WORKDIR/my_pieces --out results/x.json
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 python ...
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from deeplab_utils.checks import load_piece, pieces
from deeplab_utils.course import course_config, train_with, your_network
from deeplab_utils.run import build_run
from deeplab_utils.training import fit, poly_lr_lambda, train_steps


def _one(kind: str, seed: int, folder: str) -> dict:
    config = dataclasses.replace(course_config(folder), seed=seed, out=f"{folder}/{kind}-{seed}")
    run = build_run(config)
    if kind == "learner":
        run.model = your_network(run, load_piece("deeplabv3plus"), load_piece("separable"))
    started = time.perf_counter()
    history = (
        train_with(run, train_steps, poly_lr_lambda, progress=False)
        if kind == "learner"
        else fit(run, progress=False)
    )
    seconds = time.perf_counter() - started
    return {"kind": kind, "network": type(run.model).__name__, "seed": seed,
            "seconds": round(seconds, 1), "miou": history.val[-1]["miou"],
            "iou": [None if v != v else v for v in history.val[-1]["iou"]]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pieces", required=True, help="a my_pieces folder the notebooks saved")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    pieces.keep_pieces_in(args.pieces)
    torch.set_num_threads(2)
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        for seed in args.seeds:
            for kind in ("package", "learner"):
                runs.append(_one(kind, seed, folder))
                print(json.dumps(runs[-1]))
    kernels = torch.backends.cpu.get_cpu_capability()
    kernels += " (emulated)" if os.environ.get("ATEN_CPU_CAPABILITY") else ""
    report = {"kernels": kernels, "threads": 2,
              "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
              "runs": runs}  # fmt: skip
    args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
