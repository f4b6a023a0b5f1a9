"""Training and inference speed and peak memory on a CUDA GPU, at the paper's crop size.

Batch 8 at 512x512 (the paper trains on 513x513 crops, Sec. 4), 21 classes (PASCAL VOC), mixed
precision as the trainer does it (fp16 autocast + GradScaler), SGD with momentum (the paper's
recipe) and the course's Dice + cross-entropy loss. For each model it reports training and
inference images/s (median over timed steps after a warm-up, timed with CUDA events) and the
peak GPU memory of a training step: ``allocated`` is what tensors used, ``reserved`` what
PyTorch's caching allocator held, which is what must fit on the card (a Colab T4 has 16 GB, of
which about 15 GB can be used).

Each model runs in its own subprocess, so that one model's cached memory does not inflate the
next one's peak. Torchvision's ``deeplabv3_resnet50`` (DeepLabV3, output stride 8) runs beside
ours as the peer; it is the same network as our ``DeepLabV3(output_stride=8)``.

Usage::

    python benchmarks/bench_cuda.py                  # every model, batch 8, 512x512
    python benchmarks/bench_cuda.py --batch 16 --size 384 --models plus plus-sep
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

import torch
from bench_models import NUM_CLASSES, _torchvision_deeplabv3
from torch import nn

T4_USABLE_GIB = 15.0  # a Colab T4 reports 15.0 GiB of its 16 GB to PyTorch

MODELS = {
    "plus": "ours: DeepLabV3Plus, OS 16",
    "plus-sep": "ours: DeepLabV3Plus, OS 16, separable (main job's default)",
    "plus-os8": "ours: DeepLabV3Plus, OS 8",
    "v3-os8": "ours: DeepLabV3, OS 8",
    "tv-v3-os8": "torchvision: deeplabv3_resnet50 (OS 8)",
}


def _build(name: str) -> nn.Module:
    from deeplab_utils import DeepLabV3, DeepLabV3Plus

    if name == "plus":
        return DeepLabV3Plus(num_classes=NUM_CLASSES, output_stride=16)
    if name == "plus-sep":
        return DeepLabV3Plus(num_classes=NUM_CLASSES, output_stride=16, separable=True)
    if name == "plus-os8":
        return DeepLabV3Plus(num_classes=NUM_CLASSES, output_stride=8)
    if name == "v3-os8":
        return DeepLabV3(num_classes=NUM_CLASSES, output_stride=8)
    if name == "tv-v3-os8":
        return _torchvision_deeplabv3()
    raise ValueError(f"model must be one of {sorted(MODELS)}, got {name!r}")


def _timed(fn, *, warmup: int, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs (CUDA events)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1000)
    return statistics.median(times)


def measure(name: str, *, batch: int, size: int, repeats: int, channels_last: bool) -> dict:
    """Train and inference speed and peak training memory of one model (run in a subprocess)."""
    from deeplab_utils.losses import DiceCELoss

    device = torch.device("cuda")
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick its fastest kernels
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = _build(name).to(device, memory_format=memory_format)
    images = torch.randn(batch, 3, size, size, device=device).contiguous(
        memory_format=memory_format
    )  # (B, 3, H, W)
    masks = torch.randint(0, NUM_CLASSES, (batch, size, size), device=device)  # (B, H, W)
    loss_fn = DiceCELoss(ignore_index=255)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.007, momentum=0.9, weight_decay=1e-4)
    scaler = torch.amp.GradScaler("cuda")

    def train_step() -> None:
        with torch.autocast("cuda", dtype=torch.float16):
            loss = loss_fn(model(images), masks)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    model.train()
    train_step()  # allocates the optimiser state and gradients before the peak is reset
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    train_s = _timed(train_step, warmup=3, repeats=repeats)
    allocated = torch.cuda.max_memory_allocated() / 2**30
    reserved = torch.cuda.max_memory_reserved() / 2**30

    @torch.no_grad()
    def infer() -> None:
        with torch.autocast("cuda", dtype=torch.float16):
            model(images)

    model.eval()
    infer_s = _timed(infer, warmup=3, repeats=repeats)
    return {
        "model": name,
        "description": MODELS[name],
        "train_images_per_s": batch / train_s,
        "infer_images_per_s": batch / infer_s,
        "peak_allocated_gib": allocated,
        "peak_reserved_gib": reserved,
        "fits_t4": reserved < T4_USABLE_GIB,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--channels-last", action="store_true", help="NHWC memory layout")
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one model, print JSON
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("bench_cuda.py needs a CUDA GPU; none is available here")
    opts = {"batch": args.batch, "size": args.size, "repeats": args.repeats}
    if args.one:
        print(json.dumps(measure(args.one, channels_last=args.channels_last, **opts)))
        return

    rows = []
    for name in args.models:
        cmd = [sys.executable, __file__, "--one", name, *[f"--{k}={v}" for k, v in opts.items()]]
        if args.channels_last:
            cmd.append("--channels-last")
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"{name} failed:\n{done.stderr}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))

    gpu = torch.cuda.get_device_name()
    print(f"\n{gpu}, torch {torch.__version__}, batch {args.batch} at {args.size}x{args.size}, ")
    print(f"fp16 autocast + GradScaler, SGD, channels_last={args.channels_last}\n")
    print("| model | train img/s | inference img/s | peak allocated | peak reserved | fits T4 |")
    print("|---|---:|---:|---:|---:|---|")
    for r in rows:
        print(
            f"| {r['description']} | {r['train_images_per_s']:.0f} | "
            f"{r['infer_images_per_s']:.0f} | {r['peak_allocated_gib']:.1f} GiB | "
            f"{r['peak_reserved_gib']:.1f} GiB | {'yes' if r['fits_t4'] else 'no'} |"
        )
    if args.json:
        meta = {"gpu": gpu, "torch": torch.__version__, **opts}
        meta["channels_last"] = args.channels_last
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
