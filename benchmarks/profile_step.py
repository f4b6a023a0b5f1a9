"""Where a training step and an evaluation of the main job spend their time, on this CPU.

Builds the main job's run with its defaults (``RunConfig()``: 64 px, batch 16, separable
DeepLabV3+, NHWC on a CPU, bf16 where the CPU has native bf16), trains a few warm-up steps, then
profiles ``--steps`` training steps and one pass over the validation set with
``torch.profiler`` on ``--threads`` threads (2: the course's laptop). Prints two tables:

- the step by phase, timed with ``perf_counter`` around each part: making the batch (the
  DataLoader), forward, loss, backward, optimiser (+ schedule), and an evaluation pass;
- the profiler's self CPU time grouped by kind of operator: convolution forward, convolution
  backward, BatchNorm forward/backward, element-wise and activation ops, the loss's own ops,
  the optimiser's, layout and dtype conversions, and everything else.

Usage::

    python benchmarks/profile_step.py                                  # this CPU, its defaults
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
        python benchmarks/profile_step.py --no-amp --out benchmarks/results/profile_avx2.json

Writes the tables as JSON with ``--out``. Never a timed test: see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from deeplab_utils.config import RunConfig, settle
from deeplab_utils.evaluation import eval_loader
from deeplab_utils.files import atomic_write
from deeplab_utils.run import build_run
from deeplab_utils.runtime import amp_is_fast, to_layout
from deeplab_utils.training import build_optimizer, poly_lr_lambda, train_loader

# Operator name fragments -> kind (first match wins; names are aten::/mkldnn ops).
KINDS = [
    ("convolution backward", ("convolution_backward",)),
    ("convolution forward", ("convolution", "conv2d", "mkldnn_conv")),
    ("BatchNorm backward", ("batch_norm_backward", "native_batch_norm_backward")),
    ("BatchNorm forward", ("batch_norm",)),
    ("optimiser", ("_foreach", "adam", "lerp", "addcdiv", "addcmul", "sqrt")),
    ("loss (softmax, log, one-hot, sums)", ("softmax", "nll_loss", "log", "one_hot", "sum")),
    ("interpolation", ("upsample", "interpolate", "grid_sampler")),
    ("layout and dtype copies", ("copy_", "to_copy", "contiguous", "clone", "empty_like")),
    (
        "element-wise and activations",
        ("relu", "threshold", "add", "mul", "div", "sub", "fill", "zero", "cat", "mean"),
    ),
]


def _kind(name: str) -> str:
    low = name.lower()
    for kind, fragments in KINDS:
        if any(fragment in low for fragment in fragments):
            return kind
    return "other"


def _phases(run, optimizer, scheduler, device, amp, channels_last, batches) -> dict[str, float]:
    """One training step, each phase timed (seconds)."""
    times = {}
    dtype = torch.bfloat16 if device.type == "cpu" else torch.float16
    start = time.perf_counter()
    with record_function("phase: data"):
        images, masks = next(batches)
    times["data (next batch)"] = time.perf_counter() - start
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    start = time.perf_counter()
    with record_function("phase: forward"), torch.autocast(device.type, dtype, enabled=amp):
        logits = run.model(images)
    times["forward"] = time.perf_counter() - start
    start = time.perf_counter()
    with record_function("phase: loss"), torch.autocast(device.type, dtype, enabled=amp):
        loss = run.loss_fn(logits, masks)
    times["loss"] = time.perf_counter() - start
    start = time.perf_counter()
    with record_function("phase: backward"):
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
    times["backward"] = time.perf_counter() - start
    start = time.perf_counter()
    with record_function("phase: optimiser"):
        optimizer.step()
        scheduler.step()
    times["optimiser + schedule"] = time.perf_counter() - start
    return times


def _evaluate(run, device, amp, channels_last) -> float:
    dtype = torch.bfloat16 if device.type == "cpu" else torch.float16
    run.model.eval()
    start = time.perf_counter()
    with torch.no_grad(), torch.autocast(device.type, dtype, enabled=amp):
        for images, _ in eval_loader(run.val_set, run.config):
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            run.model(images).argmax(1)
    run.model.train()
    return time.perf_counter() - start


def _batches(loader):
    while True:
        yield from loader


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="profiled training steps")
    parser.add_argument("--warmup", type=int, default=3, help="steps before profiling")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--out", type=Path, default=None, help="write the tables as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    amp = amp_is_fast(device) if args.amp is None else args.amp
    run = build_run(RunConfig())
    to_layout(run.model, device, channels_last=True)  # fit's layout
    config = settle(run.config, device)
    optimizer = build_optimizer(run.model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(  # what fit does: the poly rate of each step
        optimizer, lambda step: poly_lr_lambda(step, config.steps, warmup_steps=config.warmup_steps)
    )
    batches = _batches(train_loader(run.train_set, config))
    step = (run, optimizer, scheduler, device, amp, True, batches)
    for _ in range(args.warmup):
        _phases(*step)
    totals: dict[str, float] = defaultdict(float)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            for phase, seconds in _phases(*step).items():
                totals[phase] += seconds / args.steps
    eval_seconds = _evaluate(run, device, amp, True)
    kinds: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        if not event.key.startswith("phase: "):
            kinds[_kind(event.key)] += event.self_cpu_time_total / 1e6 / args.steps
    _report(totals, kinds, eval_seconds, len(run.val_set), amp, args)


def _report(totals, kinds, eval_seconds, val_images, amp, args) -> None:
    step = sum(totals.values())
    kernels = torch.backends.cpu.get_cpu_capability()
    print(f"CPU kernels {kernels}, {args.threads} threads, amp (bf16) {'on' if amp else 'off'}")
    print("\n| phase of one training step | ms | share |\n|---|---:|---:|")
    for phase, seconds in totals.items():
        print(f"| {phase} | {seconds * 1e3:.0f} | {seconds / step:.0%} |")
    print(f"| **the step** | **{step * 1e3:.0f}** | |")
    print(f"\nevaluation of {val_images} validation images: {eval_seconds:.2f} s")
    ops = sum(kinds.values())
    print("\n| operators (self CPU time per step) | ms | share |\n|---|---:|---:|")
    for kind, seconds in sorted(kinds.items(), key=lambda item: -item[1]):
        print(f"| {kind} | {seconds * 1e3:.0f} | {seconds / ops:.0%} |")
    if args.out is not None:
        result = {
            "kernels": kernels, "threads": args.threads, "amp": amp, "steps": args.steps,
            "phases_s": totals, "step_s": step, "operators_s": kinds,
            "eval_s": eval_seconds, "val_images": val_images,
        }  # fmt: skip
        with atomic_write(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
