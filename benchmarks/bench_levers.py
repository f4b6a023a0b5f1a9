"""Speed levers for the main job's training step on this CPU, side by side in one run.

Each lever is one change to the main job's step (``RunConfig()``'s run: 64 px, batch 16,
separable DeepLabV3+; fused Adam, NHWC on a CPU, bf16 where the CPU has native bf16). Every
variant trains from the same fresh model in turns (round-robin, ``--rounds`` rounds of
``--steps`` steps each), so a host that drifts slows them all alike; the table gives each
variant's median and fastest round's seconds per step and their ratios to the baseline's (the
fastest round is the one least disturbed by anything else the host did), with the range.

Variants:

- ``baseline``: the main job's step as it is;
- ``adam-foreach`` / ``adam-for-loop``: Adam's multi-tensor and per-tensor implementations
  instead of the fused kernel;
- ``nchw``: every convolution in the default NCHW layout (the main job: NHWC but for the
  backbone's layer3 and layer4, whose 4x4 maps NCHW computes faster; ``runtime.to_layout``);
- ``nhwc-throughout``: every convolution in NHWC, layer3 and layer4 too (the default until
  2026-12-06);
- ``workers-1``: one DataLoader worker process drawing the next batch while the main process
  computes (the scenes are generated on the fly);
- ``compile``: ``torch.compile`` of the model (its compile time, the first step's extra cost,
  is reported separately: it counts against a ten-minute budget);
- ``no-amp``: bf16 autocast off (only where it is on by default);
- ``scale-0.75``, ``scale-0.5``: the batch resized to 48 or 32 pixels, as progressive resizing
  (``RunConfig.start_scale``) trains the first part of a run.

It also times one validation pass over the main job's 256 images, to say what the main job's
validations cost against its steps. Never a timed test: see benchmarks/README.md.

Usage::

    python benchmarks/bench_levers.py --out benchmarks/results/levers_avx512.json
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
        python benchmarks/bench_levers.py --out benchmarks/results/levers_avx2.json
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import statistics
import time
from pathlib import Path

import torch

from deeplab_utils.config import RunConfig, peak_lr, settle
from deeplab_utils.evaluation import eval_loader
from deeplab_utils.files import atomic_write
from deeplab_utils.run import build_run
from deeplab_utils.runtime import amp_is_fast, to_layout
from deeplab_utils.training import _resized, train_loader

VARIANTS = ("baseline", "adam-foreach", "adam-for-loop", "nchw", "nhwc-throughout", "workers-1")
VARIANTS += ("compile", "no-amp")
VARIANTS += ("scale-0.75", "scale-0.5")


class Variant:
    """One way to run the step: its own model copy, optimiser, batches and settings."""

    def __init__(self, name: str, run, amp: bool) -> None:
        self.name, self.loss_fn = name, run.loss_fn
        self.amp = amp and name != "no-amp"
        self.channels_last = name != "nchw"
        self.model = copy.deepcopy(run.model).train()
        if name == "nhwc-throughout":
            self.model.to(memory_format=torch.channels_last)
        else:
            to_layout(self.model, torch.device("cpu"), self.channels_last)
        lr = peak_lr(run.config)
        params = list(self.model.parameters())
        if name == "adam-foreach":
            self.optimizer = torch.optim.Adam(params, lr=lr, foreach=True)
        elif name == "adam-for-loop":
            self.optimizer = torch.optim.Adam(params, lr=lr, foreach=False)
        else:
            self.optimizer = torch.optim.Adam(params, lr=lr, fused=True)
        loader = train_loader(run.train_set, settle(run.config, torch.device("cpu")))
        if name == "workers-1":
            loader = torch.utils.data.DataLoader(
                run.train_set, batch_size=run.config.batch_size, shuffle=True, drop_last=True,
                num_workers=1, persistent_workers=True,
            )  # fmt: skip
        self.batches = itertools.chain.from_iterable(itertools.repeat(loader))
        self.forward = torch.compile(self.model) if name == "compile" else self.model
        self.seconds: list[float] = []  # per step, one entry per round
        self.first_step = 0.0

    def step(self) -> None:
        images, masks = next(self.batches)
        if self.name.startswith("scale-"):
            images, masks = _resized(images, masks, float(self.name.split("-")[1]))
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.amp):
            loss = self.loss_fn(self.forward(images), masks)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def time_steps(self, steps: int) -> None:
        start = time.perf_counter()
        for _ in range(steps):
            self.step()
        self.seconds.append((time.perf_counter() - start) / steps)


def _validation_seconds(run, amp: bool) -> float:
    model = copy.deepcopy(run.model).eval()
    to_layout(model, torch.device("cpu"), channels_last=True)
    start = time.perf_counter()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        for images, _ in eval_loader(run.val_set, run.config):
            model(images.contiguous(memory_format=torch.channels_last)).argmax(1)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=8, help="steps per variant per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", nargs="+", choices=VARIANTS, default=None)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    amp = amp_is_fast("cpu")
    run = build_run(RunConfig())
    names = [n for n in (args.only or VARIANTS) if amp or n != "no-amp"]
    if "baseline" not in names:
        names.insert(0, "baseline")
    variants = [Variant(name, run, amp) for name in names]
    for variant in variants:  # warm-up; the first step of "compile" compiles
        start = time.perf_counter()
        variant.step()
        variant.first_step = time.perf_counter() - start
        variant.step()
    for _ in range(args.rounds):
        for variant in variants:
            variant.time_steps(args.steps)
    _report(variants, _validation_seconds(run, amp), amp, args)


def _report(variants, validation: float, amp: bool, args) -> None:
    base = statistics.median(variants[0].seconds)
    kernels = torch.backends.cpu.get_cpu_capability()
    print(f"CPU kernels {kernels}, {args.threads} threads, bf16 autocast {'on' if amp else 'off'}")
    print(f"{args.rounds} rounds x {args.steps} steps per variant, in turns\n")
    fastest = min(variants[0].seconds)
    print(
        "| variant | s / step: median | fastest round | range | vs baseline: median | fastest "
        "| first step |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    rows = []
    for v in variants:
        median = statistics.median(v.seconds)
        rows.append({"variant": v.name, "seconds": v.seconds, "first_step": v.first_step})
        print(
            f"| {v.name} | {median:.3f} | {min(v.seconds):.3f} | {min(v.seconds):.3f}–"
            f"{max(v.seconds):.3f} | {median / base:.2f}× | {min(v.seconds) / fastest:.2f}× | "
            f"{v.first_step:.1f} s |"
        )
    print(f"\none validation pass (256 images): {validation:.1f} s = {validation / base:.0f} steps")
    if args.out is not None:
        result = {
            "kernels": kernels, "threads": args.threads, "amp": amp, "steps": args.steps,
            "rounds": args.rounds, "variants": rows, "validation_seconds": validation,
        }  # fmt: skip
        with atomic_write(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
