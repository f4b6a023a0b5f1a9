"""How much the main job's result depends on the seed: train with several seeds, cross-evaluate.

1. Runs the main job with its defaults once per seed (``--seed S --out <out>/seed_S``); a seed
   whose folder already holds a finished run (its ``history.json``) is not trained again.
2. Scores every final model on the validation scenes of every seed, so that a spread from
   training (a model better on every validation set) can be told from a spread from the
   validation scenes (every model better on one set).

Prints the table as Markdown and writes ``<out>/seeds.json``: the table, and each run's settings,
validation curve and final per-class IoU (from its ``history.json``).

Usage::

    python benchmarks/bench_seeds.py                   # seeds 0 1 2
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
        python benchmarks/bench_seeds.py --out runs/bench_seeds_avx2   # as an AVX2-only CPU
    python benchmarks/bench_seeds.py --seeds 0 1 --val-seeds 0 1 2 3
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from deeplab_utils.checkpoint import load_model
from deeplab_utils.config import RunConfig
from deeplab_utils.data import build_dataset
from deeplab_utils.evaluation import eval_loader, evaluate
from deeplab_utils.runtime import amp_is_fast, pick_device
from deeplab_utils.train import main as train_main

CHECKPOINT_NAME, HISTORY_NAME = "checkpoint.pt", "history.json"  # what the main job writes

RECIPE = RunConfig()  # the main job's defaults


def _train(out: Path, seed: int) -> Path:
    run = out / f"seed_{seed}"
    if not (run / HISTORY_NAME).is_file():  # written once the run has finished
        code = train_main(["--seed", str(seed), "--out", str(run), "--no-progress"])
        if code != 0:
            sys.exit(f"the main job failed with exit code {code} for --seed {seed}")
    return run


def _summary(run: Path) -> dict:
    """A finished run's settings, (step, training seconds, mIoU) at each validation and its final
    per-class IoU."""
    history = json.loads((run / HISTORY_NAME).read_text(encoding="utf-8"))
    points = zip(history["eval_step"], history["eval_seconds"], history["val"], strict=True)
    final = history["val"][-1]
    return {
        "config": history["config"],
        "curve": [[step, round(seconds, 1), val["miou"]] for step, seconds, val in points],
        "final_iou": dict(zip(history["class_names"], final["iou"], strict=True)),
        "final_miou": final["miou"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/bench_seeds", help="output folder")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    parser.add_argument(
        "--val-seeds", type=int, nargs="+", default=None, help="validation sets (default: --seeds)"
    )
    args = parser.parse_args()
    out = Path(args.out)
    val_seeds = args.val_seeds if args.val_seeds is not None else args.seeds
    runs = {seed: _train(out, seed) for seed in args.seeds}

    device = pick_device("auto")
    amp = amp_is_fast(device)  # the precision the main job trains and validates in
    scores: dict[int, dict[int, float]] = {}
    for seed, run in runs.items():
        model = load_model(run / CHECKPOINT_NAME, map_location=device).eval()
        scores[seed] = {}
        for val_seed in val_seeds:
            val_set = build_dataset(
                "shapes", split="val", image_size=RECIPE.image_size, seed=val_seed
            )
            loader = eval_loader(val_set, RECIPE)
            metrics = evaluate(model, loader, val_set.num_classes, device=device, amp=amp)
            scores[seed][val_seed] = metrics["miou"]
    result = {
        "kernels": torch.backends.cpu.get_cpu_capability(),
        "cross": {str(k): v for k, v in scores.items()},  # trained with seed -> val seed -> mIoU
        "runs": {str(seed): _summary(run) for seed, run in runs.items()},
    }
    text = json.dumps(result, indent=1)
    (out / "seeds.json").write_text(text, encoding="utf-8")

    print("| model trained with | " + " | ".join(f"val seed {v}" for v in val_seeds) + " |")
    print("|---|" + "---:|" * len(val_seeds))
    for seed, row in scores.items():
        print(f"| `--seed {seed}` | " + " | ".join(f"{row[v]:.3f}" for v in val_seeds) + " |")
    print(f"\nwrote {out / 'seeds.json'}")


if __name__ == "__main__":
    main()
