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
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="set FULL_RUN = True (GPU runs)")
    parser.add_argument("--only", nargs="+", default=None, help="notebook numbers, e.g. 07 08")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell at most")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if args.only:
        paths = [p for p in paths if p.name[:2] in args.only]
    if not paths:
        sys.exit(f"no notebooks matched {args.only} in {NOTEBOOKS}")
    import torch

    device = (
        torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "CPU"
    )
    rows = []
    for path in paths:
        seconds = run_notebook(path, full=args.full, timeout=args.timeout)
        rows.append({"notebook": path.name, "seconds": seconds})
        print(f"{path.name}: {seconds:.0f} s", flush=True)
    print(f"\n{device}, torch {torch.__version__}, FULL_RUN={args.full}\n")
    print("| notebook | seconds |\n|---|---:|")
    for row in rows:
        print(f"| {row['notebook']} | {row['seconds']:.0f} |")
    if args.json:
        meta = {"device": device, "torch": torch.__version__, "full": args.full}
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
