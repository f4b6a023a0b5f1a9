"""Speed, size and memory of the course's models next to their peers, on the CPU.

Pairs compared (same input, same loss, same optimiser):

(a) our ``DeepLabV3(output_stride=8)`` vs torchvision ``deeplabv3_resnet50`` (the same network);
(b) our ``DeepLabV3Plus(separable=True)`` vs ``smp.DeepLabV3Plus("resnet50")`` (both OS 16);
(b') the same with smp's two simplifications (one decoder conv, no BN + ReLU after depthwise
     convs), which tells the implementation's speed apart from the paper's extra layers;
(c) our ``DeepLabV3Plus`` at output stride 16 vs 8.

Times are medians over interleaved runs (A, B, A, B, ... after a warm-up), so that a slower or
busier machine affects both models alike. Peak memory is measured with each model alone in its own
subprocess. Needs ``pip install -e ".[bench]"`` for pair (b).

Use the default thread count (or ``--threads`` > 1): with one thread and a batch under 16,
PyTorch runs undilated 1x1 convolutions on a slower CPU kernel than dilated ones, which favours
smp, whose encoder sets dilation on layer4's 1x1 convolutions too (a no-op for the result).

Usage::

    python benchmarks/bench_models.py                    # batch 4, 128x128, 10 repeats
    python benchmarks/bench_models.py --repeats 2 --size 64
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from deeplab_utils import DeepLabV3, DeepLabV3Plus, SeparableConv2d, count_macs, count_parameters

NUM_CLASSES = 21  # PASCAL VOC, the paper's benchmark


class _OutOnly(nn.Module):
    """Wraps torchvision's segmentation models, which return ``{"out": logits}``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


def _torchvision_deeplabv3() -> nn.Module:
    from torchvision.models.segmentation import deeplabv3_resnet50

    return _OutOnly(
        deeplabv3_resnet50(
            weights=None, weights_backbone=None, num_classes=NUM_CLASSES, aux_loss=False
        )
    )


def _smp_deeplabv3plus() -> nn.Module:
    import segmentation_models_pytorch as smp

    return smp.DeepLabV3Plus(encoder_name="resnet50", encoder_weights=None, classes=NUM_CLASSES)


def _ours_like_smp() -> nn.Module:
    """Our separable DeepLabV3Plus with smp's two simplifications, to attribute pair (b)'s gap.

    smp's decoder has one 3x3 conv where the paper has two (Table 2), and its separable convs
    have no BN + ReLU between depthwise and pointwise (the paper's code has them, Sec. 3.2).
    """
    model = DeepLabV3Plus(NUM_CLASSES, separable=True)
    model.decoder.refine = model.decoder.refine[:1]
    for module in model.modules():
        if isinstance(module, SeparableConv2d):
            module.bn, module.relu = nn.Identity(), nn.Identity()
    return model


MODELS: dict[str, Callable[[], nn.Module]] = {
    "ours DeepLabV3 OS8": lambda: DeepLabV3(NUM_CLASSES, output_stride=8),
    "torchvision deeplabv3_resnet50": _torchvision_deeplabv3,
    "ours DeepLabV3Plus separable OS16": lambda: DeepLabV3Plus(NUM_CLASSES, separable=True),
    "smp DeepLabV3Plus resnet50": _smp_deeplabv3plus,
    "ours, smp's simplifications": _ours_like_smp,
    "ours DeepLabV3Plus OS16": lambda: DeepLabV3Plus(NUM_CLASSES, output_stride=16),
    "ours DeepLabV3Plus OS8": lambda: DeepLabV3Plus(NUM_CLASSES, output_stride=8),
}

PAIRS = [
    ("(a)", "ours DeepLabV3 OS8", "torchvision deeplabv3_resnet50"),
    ("(b)", "ours DeepLabV3Plus separable OS16", "smp DeepLabV3Plus resnet50"),
    ("(b')", "ours, smp's simplifications", "smp DeepLabV3Plus resnet50"),
    ("(c)", "ours DeepLabV3Plus OS16", "ours DeepLabV3Plus OS8"),
]


class _Runner:
    """One model with its optimiser, timing a training step and an inference pass."""

    def __init__(self, name: str, batch: int, size: int) -> None:
        self.name = name
        self.model = MODELS[name]()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=1e-3, momentum=0.9)
        self.x = torch.randn(batch, 3, size, size)
        self.y = torch.randint(0, NUM_CLASSES, (batch, size, size))

    def train_step(self) -> float:
        self.model.train()
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.model(self.x), self.y)
        loss.backward()
        self.optimizer.step()
        return time.perf_counter() - start

    def inference(self) -> float:
        self.model.eval()
        start = time.perf_counter()
        with torch.no_grad():
            self.model(self.x)
        return time.perf_counter() - start


def _peak_rss_mb(name: str, batch: int, size: int, threads: int | None) -> float:
    """Peak resident memory (MB) of a fresh process doing one train step and one inference."""
    command = [sys.executable, __file__, "--memory-of", name, "--batch", str(batch)]
    command += ["--size", str(size)] + (["--threads", str(threads)] if threads else [])
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_rss_mb"]


def _measure_memory(name: str, batch: int, size: int) -> None:
    runner = _Runner(name, batch, size)
    runner.train_step()
    runner.inference()
    # ru_maxrss is in kilobytes on Linux (bytes on macOS).
    scale = 1 / 1024**2 if sys.platform == "darwin" else 1 / 1024
    print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale}))


def _available(name: str) -> bool:
    if name.startswith("smp"):
        try:
            import segmentation_models_pytorch  # noqa: F401
        except ImportError:
            print(f"skipping {name!r}: pip install -e '.[bench]' to compare with it")
            return False
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=128, help="input height and width")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per model")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs per model first")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--memory-of", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.memory_of:
        _measure_memory(args.memory_of, args.batch, args.size)
        return

    pairs = [p for p in PAIRS if _available(p[1]) and _available(p[2])]
    # Memory first, while this process is small: a child inherits its parent's peak RSS at fork.
    print("measuring peak memory, one subprocess per model ...", file=sys.stderr)
    rss_mb = {
        name: _peak_rss_mb(name, args.batch, args.size, args.threads)
        for _, *names in pairs
        for name in names
    }
    rows = []
    for pair, name_a, name_b in pairs:
        print(f"{pair} {name_a} vs {name_b} ...", file=sys.stderr)
        runners = [_Runner(name_a, args.batch, args.size), _Runner(name_b, args.batch, args.size)]
        times: dict[str, dict[str, list[float]]] = {
            r.name: {"train": [], "infer": []} for r in runners
        }
        for step in ("train", "infer"):
            for i in range(args.warmup + args.repeats):
                for r in runners:  # interleaved: A, B, A, B, ...
                    seconds = r.train_step() if step == "train" else r.inference()
                    if i >= args.warmup:
                        times[r.name][step].append(seconds)
        medians = {n: {k: statistics.median(v) for k, v in t.items()} for n, t in times.items()}
        one_image = torch.randn(1, 3, args.size, args.size)
        for r in runners:
            r.model.eval()
            rows.append(
                {
                    "pair": pair,
                    "model": r.name,
                    "params_m": count_parameters(r.model) / 1e6,
                    "gmacs": count_macs(r.model, one_image) / 1e9,
                    "train_ms": medians[r.name]["train"] * 1e3,
                    "infer_ms": medians[r.name]["infer"] * 1e3,
                    "train_ratio": medians[r.name]["train"] / medians[name_b]["train"],
                    "infer_ratio": medians[r.name]["infer"] / medians[name_b]["infer"],
                    "rss_mb": rss_mb[r.name],
                }
            )
        del runners

    print(
        f"\nCPU, {torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"batch {args.batch}, {args.size}x{args.size}, median of {args.repeats} interleaved runs; "
        "ratio = time / time of the pair's second model.\n"
    )
    print(
        "| pair | model | params (M) | GMACs / image | train step (ms) | ratio "
        "| inference (ms) | ratio | peak RSS (MB) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['pair']} | {r['model']} | {r['params_m']:.2f} | {r['gmacs']:.2f} "
            f"| {r['train_ms']:.0f} | {r['train_ratio']:.2f} | {r['infer_ms']:.0f} "
            f"| {r['infer_ratio']:.2f} | {r['rss_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
