"""The course's own trained model: notebook 07 trains it, notebook 08 reuses it.

Teaching-aid layer. Both notebooks build their run with :func:`prepare_run`, which hands the
sizes of :func:`~deeplab_utils.runtime.run_sizes` to the main job's own builder,
:func:`~deeplab_utils.run.build_run`: the same recipe, smaller. So notebook 08 loads what
notebook 07 saved or, run on its own, trains the very same model.
"""

from __future__ import annotations

from pathlib import Path

from .backbone import IMAGENET
from .checkpoint import load_checkpoint
from .run import ResumeError, Run, RunConfig, build_run, check_resume, train_run
from .runtime import RunSizes
from .training import History, TrainConfig

CourseRun = Run  # the name notebooks and earlier versions use


def run_config(sizes: RunSizes, workdir: str | Path, *, seed: int = 0) -> RunConfig:
    """The main job's recipe (:class:`~deeplab_utils.run.RunConfig`'s defaults) at ``sizes``.

    Real photographs (``sizes.dataset`` "pets" or "voc", files under ``workdir/data``) start
    from ImageNet weights and train with the paper's SGD; the built-in shapes train from
    scratch with the recipe's Adam.
    """
    real = sizes.dataset != "shapes"
    fine_tune = {"optimizer": "sgd"} if real else {}  # from ImageNet weights: the paper's SGD
    return RunConfig(
        dataset=sizes.dataset,
        data_dir=str(Path(workdir) / "data"),
        image_size=sizes.image_size,
        train_samples=sizes.train_samples,
        val_samples=sizes.val_samples,
        backbone_weights=IMAGENET if real else None,
        train=TrainConfig(
            steps=sizes.steps,
            batch_size=sizes.batch_size,
            **fine_tune,
            eval_every=sizes.eval_every,
            checkpoint_every=sizes.eval_every,
            seed=seed,
        ),
    )


def prepare_run(sizes: RunSizes, workdir: str | Path, *, seed: int = 0) -> Run:
    """Build the model, data, loaders and loss of the course's run at ``sizes``.

    Args:
        sizes: from :func:`~deeplab_utils.runtime.run_sizes`.
        workdir: folder holding ``data/`` and ``runs/`` (the ``WORKDIR`` of the notebooks'
            setup cell); the checkpoint goes to ``runs/course-short/`` or ``runs/course-full/``
            (``runs/course-pets-full/`` etc. for real data).
        seed: seeds the weights, the data and its order.
    """
    name = f"course-{'' if sizes.dataset == 'shapes' else sizes.dataset + '-'}"
    name += "full" if sizes.full else "short"
    checkpoint = Path(workdir) / "runs" / name / "checkpoint.pt"
    return build_run(run_config(sizes, workdir, seed=seed), checkpoint=checkpoint)


def _resumable(run: Run) -> bool:
    if run.checkpoint is None or not run.checkpoint.exists():
        return False
    try:
        run.config = check_resume(run.config, run.checkpoint)
    except ResumeError:
        return False  # another configuration's run: replaced by this one
    return True


def train(run: Run, *, progress: bool = True) -> History:
    """Train ``run.model``, continuing a stopped run of the same configuration.

    A checkpoint of the same configuration that stopped early (say, Colab disconnected) is
    continued, and a finished one is returned at once; one of another configuration is
    replaced.
    """
    return train_run(run, resume=_resumable(run), progress=progress)


def load_or_train(
    sizes: RunSizes, workdir: str | Path, *, seed: int = 0, progress: bool = True
) -> tuple[Run, History]:
    """The course's trained model: loaded if a finished run is on disk, else trained now.

    Returns:
        The run (``run.model`` on the CPU, in eval mode, whether loaded or trained on a GPU) and
        its training history.
    """
    run = prepare_run(sizes, workdir, seed=seed)
    if _resumable(run):
        state = load_checkpoint(run.checkpoint, model=run.model)
        if state["step"] == run.config.train.steps:
            run.model.eval()
            return run, History.from_dict(state["history"])
        run = prepare_run(sizes, workdir, seed=seed)  # fresh objects; train() resumes the run
    history = train(run, progress=progress)
    run.model.cpu().eval()  # where a loaded model is: the same device either way
    return run, history
