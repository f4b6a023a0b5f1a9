"""Quality of the main job on the built-in dataset, against smp trained for the same wall time.

1. Runs the main job with its defaults (``python -m deeplab_utils.train``: DeepLabV3+ from
   scratch on ShapesDataset) and records validation mIoU against wall-clock minutes.
2. Trains ``segmentation_models_pytorch.DeepLabV3Plus(encoder_name="resnet50",
   encoder_weights=None)`` with the same loop (``deeplab_utils.training.fit``), data, loss,
   optimiser, schedule and precision, for as many steps as fit in the same wall time (its steps
   are timed first; evaluation time is not counted for smp, which favours smp slightly).

Prints both curves as a Markdown table and writes ``<out>/quality_<cpu>.json`` and
``<out>/quality_<cpu>.png`` (mIoU vs minutes), ``<cpu>`` being the kernels torch ran (``avx512``,
``avx2``, or ``cuda``). ``--avx2`` re-runs the benchmark with torch's CPU kernels limited to AVX2
and bf16 off: a laptop without AVX-512, emulated on a bigger CPU. Needs
``pip install -e ".[bench]"`` for step 2.

Usage::

    python benchmarks/bench_quality.py                 # about 20 minutes on a 2-core CPU
    python benchmarks/bench_quality.py --avx2          # the same as an AVX2-only CPU runs it
    python benchmarks/bench_quality.py --skip-smp      # the main job's curve only
    python benchmarks/bench_quality.py -- --steps 300  # extra arguments go to the main job

A finished main job already in ``<out>/ours`` (for instance ``bench_seeds.py``'s ``seed_0``,
copied there) is not trained again: its curve and wall time are read from its history.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from deeplab_utils.config import RunConfig
from deeplab_utils.run import Run, build_run
from deeplab_utils.train import main as train_main
from deeplab_utils.training import fit

HISTORY_NAME = "history.json"  # what the main job writes beside its checkpoint

TIMING_STEPS = 8  # smp training steps timed (after 2 untimed) to size its run


def _finished(history_path: Path) -> bool:
    """Whether ``history_path`` holds a run that reached its last step."""
    if not history_path.is_file():
        return False
    history = json.loads(history_path.read_text())
    return bool(history["eval_step"]) and history["eval_step"][-1] == history["config"]["steps"]


def _run_ours(out: Path, extra: list[str]) -> dict:
    history_path = out / "ours" / HISTORY_NAME
    if not _finished(history_path):  # a finished run (bench_seeds.py's seed_0) is reused
        code = train_main(["--out", str(out / "ours"), "--no-progress", *extra])
        if code != 0:
            sys.exit(f"the main job failed with exit code {code}")
    history = json.loads(history_path.read_text())
    return {
        "model": "ours: DeepLabV3Plus (main job defaults)",
        "config": history["config"],
        "steps": history["config"]["steps"],
        "minutes": [s / 60 for s in history["eval_seconds"]],
        "eval_step": history["eval_step"],
        "miou": [v["miou"] for v in history["val"]],
        "final_iou": dict(zip(history["class_names"], history["val"][-1]["iou"], strict=True)),
    }


def _run_smp(ours: dict) -> dict:
    import segmentation_models_pytorch as smp

    config = RunConfig(**{**ours["config"], "out": None})  # the main job's run, settled
    data = build_run(config)  # its datasets and loss (and our model, unused)

    def run(steps: int, val_every: int, loss_fn=data.loss_fn) -> Run:
        torch.manual_seed(config.seed)
        model = smp.DeepLabV3Plus(
            encoder_name="resnet50", encoder_weights=None, classes=data.train_set.num_classes
        )
        cfg = dataclasses.replace(config, steps=steps, val_every=val_every, warmup_steps=None)
        return Run(cfg, model, data.train_set, data.val_set if val_every else None, loss_fn)

    # Time smp's training steps in the same loop and precision (the clock starts at the third
    # loss call, after two warm-up steps), then fit its run into ours' wall time.
    calls, started = 0, 0.0

    def timed_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        nonlocal calls, started
        calls += 1
        if calls == 3:
            started = time.perf_counter()
        return data.loss_fn(logits, target)

    fit(run(TIMING_STEPS + 2, 0, timed_loss), progress=False)
    seconds_per_step = (time.perf_counter() - started) / TIMING_STEPS
    budget = ours["minutes"][-1] * 60
    steps = max(int(budget / seconds_per_step), 10)
    print(f"smp: {seconds_per_step:.2f} s/step -> {steps} steps in {budget / 60:.1f} min")
    history = fit(run(steps, max(steps // len(ours["eval_step"]), 1)), progress=False)
    return {
        "model": 'smp DeepLabV3Plus("resnet50", encoder_weights=None)',
        "steps": steps,
        "minutes": [s / 60 for s in history.eval_seconds],
        "eval_step": history.eval_step,
        "miou": [v["miou"] for v in history.val],
    }


def _plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for run in runs:
        ax.plot(run["minutes"], run["miou"], marker="o", label=run["model"])
    ax.axhline(0.85, color="grey", linestyle="--", linewidth=1, label="0.85")
    ax.axhline(0.80, color="grey", linestyle=":", linewidth=1, label="0.80")
    ax.set(xlabel="wall-clock minutes", ylabel="validation mIoU", ylim=(0, 1))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


AVX2_ONLY = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "MKL_ENABLE_INSTRUCTIONS": "AVX2"}  # fmt: skip


def _kernels() -> str:
    if torch.cuda.is_available():
        return "cuda"
    return torch.backends.cpu.get_cpu_capability().lower()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/bench_quality", help="output folder")
    parser.add_argument("--skip-smp", action="store_true", help="only the main job")
    parser.add_argument("--avx2", action="store_true", help="emulate an AVX2-only CPU (fp32)")
    parser.add_argument("extra", nargs="*", help="arguments for the main job (after --)")
    args = parser.parse_args()
    if args.avx2 and _kernels() != "avx2":  # the kernels are chosen when torch loads: restart
        argv = [a for a in sys.argv[1:] if a != "--avx2"]
        env = {**os.environ, **AVX2_ONLY}
        sys.exit(subprocess.call([sys.executable, __file__, *argv], env=env))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = [_run_ours(out, args.extra)]
    if not args.skip_smp:
        runs.append(_run_smp(runs[0]))
    name = f"quality_{_kernels()}"
    text = json.dumps({"kernels": _kernels(), "threads": torch.get_num_threads(), "runs": runs})
    (out / f"{name}.json").write_text(text, encoding="utf-8")
    _plot(runs, out / f"{name}.png")
    threads, kernels = torch.get_num_threads(), _kernels()
    print(f"\n{threads} CPU threads, {kernels} kernels, torch {torch.__version__}\n")
    print("| model | steps | minutes | final val mIoU | curve (minutes: mIoU) |")
    print("|---|---:|---:|---:|---|")
    for run in runs:
        points = zip(run["minutes"], run["miou"], strict=True)
        curve = ", ".join(f"{m:.1f}: {v:.2f}" for m, v in points)
        print(
            f"| {run['model']} | {run['steps']} | {run['minutes'][-1]:.1f} "
            f"| {run['miou'][-1]:.3f} | {curve} |"
        )
    print(f"\nwrote {out / name}.json and .png")


if __name__ == "__main__":
    main()
