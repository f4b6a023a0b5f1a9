"""benchmarks/bench_notebooks.py's stand-in checkpoint: notebook 08 must take it as a finished
full run (or the benchmark would time notebook 07's 3,000 training steps instead)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from deeplab_utils import course, training

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_notebooks.py"


@pytest.fixture(scope="module")
def bench():
    pytest.importorskip("nbclient")  # the benchmark runs notebooks with it (a dev dependency)
    spec = importlib.util.spec_from_file_location("bench_notebooks", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stand_in_is_loaded_as_finished(bench, tmp_path, monkeypatch):
    """load_or_train, as notebook 08 calls it, loads the stand-in and trains nothing."""
    path = bench.write_stand_in(tmp_path)
    config = course.course_config(tmp_path, full=True)
    assert path == tmp_path / "runs" / "course-full" / "checkpoint.pt"

    def no_step(*args):
        raise AssertionError("load_or_train trained instead of loading the stand-in")

    monkeypatch.setattr(training, "poly_lr_lambda", no_step)  # what every step calls first
    run, history = course.load_or_train(config, progress=False)
    assert history.step[-1] == config.steps
    assert not run.model.training


def test_stand_in_never_replaces_a_checkpoint(bench, tmp_path):
    path = bench.write_stand_in(tmp_path)
    before = path.stat().st_mtime_ns
    with pytest.raises(SystemExit, match="exists"):
        bench.write_stand_in(tmp_path)
    assert path.stat().st_mtime_ns == before


def test_stand_in_needs_full_and_only_08(bench, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--stand-in", "--only", "08"])
    assert "add --full" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--full", "--stand-in", "--only", "07", "08"])
    assert "use --only 08" in capsys.readouterr().err
