"""The main job's promise, seed by seed: its final val mIoU and its wall time on this CPU.

Runs ``python -m deeplab_utils.train`` with its defaults (or the options after ``--``) once per
seed, each in a fresh process timed from start to exit, as a learner's command is, and reads
the run's ``history.json``. A seed whose folder already holds a finished run is not trained
again (delete the folder to re-time it). Prints a Markdown table with the worst and the mean
over the seeds, and writes ``--json`` (default ``<out>/seeds.json``).

``--avx2`` runs the same with torch's CPU kernels limited to AVX2 and bf16 off: a laptop
without AVX-512, emulated. A real 2-core AVX2 CPU took 1.13-1.14x the emulated times (README,
Results), so the table also gives the emulated time times ``REAL_AVX2_FACTOR``.

Usage::

    python benchmarks/bench_seeds.py                       # seeds 0-4, this CPU's class
    python benchmarks/bench_seeds.py --avx2 --out runs/bench_seeds_avx2
    python benchmarks/bench_seeds.py --seeds 0 1 2 -- --steps 400 --val-every 50   # notebook 07's
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

AVX2_ONLY = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "MKL_ENABLE_INSTRUCTIONS": "AVX2"}  # fmt: skip
REAL_AVX2_FACTOR = 1.14  # a real AVX2 laptop's time / the emulation's (issue 21's measurement)


def _run(out: Path, seed: int, extra: list[str], env: dict[str, str]) -> dict:
    """Train seed ``seed`` into ``out/seed_<seed>`` (unless done); its scores and times."""
    folder = out / f"seed_{seed}"
    timing = folder / "wall_seconds.txt"
    if not (folder / "history.json").is_file() or not timing.is_file():
        command = [sys.executable, "-m", "deeplab_utils.train", "--seed", str(seed), "--out",
                   str(folder), "--no-progress", *extra]  # fmt: skip
        started = time.perf_counter()
        if subprocess.call(command, env=env) != 0:
            sys.exit(f"the main job failed for --seed {seed}")
        timing.write_text(f"{time.perf_counter() - started:.1f}\n")
    history = json.loads((folder / "history.json").read_text(encoding="utf-8"))
    final = history["val"][-1]
    return {
        "seed": seed, "miou": final["miou"], "steps": history["config"]["steps"],
        "iou": dict(zip(history["class_names"], final["iou"], strict=True)),
        "wall_seconds": float(timing.read_text()), "train_seconds": history["eval_seconds"][-1],
        "curve": [[s, round(t, 1), v["miou"]] for s, t, v in
                  zip(history["eval_step"], history["eval_seconds"], history["val"], strict=True)],
        "amp": history["config"]["amp"],
    }  # fmt: skip


def _table(rows: list[dict], emulated: bool) -> str:
    real = f" | real AVX2 (x{REAL_AVX2_FACTOR}), min" if emulated else ""
    lines = [f"| seed | steps | val mIoU | worst shape IoU | wall min{real} |",
             "|---|---:|---:|---:|---:|" + ("---:|" if emulated else "")]  # fmt: skip
    for row in rows:
        minutes = row["wall_seconds"] / 60
        scaled = f" | {minutes * REAL_AVX2_FACTOR:.1f}" if emulated else ""
        shapes = min(list(row["iou"].values())[1:])
        lines.append(f"| {row['seed']} | {row['steps']} | {row['miou']:.3f} | {shapes:.3f} | "
                     f"{minutes:.1f}{scaled} |")  # fmt: skip
    mious, walls = [r["miou"] for r in rows], [r["wall_seconds"] / 60 for r in rows]
    worst = f"| worst | | {min(mious):.3f} | | {max(walls):.1f}"
    worst += f" | {max(walls) * REAL_AVX2_FACTOR:.1f} |" if emulated else " |"
    mean = f"| mean | | {statistics.mean(mious):.3f} | | {statistics.mean(walls):.1f}"
    mean += f" | {statistics.mean(walls) * REAL_AVX2_FACTOR:.1f} |" if emulated else " |"
    return "\n".join([*lines, worst, mean])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/bench_seeds", help="output folder")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--avx2", action="store_true", help="emulate an AVX2-only CPU (fp32)")
    parser.add_argument("--json", help="where to write the results (default: <out>/seeds.json)")
    parser.add_argument("extra", nargs="*", help="options for the main job (after --)")
    args = parser.parse_args()
    env = dict(os.environ)
    extra = list(args.extra)
    if args.avx2:
        env |= AVX2_ONLY
        extra = ["--no-amp", *extra]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [_run(out, seed, extra, env) for seed in args.seeds]
    kernels = "avx2 (emulated)" if args.avx2 else torch.backends.cpu.get_cpu_capability().lower()
    result = {"kernels": kernels, "threads": torch.get_num_threads(), "options": extra,
              "cpu": _cpu_name(), "torch": torch.__version__, "runs": rows}  # fmt: skip
    path = Path(args.json) if args.json else out / "seeds.json"
    path.write_text(json.dumps(result, indent=1), encoding="utf-8")
    amp = "bf16 mixed precision" if rows[0]["amp"] else "fp32"
    print(f"\n{kernels} kernels, {amp}, {result['threads']} threads, {result['cpu']}\n")
    print(_table(rows, args.avx2))
    print(f"\nwrote {path}")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    main()
