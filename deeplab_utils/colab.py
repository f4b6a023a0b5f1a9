"""Colab support: the repository URL, "Open in Colab" badges, the setup cell, Google Drive.

Teaching-aid layer. The repository the notebooks install from is named once, in :data:`REPO`;
``python -m deeplab_utils.colab set-repo OWNER/REPO`` rewrites it here and in every notebook's
badge and setup cell (and the README), so a fork points at itself with one command.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import torch

from .exercises import dumps

REPO = "deeplab-course/deeplabv3plus-from-scratch"  # GitHub OWNER/REPO; change with `set-repo`
BRANCH = "main"
DRIVE_FOLDER = "deeplab-course"  # under "My Drive": checkpoints and datasets survive a disconnect
COLAB_CONTENT = Path("/content")  # Colab's working folder
WORKDIR_ENV = "DEEPLAB_WORKDIR"  # outside Colab, a working folder other than the repository

_REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_BADGE_RE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")
SETUP_MARKER = "# Setup:"  # the first line of every notebook's setup cell


def _check_repo(repo: str) -> str:
    if not isinstance(repo, str) or not _REPO_RE.match(repo):
        raise ValueError(f"repo must look like 'OWNER/REPO' (a GitHub repository), got {repo!r}")
    return repo


def colab_url(notebook: str, *, repo: str = REPO, branch: str = BRANCH) -> str:
    """The Colab address that opens ``notebook`` (a path inside the repository)."""
    return f"https://colab.research.google.com/github/{_check_repo(repo)}/blob/{branch}/{notebook}"


def badge(notebook: str, *, repo: str = REPO) -> str:
    """Markdown for the "Open in Colab" badge of ``notebook`` (e.g. ``notebooks/01_x.ipynb``)."""
    image = "https://colab.research.google.com/assets/colab-badge.svg"
    return f"[![Open In Colab]({image})]({colab_url(notebook, repo=repo)})"


def setup_cell_source(*, repo: str = REPO) -> str:
    """The first code cell of every notebook.

    On Colab it installs the course package from the repository (pip keeps Colab's torch, which
    satisfies the package's range) and calls :func:`setup_notebook`; locally it only reports.
    """
    url = f"git+https://github.com/{_check_repo(repo)}"
    return (
        f"{SETUP_MARKER} on Colab, install the course package (Colab's own torch is kept);\n"
        "# on your machine `make lab` has installed it already.\n"
        "# NBVAL_IGNORE_OUTPUT\n"
        "# (the report names this machine's versions and hardware)\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        f'    %pip install -q "deeplab-course @ {url}"\n'
        "\n"
        "from deeplab_utils.colab import setup_notebook\n"
        "\n"
        "WORKDIR = setup_notebook()"
    )


def is_colab() -> bool:
    """True inside a Google Colab runtime."""
    return "google.colab" in sys.modules


def local_workdir(start: Path | None = None) -> Path:
    """The notebooks' working folder outside Colab: the repository root.

    That is the parent of the nearest ``notebooks/`` folder at or above ``start`` (default: the
    current folder), so ``notebooks/`` and ``notebooks/student/`` share one ``runs/``; ``start``
    itself when there is none.
    """
    here = Path.cwd() if start is None else Path(start)
    return next((p.parent for p in (here, *here.parents) if p.name == "notebooks"), here)


def setup_notebook(*, mount_drive: bool = False) -> Path:
    """Report the environment, check for a GPU on Colab, and return the working folder.

    The working folder holds ``data/`` and ``runs/``: the repository root locally (or the
    folder named by the environment variable ``DEEPLAB_WORKDIR``), and on Colab
    ``/content/deeplab-course``, or ``My Drive/deeplab-course`` when ``mount_drive`` is True (so
    checkpoints and datasets survive a disconnect).
    """
    from .runtime import environment_report

    print(environment_report())
    if not is_colab():
        if os.environ.get(WORKDIR_ENV):  # e.g. the tests' second, AVX2-only run of 07 and 08
            workdir = Path(os.environ[WORKDIR_ENV])
            workdir.mkdir(parents=True, exist_ok=True)
            return workdir
        return local_workdir()
    if not torch.cuda.is_available():
        print(
            "No GPU in this Colab runtime: Runtime > Change runtime type > T4 GPU, then run the "
            "notebook again. (Everything also runs on the CPU, with the short settings.)"
        )
    if mount_drive:
        from google.colab import drive  # type: ignore[import-not-found]

        drive.mount(str(COLAB_CONTENT / "drive"))
        workdir = COLAB_CONTENT / "drive" / "MyDrive" / DRIVE_FOLDER
    else:
        print("Tip: setup_notebook(mount_drive=True) keeps checkpoints and data on Google Drive.")
        workdir = COLAB_CONTENT / DRIVE_FOLDER
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir


def _notebook_path(path: Path, root: Path) -> str:
    return path.resolve().relative_to(root.resolve()).as_posix()


def render_notebook(notebook: dict[str, Any], path: str, *, repo: str = REPO) -> dict[str, Any]:
    """Put the badge for ``repo`` in the first cell and the setup cell for ``repo`` in place.

    The first markdown cell gets the badge on its first line (replacing an old one); the first
    code cell starting with ``# Setup:`` is replaced by :func:`setup_cell_source`.
    """
    cells = notebook["cells"]
    first = cells[0]
    text = "".join(first["source"])
    new_badge = badge(path, repo=repo)
    text = _BADGE_RE.sub(new_badge, text) if _BADGE_RE.search(text) else f"{new_badge}\n\n{text}"
    first["source"] = text.splitlines(keepends=True)
    for cell in cells:
        if cell["cell_type"] == "code" and "".join(cell["source"]).startswith(SETUP_MARKER):
            cell["source"] = setup_cell_source(repo=repo).splitlines(keepends=True)
            break
    return notebook


def set_repo(repo: str, root: Path) -> list[Path]:
    """Point the checkout at ``root`` to ``repo``: :data:`REPO`, notebooks, README.

    Returns:
        The files it changed.
    """
    _check_repo(repo)
    changed = []
    module = root / "deeplab_utils" / "colab.py"
    if not module.exists():
        raise ValueError(f"{root} is not the course's repository root (no {module})")
    text = module.read_text(encoding="utf-8")
    found = re.search(r'^REPO = "([^"]*)"', text, flags=re.MULTILINE)
    if found is None:
        raise ValueError(
            f'{module} has no line REPO = "OWNER/REPO" to rewrite; restore it (see git) '
            "and run set-repo again"
        )
    old_repo = found.group(1)
    new = re.sub(r'^REPO = "[^"]*"', f'REPO = "{repo}"', text, count=1, flags=re.MULTILINE)
    if new != text:
        module.write_text(new, encoding="utf-8")
        changed.append(module)
    for path in sorted((root / "notebooks").rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts:
            continue
        nb = json.loads(path.read_text(encoding="utf-8"))
        before = json.dumps(nb)
        render_notebook(nb, _notebook_path(path, root), repo=repo)
        if json.dumps(nb) != before:
            path.write_text(dumps(nb), encoding="utf-8")
            changed.append(path)
    readme = root / "README.md"
    if readme.exists() and old_repo != repo:
        text = readme.read_text(encoding="utf-8")
        if old_repo in text:
            readme.write_text(text.replace(old_repo, repo), encoding="utf-8")
            changed.append(readme)
    return changed


def main(argv: list[str] | None = None) -> int:
    """Command line: ``set-repo OWNER/REPO`` (rewrite) or ``show`` (print the current one)."""
    parser = argparse.ArgumentParser(prog="python -m deeplab_utils.colab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    setter = sub.add_parser("set-repo", help="point badges and setup cells at OWNER/REPO")
    setter.add_argument("repo", help="GitHub OWNER/REPO of your fork")
    setter.add_argument("--root", type=Path, default=Path("."), help="the repository's root")
    sub.add_parser("show", help="print the repository the notebooks install from")
    args = parser.parse_args(argv)
    if args.command == "show":
        print(REPO)
        return 0
    try:
        changed = set_repo(args.repo, args.root)
    except ValueError as exc:
        parser.error(str(exc))
    for path in changed:
        print(f"updated {path}")
    print(f"{len(changed)} files now point at {args.repo}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
