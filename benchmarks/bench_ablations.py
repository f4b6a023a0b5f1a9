"""The paper's ablations in miniature (issue 22): notebook 07's recipe trained with one part of
DeepLabV3+ changed at a time (no decoder, no image pooling, output stride 8, regular instead of
separable convolutions), on several seeds: validation mIoU, trimap mIoU, training time, MACs.

Each finished run is written to ``--out`` at once; running the same command again continues
where a stopped one left off. The CPU results are in ``results/ablations_*.json`` and notebook
08 shows them; ``--full`` is the GPU version (notebook 07's full run: 128-pixel images, 3000
steps), which notebook 08 also runs with one flag.

Usage::

    python benchmarks/bench_ablations.py --out results/ablations_avx512.json
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \\
        python benchmarks/bench_ablations.py --out results/ablations_avx2.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

import torch

from deeplab_utils.ablations import ABLATIONS, compare
from deeplab_utils.config import settle
from deeplab_utils.course import course_config
from deeplab_utils.files import atomic_write
from deeplab_utils.runtime import pick_device


def _cpu() -> str:
    """The CPU's model name (Linux), else what ``platform`` knows."""
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.is_file() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--changes", nargs="+", default=list(ABLATIONS), choices=list(ABLATIONS))
    parser.add_argument("--full", action="store_true", help="notebook 07's full (GPU) run")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--note", default="", help="what the report should say of the host")
    args = parser.parse_args()
    device = pick_device()
    if device.type == "cpu":
        torch.set_num_threads(2)  # the course's 2-core laptop
    config = course_config(tempfile.gettempdir(), full=args.full)
    rows_file = args.out.with_suffix(".rows.json")  # each run as it finishes
    rows = compare(config, tuple(args.seeds), tuple(args.changes), results=rows_file)
    settled = settle(config, device)
    kernels = torch.backends.cpu.get_cpu_capability()
    # ATEN_CPU_CAPABILITY set: kernels limited on a faster CPU (say so in --note on a real one)
    kernels += " (emulated)" if os.environ.get("ATEN_CPU_CAPABILITY") else ""
    report = {"kernels": kernels, "threads": torch.get_num_threads(), "device": str(device),
              "cpu": _cpu(), "torch": torch.__version__,
              "amp": settled.amp, "image_size": config.image_size, "steps": config.steps,
              "batch_size": config.batch_size, "note": args.note, "changes": ABLATIONS,
              "rows": rows}  # fmt: skip
    with atomic_write(args.out, "w") as f:
        f.write(json.dumps(report, indent=1) + "\n")
    rows_file.unlink()


if __name__ == "__main__":
    main()
