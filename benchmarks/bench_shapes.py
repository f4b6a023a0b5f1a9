"""Benchmark: how many ShapesDataset samples per second one CPU core draws.

Run: ``python benchmarks/bench_shapes.py [--image-size 128] [--samples 2000]``.
Target: >= 500 samples/s of 128 x 128 on one core, so data never starves the trainer.
"""

from __future__ import annotations

import argparse
import time

import torch

from deeplab_utils.data import ShapesDataset, build_dataset


def samples_per_second(dataset, n: int) -> float:
    """Time ``n`` sequential ``dataset[i]`` calls (after a short warm-up)."""
    for i in range(min(20, n)):
        dataset[i]
    start = time.perf_counter()
    for i in range(n):
        dataset[i % len(dataset)]
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=128, help="side in pixels (128)")
    parser.add_argument("--samples", type=int, default=2000, help="samples to time (2000)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the target is per core: DataLoader workers scale it
    size, n = args.image_size, args.samples
    plain = samples_per_second(ShapesDataset(n, image_size=size), n)
    train = samples_per_second(build_dataset("shapes", split="train", image_size=size), n)
    print(f"ShapesDataset {size}x{size}, 1 thread")
    print(f"  ShapesDataset (normalise only):   {plain:8.0f} samples/s  (target >= 500)")
    # The trainer's split: no augmentation either, every generated scene is already random.
    print(f"  build_dataset train (the same):   {train:8.0f} samples/s")


if __name__ == "__main__":
    main()
