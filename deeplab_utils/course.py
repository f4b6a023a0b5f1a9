"""The notebooks' run: the main job's recipe at a laptop's or a GPU's size, trained once.

Teaching-aid layer. Notebook 07 trains it, notebook 08 reuses it: both build their config with
:func:`course_config` (an instance of the main job's :class:`~deeplab_utils.config.RunConfig`,
smaller) and their run with :func:`~deeplab_utils.run.build_run`, as the main job does. So
notebook 08 loads what notebook 07 saved or, run on its own, trains the very same model.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .backbone import IMAGENET
from .checkpoint import read_checkpoint
from .config import ResumeError, RunConfig, resumed
from .run import Run, build_run
from .training import History, fit

# The short run is for a 2-core laptop CPU and CI (notebook 07 trains it in about 5 minutes),
# the full one for a GPU such as Colab's T4; both at full size throughout (in a run this short,
# progressive resizing cost more than it gave: benchmarks/README.md). Real photographs need a
# GPU: they fine-tune from ImageNet weights as the paper does (SGD, batch 16, 513-pixel crops for
# VOC, Sec. 4; 384 for the smaller Pets pictures; full size throughout) on shortened schedules;
# their short runs only try the code path.
SHORT_RUN = RunConfig(
    steps=400, train_samples=5000, val_samples=256, start_scale=1.0, val_every=50
)  # 8 validations: a curve to read (notebook 07, section 7)
FULL_RUN = replace(SHORT_RUN, image_size=128, steps=3000, train_samples=8000, val_every=250)
_REAL = replace(RunConfig(), backbone_weights=IMAGENET, optimizer="sgd")
_TRY = {"image_size": 128, "batch_size": 4, "steps": 20, "train_samples": 64, "val_samples": 16}
REAL_RUNS = {
    ("pets", True): replace(_REAL, dataset="pets", image_size=384, steps=2000, val_every=500),
    ("voc", True): replace(_REAL, dataset="voc", image_size=513, steps=10_000, val_every=1000),
    ("pets", False): replace(_REAL, dataset="pets", val_every=20, **_TRY),
    ("voc", False): replace(_REAL, dataset="voc", val_every=20, **_TRY),
}


def course_config(workdir: str | Path, *, full: bool = False, dataset: str = "shapes") -> RunConfig:
    """The notebooks' run: short (a laptop, CI) or ``full`` (a GPU), on ``dataset``.

    The device is not consulted (the full run works on a CPU too, only slowly), so a notebook
    does the same wherever it runs. Real datasets are read from ``workdir/data``; the run is
    saved in ``workdir/runs/course-short`` (``course-full``, ``course-pets-full``, ...).
    """
    if not isinstance(full, bool):
        raise ValueError(f"full must be True or False, got {full!r}")
    if dataset != "shapes" and (dataset, full) not in REAL_RUNS:
        raise ValueError(f"dataset must be 'shapes', 'pets' or 'voc', got {dataset!r}")
    preset = (FULL_RUN if full else SHORT_RUN) if dataset == "shapes" else REAL_RUNS[dataset, full]
    name = f"course-{'' if dataset == 'shapes' else dataset + '-'}{'full' if full else 'short'}"
    return replace(
        preset, data_dir=str(Path(workdir) / "data"), out=str(Path(workdir) / "runs" / name)
    )


def _continued(run: Run) -> bool:
    """Whether ``run`` continues its checkpoint (then ``run.config`` takes the run's values)."""
    if run.checkpoint is None or not run.checkpoint.is_file():
        return False
    saved = read_checkpoint(run.checkpoint)
    try:
        run.config = resumed(run.config, saved.get("config") or {}, saved["step"])
    except ResumeError:
        return False  # another configuration's run: this one replaces it
    return True


def train(run: Run, *, progress: bool = True) -> History:
    """Train ``run.model`` with :func:`~deeplab_utils.training.fit`, evaluating as it goes.

    A stopped run of the same configuration (say, Colab disconnected) is continued, and a
    finished one returned at once; one of another configuration is replaced.
    """
    return fit(run, resume=_continued(run), progress=progress)


def load_or_train(config: RunConfig, *, progress: bool = True) -> tuple[Run, History]:
    """The trained run of ``config``: loaded if it finished before, else trained (or finished)
    now by :func:`train`. Its model ends on the CPU, in eval mode, either way."""
    run = build_run(config)
    history = train(run, progress=progress)
    run.model.cpu().eval()
    return run, history
