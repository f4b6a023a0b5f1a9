"""The paper's ablations in miniature: what the decoder, image pooling, output stride 8 and
separable convolutions each buy, measured by training the course's recipe with one part changed.

DeepLabv3+ (arXiv 1802.02611) and DeepLabv3 (arXiv 1706.05587) settle each design choice by an
ablation on PASCAL VOC; :func:`compare` runs the same comparisons on the course's shapes, over
several seeds: mIoU, mIoU in boundary bands (the trimap), training time and multiply-adds.
``benchmarks/bench_ablations.py`` stores the CPU results; notebook 08 shows them and re-runs
them with one flag. Taught in notebook 08.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .complexity import count_macs
from .config import RunConfig
from .files import atomic_write
from .inference import predict
from .metrics import SegmentationMetrics, trimap_miou
from .model import ASPP_CHANNELS
from .run import Run, build_run, preview_batch
from .runtime import pick_device
from .training import fit

# One part changed each; the first is the recipe itself (notebook 07's network).
ABLATIONS: dict[str, str] = {
    "DeepLabV3+": "the course's recipe: decoder, image pooling, output stride 16, separable",
    "no decoder": "ASPP's features to logits by a 1x1 conv, upsampled x16 (DeepLabv3's head)",
    "no image pooling": "ASPP without its image-level branch (DeepLabv3, Sec. 3.3)",
    "output stride 8": "layer3 dilated too (4x its positions), ASPP's rates scaled to the map",
    "regular convolutions": "3x3 convolutions in ASPP and decoder, not atrous separable ones",
}
TRIMAP_WIDTHS = (1, 2, 4, 8)  # band widths (px) of the trimap mIoU
# What the papers measured for each change on PASCAL VOC 2012 val: the mIoU difference to the
# full model in points, the multiply-adds relative to it (None: not reported), and where.
PAPER: dict[str, tuple[float, float | None, str]] = {
    "no decoder": (-1.64, 81.02 / 101.28, "DeepLabv3+ Table 3: 77.21 vs 78.85 %, ResNet-101, "
                   "OS 16; Fig. 5(a): -4.8 in the narrowest trimap band"),
    "no image pooling": (-0.63, None, "DeepLabv3 Table 5: 76.58 vs 77.21 %, ResNet-101, OS 16"),
    "output stride 8": (+1.30, None, "DeepLabv3 Table 1: 75.18 vs 73.88 %, ResNet-50 without "
                        "ASPP trained and evaluated at each OS (DeepLabv3+ Table 3 evaluates at 8 "
                        "after training at 16: +0.50, 2.9x the multiply-adds)"),
    "regular convolutions": (+0.14, 89.76 / 54.17, "DeepLabv3+ Table 5: 79.93 vs 79.79 %, "
                             "Xception, OS 16"),
}  # fmt: skip
# A finished run as a table row: what notebook 08 stores and summarize() reads.
FIELDS = ("change", "seed", "gmacs", "seconds", "miou", *(f"trimap {w}" for w in TRIMAP_WIDTHS))


class _Logits(nn.Module):
    """In place of the decoder: a 1x1 conv from ASPP's features ``(B, 256, h, w)`` to logits
    ``(B, K, h, w)``, ignoring the low-level features; the network's forward then upsamples
    them x16 (x8 at output stride 8) to the image, as DeepLabv3 does."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.classify = nn.Conv2d(channels, num_classes, 1)

    def forward(self, aspp_out: torch.Tensor, low_level: torch.Tensor) -> torch.Tensor:
        return self.classify(aspp_out)


def ablated(config: RunConfig, change: str) -> Run:
    """:func:`~deeplab_utils.run.build_run` of ``config`` with one of :data:`ABLATIONS`: the
    same data and initial weights, but for the part changed (new layers start as PyTorch
    initialises them). ``config`` is expected to be the course's (DeepLabV3+, separable)."""
    if change not in ABLATIONS:
        raise ValueError(f"change must be one of {list(ABLATIONS)}, got {change!r}")
    if change == "output stride 8":
        config = replace(config, output_stride=8)
    if change == "regular convolutions":
        config = replace(config, separable=False)
    run = build_run(config)
    model = run.model
    if change == "no decoder":
        model.decoder = _Logits(ASPP_CHANNELS, run.train_set.num_classes)
    if change == "no image pooling":
        aspp = model.aspp
        aspp.convs = aspp.convs[:-1]  # the last branch is ASPPPooling
        aspp.project[0] = nn.Conv2d(len(aspp.convs) * ASPP_CHANNELS, ASPP_CHANNELS, 1, bias=False)
    return run


def scores(run: Run, widths: tuple[int, ...] = TRIMAP_WIDTHS) -> dict[str, Any]:
    """The trained ``run.model``'s validation mIoU, IoU per class and trimap mIoU per width."""
    device = pick_device(run.config.device)
    images, masks = preview_batch(run, len(run.val_set))  # (N, 3, S, S), (N, S, S)
    preds = torch.cat([predict(run.model, chunk.to(device)).argmax(dim=1).cpu()
                       for chunk in images.split(32)])  # fmt: skip
    metrics = SegmentationMetrics(run.train_set.num_classes)
    metrics.update(preds, masks)
    whole = metrics.compute()
    trimap = {str(w): trimap_miou(preds, masks, metrics.num_classes, w) for w in widths}
    return {"miou": whole["miou"], "iou": whole["iou"].tolist(), "trimap": trimap}


def measure(config: RunConfig, change: str) -> dict[str, Any]:
    """Train ``config`` with ``change`` (no checkpoint) and score it: one row of the table."""
    run = ablated(replace(config, out=None, val_every=0), change)
    macs = count_macs(run.model, run.val_set[0][0][None])  # on one image (1, 3, S, S)
    started = time.perf_counter()
    fit(replace(run, val_set=None), progress=False)  # trains run.model; scored below
    seconds = time.perf_counter() - started
    return {"change": change, "seed": config.seed, "setting": _setting(config),
            "seconds": round(seconds, 1), "gmacs": round(macs / 1e9, 3), **scores(run)}  # fmt: skip


def _setting(config: RunConfig) -> str:
    """What makes two runs' rows comparable, besides the change and the seed."""
    return f"{config.image_size} px, {config.steps} steps of {config.batch_size}"


def compare(
    config: RunConfig,
    seeds: tuple[int, ...] = (0, 1, 2),
    changes: tuple[str, ...] = tuple(ABLATIONS),
    results: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Every change of ``changes`` trained on every seed, seed by seed; each row is added to the
    JSON file ``results`` as it finishes, and rows already there are not trained again (a
    stopped comparison continues where it stopped). Runs on the built-in shapes only; raises a
    ValueError if ``results`` holds runs of another setting (image size, steps, batch)."""
    if config.dataset != "shapes":
        raise ValueError(f"the ablations train on the shapes, got dataset={config.dataset!r}")
    path = None if results is None else Path(results)
    rows = json.loads(path.read_text()) if path is not None and path.is_file() else []
    for row in rows:
        if row.get("setting", _setting(config)) != _setting(config):
            raise ValueError(f"{path} holds runs of {row['setting']}, not of "
                             f"{_setting(config)}: give another results file")  # fmt: skip
    done = {(row["change"], row["seed"]) for row in rows}
    for seed in seeds:
        for change in changes:
            if (change, seed) in done:
                continue
            rows.append(measure(replace(config, seed=seed), change))
            if path is not None:
                with atomic_write(path, "w") as f:
                    f.write(json.dumps(rows, indent=1) + "\n")
    return [row for row in rows if row["change"] in changes and row["seed"] in seeds]


def as_table(rows: list[dict[str, Any]]) -> list[tuple]:
    """:func:`compare`'s rows as tuples of :data:`FIELDS`, scores rounded to 4 decimals."""
    return [
        (row["change"], row["seed"], row["gmacs"], row["seconds"], round(row["miou"], 4),
         *(round(row["trimap"][str(w)], 4) for w in TRIMAP_WIDTHS))
        for row in rows
    ]  # fmt: skip


def summarize(table: list[tuple]) -> dict[str, dict[str, Any]]:
    """Per change: GMACs, the fastest run's seconds (other work on a host only slows a run),
    the mean mIoU, the trimap mIoU per width (mean over seeds), and the differences to the full
    model seed by seed (``"delta"``: mIoU; ``"delta_band"``: the narrowest band's), pairing runs
    that share data and initial weights. Raises a ValueError if a change lacks a seed the full
    model has, or the reverse."""
    runs = {(row[0], row[1]): dict(zip(FIELDS, row, strict=True)) for row in table}
    seeds = sorted(seed for change, seed in runs if change == "DeepLabV3+")
    summary = {}
    for change in dict.fromkeys(change for change, _ in runs):
        mine = sorted(seed for c, seed in runs if c == change)
        if mine != seeds:
            raise ValueError(f"{change!r} has seeds {mine}, DeepLabV3+ has {seeds}: pair them")
        own = [runs[change, seed] for seed in seeds]
        full = [runs["DeepLabV3+", seed] for seed in seeds]
        narrow = f"trimap {TRIMAP_WIDTHS[0]}"
        summary[change] = {
            "gmacs": own[0]["gmacs"],
            "seconds": min(r["seconds"] for r in own),
            "miou": sum(r["miou"] for r in own) / len(own),
            "trimap": {w: sum(r[f"trimap {w}"] for r in own) / len(own) for w in TRIMAP_WIDTHS},
            "delta": [a["miou"] - b["miou"] for a, b in zip(own, full, strict=True)],
            "delta_band": [a[narrow] - b[narrow] for a, b in zip(own, full, strict=True)],
        }
    return summary
