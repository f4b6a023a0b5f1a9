"""Tests for tools/notebooks.py's badges, setup cell and set-repo, and for deeplab_utils.colab
(the working folder, Colab simulated offline)."""

import json
import sys
import types
from pathlib import Path

import pytest
import torch

from deeplab_utils import colab
from deeplab_utils.checks import pieces
from tools import notebooks as tool

ROOT = Path(__file__).resolve().parents[1]


def _notebook(title="# Title", setup=None):
    cells = [{"cell_type": "markdown", "id": "title", "metadata": {}, "source": [title]}]
    cells.append(
        {
            "cell_type": "code",
            "id": "setup",
            "metadata": {},
            "outputs": [],
            "execution_count": None,
            "source": [setup or "# Setup: old\nprint(1)"],
        }
    )
    return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def test_badge_points_at_the_notebook_on_colab():
    """The badge links to colab.research.google.com/github/OWNER/REPO/blob/main/<path>."""
    md = tool.badge("notebooks/01_x.ipynb", repo="me/fork")
    assert md.endswith(
        "(https://colab.research.google.com/github/me/fork/blob/main/notebooks/01_x.ipynb)"
    )


def test_setup_cell_installs_package_and_never_torch():
    """The setup cell pip-installs the course from the repo, only on Colab, and never torch."""
    src = tool.setup_cell_source(repo="me/fork")
    assert '%pip install -q "deeplab-course @ git+https://github.com/me/fork"' in src
    assert 'if "google.colab" in sys.modules:' in src
    assert "torch" not in src.split("%pip", 1)[1].split("\n")[0]
    assert "\n# NBVAL_IGNORE_OUTPUT\n" in src, "nbval needs the marker alone on its line"


@pytest.mark.parametrize("repo", ["no-slash", "a/b/c", "", "a b/c"])
def test_bad_repo_raises(repo):
    """A repository that is not OWNER/REPO raises ValueError naming it."""
    with pytest.raises(ValueError, match="OWNER/REPO"):
        tool.badge("notebooks/x.ipynb", repo=repo)


def test_render_notebook_adds_then_replaces_badge():
    """Rendering twice for different repos leaves exactly one badge, for the last repo."""
    nb = _notebook()
    tool.render_notebook(nb, "notebooks/01_x.ipynb", repo="a/one")
    tool.render_notebook(nb, "notebooks/01_x.ipynb", repo="b/two")
    first = "".join(nb["cells"][0]["source"])
    assert first.count("Open In Colab") == 1 and "b/two" in first and "a/one" not in first
    assert first.endswith("# Title")
    assert "".join(nb["cells"][1]["source"]) == tool.setup_cell_source(repo="b/two")


def test_set_repo_rewrites_pyproject_notebooks_and_readme_never_the_tool(tmp_path):
    """set-repo changes the Repository line of pyproject.toml, every notebook's badge and setup
    cell (the student copies built again), and the README; the tool's own code stays as it is."""
    (tmp_path / "tools").mkdir()
    module = tmp_path / "tools" / "notebooks.py"
    module.write_text(Path(tool.__file__).read_text(encoding="utf-8"), encoding="utf-8")
    url = f"https://github.com/{tool.REPO}"
    (tmp_path / "pyproject.toml").write_text(f'[project.urls]\nRepository = "{url}"\n')
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "01_x.ipynb").write_text(json.dumps(_notebook()))
    (tmp_path / "README.md").write_text(f"see https://github.com/{tool.REPO} and pytorch/vision")
    assert tool.main(["set-repo", "me/fork", "--root", str(tmp_path)]) == 0
    assert module.read_text(encoding="utf-8") == Path(tool.__file__).read_text(encoding="utf-8")
    assert tool.read_repo(tmp_path) == "me/fork"
    solved = (tmp_path / "notebooks/01_x.ipynb").read_text()
    assert "github/me/fork/blob/main/notebooks/01_x.ipynb" in solved
    student = (tmp_path / "notebooks/student/01_x.ipynb").read_text()
    assert "github/me/fork/blob/main/notebooks/student/01_x.ipynb" in student
    assert "git+https://github.com/me/fork" in student
    readme = (tmp_path / "README.md").read_text()
    assert readme == "see https://github.com/me/fork and pytorch/vision"


def test_the_repository_is_named_in_pyproject():
    """The tool reads the repository from pyproject.toml's [project.urls], not from its code."""
    assert tool.REPO == tool.read_repo(ROOT) == "deeplab-course/deeplabv3plus-from-scratch"
    assert f'REPO = "{tool.REPO}"' not in Path(tool.__file__).read_text(encoding="utf-8")


def test_set_repo_without_a_repository_line_exits_with_message(tmp_path, capsys):
    """A pyproject.toml whose Repository line was removed is a one-line error saying what is
    missing."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n', encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        tool.main(["set-repo", "me/fork", "--root", str(tmp_path)])
    assert exit_info.value.code == 2
    assert 'no line Repository = "https://github.com/OWNER/REPO"' in capsys.readouterr().err


def test_set_repo_outside_the_repository_exits_with_message(tmp_path, capsys):
    """Pointing set-repo at a folder that is not the course exits 2 with one line."""
    with pytest.raises(SystemExit) as exit_info:
        tool.main(["set-repo", "me/fork", "--root", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "not the course's repository root" in capsys.readouterr().err


def _fake_colab(monkeypatch, mounted):
    google = types.ModuleType("google")
    module = types.ModuleType("google.colab")
    module.drive = types.SimpleNamespace(mount=mounted.append)
    google.colab = module
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", module)


def test_setup_notebook_honours_deeplab_workdir(monkeypatch, tmp_path):
    """DEEPLAB_WORKDIR (the tests' fresh folder for 07/08) replaces the repository root."""
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setenv("DEEPLAB_WORKDIR", str(tmp_path / "fresh"))
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert colab.setup_notebook() == tmp_path / "fresh"
    assert (tmp_path / "fresh").is_dir()


def test_setup_notebook_keeps_the_pieces_in_the_work_folder(monkeypatch, tmp_path):
    """A passing exercise is saved in WORKDIR/my_pieces (my_pieces/student for the copies in
    notebooks/student), where a later notebook's setup cell looks for it."""
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setenv("DEEPLAB_WORKDIR", str(tmp_path / "work"))
    (tmp_path / "notebooks" / "student").mkdir(parents=True)
    for folder, expected in [
        ("notebooks", "my_pieces"),
        ("notebooks/student", "my_pieces/student"),
    ]:
        monkeypatch.chdir(tmp_path / folder)
        colab.setup_notebook()
        assert pieces.save_piece(pieces.shown, "shown") == tmp_path / "work" / expected / "shown.py"


def test_setup_notebook_locally_returns_repo_root(monkeypatch, tmp_path, capsys):
    """Outside Colab: report the environment; the working folder is the repository root."""
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.delenv("DEEPLAB_WORKDIR", raising=False)
    (tmp_path / "notebooks" / "student").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "notebooks")
    assert colab.setup_notebook() == tmp_path
    monkeypatch.chdir(tmp_path / "notebooks" / "student")
    assert colab.setup_notebook() == tmp_path
    monkeypatch.chdir(tmp_path)
    assert colab.setup_notebook() == tmp_path
    assert "torch" in capsys.readouterr().out


def test_setup_notebook_on_colab_without_gpu(monkeypatch, tmp_path, capsys):
    """On Colab with no GPU: says how to enable one; the working folder is under /content."""
    mounted = []
    _fake_colab(monkeypatch, mounted)
    monkeypatch.setattr(colab, "COLAB_CONTENT", tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    workdir = colab.setup_notebook()
    out = capsys.readouterr().out
    assert "Change runtime type" in out and "mount_drive=True" in out
    assert workdir == tmp_path / colab.DRIVE_FOLDER and workdir.is_dir() and mounted == []


def test_setup_notebook_on_colab_mounts_drive(monkeypatch, tmp_path):
    """With mount_drive=True, Drive is mounted and the working folder lives on it."""
    mounted = []
    _fake_colab(monkeypatch, mounted)
    monkeypatch.setattr(colab, "COLAB_CONTENT", tmp_path)
    workdir = colab.setup_notebook(mount_drive=True)
    assert mounted == [str(tmp_path / "drive")]
    assert workdir == tmp_path / "drive" / "MyDrive" / colab.DRIVE_FOLDER
