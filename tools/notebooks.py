"""The course maintainer's tool: student notebooks, and the repository the notebooks point at.

Not part of the learners' package (``deeplab_utils``): run it from the repository's root::

    python tools/notebooks.py build               # rewrite notebooks/student/ from the solved ones
    python tools/notebooks.py check               # exit 1 if notebooks/student/ is out of date
    python tools/notebooks.py count               # exercises per notebook
    python tools/notebooks.py set-repo OWNER/REPO # point badges, setup cells and README at a fork
    python tools/notebooks.py show-repo           # the repository they point at now

**Student notebooks.** The solved notebooks in ``notebooks/`` mark the code a learner should write
with nbgrader's convention::

    def my_function(x):
        ### BEGIN SOLUTION
        return x + 1
        ### END SOLUTION

``build`` writes ``notebooks/student/NN_*.ipynb`` where every such region becomes
``# YOUR CODE HERE`` and ``raise NotImplementedError(...)`` (indented like the marker), outputs are
cleared and the badge opens the student copy. Markdown answers between
``<!-- BEGIN SOLUTION -->`` and ``<!-- END SOLUTION -->`` become "*Your answer here.*". Every
self-check cell has the form ``my_fn = check_my_fn(my_fn)``: while the exercise is not written the
check prints one line and hands back the package's version, so a student notebook runs to the end
with "Run all".

**The repository.** It is named once, in :data:`REPO`; ``set-repo`` rewrites it here and in every
notebook's badge and setup cell (and the README), so a fork points at itself with one command.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path
from typing import Any

from deeplab_utils.files import atomic_write

REPO = "deeplab-course/deeplabv3plus-from-scratch"  # GitHub OWNER/REPO; change it with set-repo
BRANCH = "main"

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


BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
MD_BEGIN, MD_END = "<!-- BEGIN SOLUTION -->", "<!-- END SOLUTION -->"
STUB = 'raise NotImplementedError("Exercise: write this part, then run the check below.")'
# A bare ``check_x(x)`` throws away what the check hands back: the student copy would then run
# the unwritten exercise again in later cells. Every check cell keeps it: ``x = check_x(x)``.
CHECK_CALL = re.compile(r"^\s*check_\w+\(", re.MULTILINE)

Notebook = dict[str, Any]


def _source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _split_lines(text: str) -> list[str]:
    """Notebook JSON stores source as lines that keep their newline, all but the last."""
    return text.splitlines(keepends=True)


def strip_code_solutions(source: str) -> tuple[str, int]:
    """Replace every BEGIN/END SOLUTION region of a code cell by a stub.

    Returns:
        The new source and how many regions were replaced.

    Raises:
        ValueError: for a BEGIN without END (or the reverse), naming the line.
    """
    out: list[str] = []
    count, inside, indent = 0, False, ""
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"line {number}: {BEGIN!r} inside another solution region")
            inside, indent = True, line[: len(line) - len(line.lstrip())]
            out += [f"{indent}# YOUR CODE HERE", f"{indent}{STUB}"]
            count += 1
        elif stripped == END:
            if not inside:
                raise ValueError(f"line {number}: {END!r} without a {BEGIN!r} before it")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"a {BEGIN!r} region is never closed with {END!r}")
    return "\n".join(out), count


def strip_markdown_solutions(source: str) -> tuple[str, int]:
    """Replace every ``<!-- BEGIN SOLUTION -->`` ... ``<!-- END SOLUTION -->`` answer."""
    pattern = re.compile(re.escape(MD_BEGIN) + r".*?" + re.escape(MD_END), re.DOTALL)
    return pattern.subn("*Your answer here.*", source)


def make_student(notebook: Notebook) -> tuple[Notebook, int]:
    """Return the student version of a solved notebook and its number of exercises.

    Raises:
        ValueError: a check whose result is thrown away (``check_x(x)`` on a line of its own).
    """
    student = copy.deepcopy(notebook)
    exercises = 0
    for index, cell in enumerate(student["cells"]):
        source = _source(cell)
        if cell["cell_type"] == "code":
            if CHECK_CALL.search(source):
                raise ValueError(
                    f"cell {index} calls a check without keeping what it returns; write "
                    "`my_fn = check_my_fn(my_fn)`, so the student copy goes on with a working "
                    "version while the exercise is not written"
                )
            source, n = strip_code_solutions(source)
            exercises += n
            cell["outputs"], cell["execution_count"] = [], None
        elif cell["cell_type"] == "markdown":
            source, _ = strip_markdown_solutions(source)
        cell["source"] = _split_lines(source)
    return student, exercises


def count_exercises(notebook: Notebook) -> int:
    """How many solution regions a solved notebook has."""
    return make_student(notebook)[1]


def dumps(notebook: Notebook) -> str:
    """Serialise like nbformat does (indent 1, sorted keys), so files diff cleanly."""
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def solved_notebooks(notebooks_dir: Path) -> list[Path]:
    """The solved notebooks: ``NN_*.ipynb`` directly under ``notebooks_dir``."""
    return sorted(p for p in notebooks_dir.glob("[0-9][0-9]_*.ipynb"))


def build(notebooks_dir: Path) -> dict[str, str]:
    """Return ``{student file name: its text}`` for every solved notebook (writes nothing)."""
    result = {}
    for path in solved_notebooks(notebooks_dir):
        student, _ = make_student(json.loads(path.read_text(encoding="utf-8")))
        # The badge must open the student copy, not the solved notebook.
        render_notebook(student, f"notebooks/student/{path.name}")
        result[path.name] = dumps(student)
    return result


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


def _write(path: Path, text: str) -> None:
    """Replace ``path``'s text atomically: an interrupted run never leaves half a notebook."""
    with atomic_write(path, "w", encoding="utf-8") as file:
        file.write(text)


def set_repo(repo: str, root: Path) -> list[Path]:
    """Point the checkout at ``root`` to ``repo``: :data:`REPO`, notebooks, README.

    Returns:
        The files it changed.
    """
    _check_repo(repo)
    changed = []
    module = root / "tools" / "notebooks.py"
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
        _write(module, new)
        changed.append(module)
    for path in sorted((root / "notebooks").rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts:
            continue
        nb = json.loads(path.read_text(encoding="utf-8"))
        before = json.dumps(nb)
        render_notebook(nb, _notebook_path(path, root), repo=repo)
        if json.dumps(nb) != before:
            _write(path, dumps(nb))
            changed.append(path)
    readme = root / "README.md"
    if readme.exists() and old_repo != repo:
        text = readme.read_text(encoding="utf-8")
        if old_repo in text:
            _write(readme, text.replace(old_repo, repo))
            changed.append(readme)
    return changed


def _write_students(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if not args.notebooks.is_dir():
        parser.error(f"--notebooks {args.notebooks} is not a folder")
    out_dir = args.out or args.notebooks / "student"
    if args.command == "count":
        for path in solved_notebooks(args.notebooks):
            print(f"{path.name}: {count_exercises(json.loads(path.read_text(encoding='utf-8')))}")
        return 0
    texts = build(args.notebooks)
    if args.command == "check":
        stale = [
            name
            for name, text in texts.items()
            if not (out_dir / name).exists() or (out_dir / name).read_text(encoding="utf-8") != text
        ]
        extra = sorted({p.name for p in out_dir.glob("*.ipynb")} - set(texts))
        for name in stale:
            print(f"out of date: {out_dir / name}", file=sys.stderr)
        for name in extra:
            print(f"no solved notebook for: {out_dir / name}", file=sys.stderr)
        if stale or extra:
            print("run: python tools/notebooks.py build", file=sys.stderr)
            return 1
        print(f"{len(texts)} student notebooks are up to date")
        return 0
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        _write(out_dir / name, text)
    print(f"wrote {len(texts)} student notebooks to {out_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python tools/notebooks.py", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for command in ("build", "check", "count"):
        students = sub.add_parser(command, help=f"{command} the student notebooks")
        students.add_argument("--notebooks", type=Path, default=Path("notebooks"))
        students.add_argument("--out", type=Path, default=None, help="default: <notebooks>/student")
    setter = sub.add_parser("set-repo", help="point badges and setup cells at OWNER/REPO")
    setter.add_argument("repo", help="GitHub OWNER/REPO of your fork")
    setter.add_argument("--root", type=Path, default=Path("."), help="the repository's root")
    sub.add_parser("show-repo", help="print the repository the notebooks install from")
    args = parser.parse_args(argv)
    if args.command == "show-repo":
        print(REPO)
        return 0
    if args.command != "set-repo":
        return _write_students(args, parser)
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
