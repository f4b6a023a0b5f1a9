"""Wall time of each notebook in a fresh kernel, as a learner runs it top to bottom.

Executes ``notebooks/NN_*.ipynb`` in order with nbclient (what nbval and ``jupyter nbconvert
--execute`` use), one fresh kernel each, and prints a table of seconds per notebook. With
``--full`` every ``FULL_RUN = False`` line is switched to ``True`` first (the GPU run of
notebooks 07-08); notebook 08 then evaluates the checkpoint that notebook 07 just trained, as it
does for a learner who runs them in order. Notebooks are executed from copies; the course's
files are never modified. Training outputs go under ``runs/`` as usual.

Usage::

    python benchmarks/bench_notebooks.py                 # short runs (the README's CPU column)
    python benchmarks/bench_notebooks.py --full          # full runs (the README's GPU column)
    python benchmarks/bench_notebooks.py --only 07 08    # some notebooks
    python benchmarks/bench_notebooks.py --full --only 08 --stand-in   # 08's full path alone

``--stand-in`` first writes an untrained but finished full-run checkpoint where notebook 07
would have saved its own, so that notebook 08's full path (which loads that checkpoint and then
evaluates on the CPU) is timed without training 07's run first: inference costs the same
whatever the weights. It refuses to replace a real checkpoint, and removes the stand-in after.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from deeplab_utils.checkpoint import save_checkpoint
from deeplab_utils.colab import local_workdir
from deeplab_utils.course import course_config
from deeplab_utils.run import build_run
from deeplab_utils.training import History, build_optimizer

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def run_notebook(path: Path, *, full: bool, timeout: int) -> float:
    """Execute one notebook in a fresh kernel from its own folder; return wall seconds."""
    nb = nbformat.read(path, as_version=4)
    if full:
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.source = cell.source.replace("FULL_RUN = False", "FULL_RUN = True")
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    client.execute()
    return time.perf_counter() - start


def write_stand_in(workdir: Path | None = None) -> Path:
    """Save an untrained full-run checkpoint that ``course.load_or_train`` takes as finished.

    ``workdir`` defaults to the notebooks' own (``setup_notebook``'s outside Colab).
    """
    run = build_run(course_config(workdir or local_workdir(NOTEBOOKS), full=True))
    if run.checkpoint.exists():
        sys.exit(f"{run.checkpoint} exists; --stand-in would replace it (move it away first)")
    steps = run.config.steps
    save_checkpoint(
        run.checkpoint, model=run.model, step=steps, config=run.config,
        optimizer=build_optimizer(run.model, run.config),
        history=History(step=[steps]),  # no curves: notebook 08 reads only the last step
    )  # fmt: skip
    return run.checkpoint


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="set FULL_RUN = True (GPU runs)")
    parser.add_argument("--only", nargs="+", default=None, help="notebook numbers, e.g. 07 08")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell at most")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument(
        "--stand-in",
        action="store_true",
        help="with --full: time notebook 08 on an untrained stand-in for 07's checkpoint",
    )
    args = parser.parse_args(argv)
    if args.stand_in and not args.full:
        parser.error("--stand-in stands in for the full run's checkpoint: add --full")

    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if args.only:
        paths = [p for p in paths if p.name[:2] in args.only]
    if not paths:
        sys.exit(f"no notebooks matched {args.only} in {NOTEBOOKS}")
    if args.stand_in and any(p.name.startswith("07") for p in paths):
        parser.error("--stand-in would stand in for the run notebook 07 trains: use --only 08")
    import torch

    device = (
        torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "CPU"
    )
    rows = []
    stand_in = write_stand_in() if args.stand_in else None
    try:
        for path in paths:
            seconds = run_notebook(path, full=args.full, timeout=args.timeout)
            rows.append({"notebook": path.name, "seconds": seconds})
            print(f"{path.name}: {seconds:.0f} s", flush=True)
    finally:
        if stand_in is not None:
            stand_in.unlink()
            with contextlib.suppress(OSError):  # the run's folder, unless it holds more
                stand_in.parent.rmdir()
    print(f"\n{device}, torch {torch.__version__}, FULL_RUN={args.full}\n")
    print("| notebook | seconds |\n|---|---:|")
    for row in rows:
        print(f"| {row['notebook']} | {row['seconds']:.0f} |")
    if args.json:
        meta = {
            "device": device,
            "torch": torch.__version__,
            "full": args.full,
            "stand_in": args.stand_in,
        }
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
