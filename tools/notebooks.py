"""The course maintainer's tool: nbgrader metadata, student notebooks, the repository they name.

Not part of the learners' package (``deeplab_utils``): run it from the repository's root::

    python tools/notebooks.py build               # nbgrader metadata, then notebooks/student/
    python tools/notebooks.py check               # exit 1 if either is out of date (a test runs it)
    python tools/notebooks.py count               # graded cells and points per notebook
    python tools/notebooks.py course DIR          # an nbgrader course folder made from notebooks/
    python tools/notebooks.py set-repo OWNER/REPO # point badges, setup cells and README at a fork
    python tools/notebooks.py show-repo           # the repository they point at now

**Exercises.** The solved notebooks in ``notebooks/`` mark the code a learner should write with
nbgrader's markers, and follow each exercise with its self-check, ``my_fn = check_my_fn(my_fn)``::

    def my_function(x):
        ### BEGIN SOLUTION
        return x + 1
        ### END SOLUTION

Written answers go between ``<!-- BEGIN SOLUTION -->`` and ``<!-- END SOLUTION -->`` in a
markdown cell of their own.

**nbgrader metadata** comes from those markers (:func:`stamp`): a code cell with a solution region
is an autograded answer; a check cell is the autograded test of its exercise (grade id: the
check's name without ``check_``, e.g. ``aspp_pooling``), read-only; a markdown answer is graded
by hand. Points are the instructor's: a new exercise gets 1, and ``build`` keeps whatever a test
cell has since been given.

**Student notebooks** are what ``nbgrader generate_assignment`` releases: ``build`` runs its
preprocessors under ``tools/nbgrader_config.py`` (the course folder's configuration), so every
solution region becomes ``# YOUR CODE HERE`` and a ``raise NotImplementedError(...)``, markdown
answers "*Your answer here.*", outputs are cleared; then the badge opens the student copy. While an
exercise is not written its check prints one line and hands back the package's version, so a
student notebook runs to the end with "Run all".

**The repository** is named once, by ``Repository`` under ``[project.urls]`` in
``pyproject.toml``; ``set-repo`` rewrites it there and in every notebook's badge and setup cell
(and the README), so a fork points at itself with one command.
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

ROOT = Path(__file__).resolve().parents[1]
NBGRADER_CONFIG = Path(__file__).with_name("nbgrader_config.py")
BRANCH = "main"

_REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
# The one line of pyproject.toml that names the repository.
_URL_LINE = re.compile(r'^Repository = "https://github\.com/([^"]*)"$', re.MULTILINE)
_BADGE_RE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")
SETUP_MARKER = "# Setup:"  # the first line of every notebook's setup cell


def _check_repo(repo: str) -> str:
    if not isinstance(repo, str) or not _REPO_RE.match(repo):
        raise ValueError(f"repo must look like 'OWNER/REPO' (a GitHub repository), got {repo!r}")
    return repo


def read_repo(root: Path = ROOT) -> str:
    """The GitHub ``OWNER/REPO`` that ``root/pyproject.toml`` names under ``[project.urls]``."""
    pyproject = root / "pyproject.toml"
    if not pyproject.exists():
        raise ValueError(f"{root} is not the course's repository root (no {pyproject})")
    found = _URL_LINE.search(pyproject.read_text(encoding="utf-8"))
    if found is None:
        raise ValueError(
            f'{pyproject} has no line Repository = "https://github.com/OWNER/REPO" under '
            "[project.urls]; restore it (see git) and run again"
        )
    return _check_repo(found.group(1))


REPO = read_repo()


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
# nbgrader takes any line containing these words for a marker (ClearSolutions).
_MARKER_WORDS = ("BEGIN SOLUTION", "END SOLUTION")
# A check cell: `my_fn = check_my_fn(my_fn)`, its result kept. A bare `check_x(x)` would throw
# it away, and the student copy would then run the unwritten exercise again in later cells.
CHECK_ASSIGN = re.compile(r"^\s*\w+\s*=\s*(check_\w+)\(", re.MULTILINE)
CHECK_CALL = re.compile(r"^\s*check_\w+\(", re.MULTILINE)
DEFAULT_POINTS = 1

Notebook = dict[str, Any]


def _source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _regions(source: str, begin: str, end: str) -> int:
    """How many ``begin``/``end`` regions ``source`` has, each marker alone on its line.

    Raises:
        ValueError: a line naming a marker among other text (nbgrader would take it for one),
            or a BEGIN without END (or the reverse), naming the line.
    """
    count, inside = 0, False
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        if stripped == begin:
            if inside:
                raise ValueError(f"line {number}: {begin!r} inside another solution region")
            inside, count = True, count + 1
        elif stripped == end:
            if not inside:
                raise ValueError(f"line {number}: {end!r} without a {begin!r} before it")
            inside = False
        elif any(word in line for word in _MARKER_WORDS):
            raise ValueError(
                f"line {number} names a solution marker among other text, which nbgrader "
                f"reads as a marker; write the marker alone on its line, or reword: {line!r}"
            )
    if inside:
        raise ValueError(f"a {begin!r} region is never closed with {end!r}")
    return count


def _meta(kind: str, grade_id: str, points: float | None = None) -> dict[str, Any]:
    """nbgrader's cell metadata (schema 3) for a cell of ``kind``."""
    grade, solution, locked = {
        "answer": (False, True, False),  # autograded answer: the learner's code
        "test": (True, False, True),  # autograder tests: the self-check
        "written": (True, True, False),  # manually graded answer
    }[kind]
    meta = {
        "grade": grade,
        "grade_id": grade_id,
        "locked": locked,
        "schema_version": 3,
        "solution": solution,
        "task": False,
    }
    if grade:
        meta["points"] = DEFAULT_POINTS if points is None else points
    return meta


def stamp(notebook: Notebook) -> Notebook:
    """Return ``notebook`` with the nbgrader metadata its markers and checks call for.

    Every solution cell belongs to the exercise whose check comes next; the check's test cell
    keeps the points (and a written answer its grade id) it already has. Nothing else changes.

    Raises:
        ValueError: naming the cell, for an unbalanced or inline marker, a check whose result is
            thrown away, a cell with two checks or with a solution and a check, a solution with
            no check after it, or one exercise checked twice.
    """
    stamped = copy.deepcopy(notebook)
    cells = stamped["cells"]
    kinds: list[tuple[str, str] | None] = []  # per cell: (kind, grade id) or None
    written = 0
    for index, cell in enumerate(cells):
        source = _source(cell)
        try:
            if cell["cell_type"] == "code":
                if CHECK_CALL.search(source):
                    raise ValueError(
                        "it calls a check without keeping what it returns; write "
                        "`my_fn = check_my_fn(my_fn)`, so the student copy goes on with a "
                        "working version while the exercise is not written"
                    )
                checks = CHECK_ASSIGN.findall(source)
                if len(checks) > 1:
                    raise ValueError(f"it runs {len(checks)} checks; give each its own cell")
                if _regions(source, BEGIN, END):
                    if checks:
                        raise ValueError(
                            "it holds a solution and a check; give the check a cell of its own "
                            "(nbgrader grades that cell by its errors)"
                        )
                    kinds.append(("answer", ""))
                elif checks:
                    kinds.append(("test", checks[0].removeprefix("check_")))
                else:
                    kinds.append(None)
            elif cell["cell_type"] == "markdown" and _regions(source, MD_BEGIN, MD_END):
                written += 1
                kinds.append(("written", f"answer_{written}"))
            else:
                _regions(source, MD_BEGIN, MD_END)
                kinds.append(None)
        except ValueError as exc:
            raise ValueError(f"cell {index}: {exc}") from None
    grade_ids: dict[int, str] = {}
    pending: list[int] = []  # solution cells waiting for their exercise's check
    for index, kind in enumerate(kinds):
        if kind is None:
            continue
        name, grade_id = kind
        if name == "answer":
            pending.append(index)
            continue
        if name == "test":
            if grade_id in grade_ids.values():
                raise ValueError(f"cell {index}: exercise {grade_id!r} is checked twice")
            for number, answer in enumerate(pending, start=1):
                suffix = f"_{number}" if len(pending) > 1 else ""
                grade_ids[answer] = f"{grade_id}_solution{suffix}"
            pending = []
        grade_ids[index] = grade_id
    if pending:
        raise ValueError(
            f"cell {pending[0]}: a solution with no self-check after it; add its check cell, "
            "`my_fn = check_my_fn(my_fn)`"
        )
    for index, (cell, kind) in enumerate(zip(cells, kinds, strict=True)):
        metadata = cell.setdefault("metadata", {})
        old = metadata.pop("nbgrader", {})
        if kind is None:
            continue
        grade_id = grade_ids[index]
        if kind[0] == "written" and old.get("grade") and old.get("solution"):
            grade_id = old.get("grade_id", grade_id)  # the author's name for it
        metadata["nbgrader"] = _meta(kind[0], grade_id, old.get("points"))
    return stamped


def _nbgrader_config() -> Any:
    """The traitlets configuration of ``tools/nbgrader_config.py``."""
    from traitlets.config.loader import PyFileConfigLoader

    return PyFileConfigLoader(NBGRADER_CONFIG.name, path=str(NBGRADER_CONFIG.parent)).load_config()


def _release_preprocessors() -> list[Any]:
    """``nbgrader generate_assignment``'s own preprocessors, in its order, under the course's
    configuration; all but SaveCells, which records the cells in the gradebook."""
    from nbgrader.converters import GenerateAssignment
    from nbgrader.preprocessors import SaveCells

    config = _nbgrader_config()
    classes = GenerateAssignment.class_traits()["preprocessors"].default()
    return [cls(config=config) for cls in classes if cls is not SaveCells]


def stub_code() -> str:
    """What a solution region becomes in the student notebooks (from the nbgrader config)."""
    return _nbgrader_config().ClearSolutions.code_stub["python"]


def make_student(notebook: Notebook) -> Notebook:
    """The student version of a solved notebook: what nbgrader releases (badge unchanged).

    The notebook is stamped first (:func:`stamp`), as ``build`` leaves the solved notebooks.
    """
    import nbformat

    nb = nbformat.reads(json.dumps(stamp(notebook)), as_version=4)
    resources: dict[str, Any] = {}
    for preprocessor in _release_preprocessors():
        nb, resources = preprocessor.preprocess(nb, resources)
    return json.loads(nbformat.writes(nb))


def graded_cells(notebook: Notebook) -> list[tuple[str, float, bool]]:
    """``(grade id, points, autograded)`` of a stamped notebook's graded cells, in order."""
    graded = []
    for cell in notebook["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade"):
            graded.append((meta["grade_id"], meta["points"], not meta["solution"]))
    return graded


def count_exercises(notebook: Notebook) -> int:
    """How many self-checked exercises a solved notebook has."""
    return sum(1 for cell in stamp(notebook)["cells"] if CHECK_ASSIGN.search(_source(cell)))


def dumps(notebook: Notebook) -> str:
    """Serialise like nbformat does (indent 1, sorted keys), so files diff cleanly."""
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def solved_notebooks(notebooks_dir: Path) -> list[Path]:
    """The solved notebooks: ``NN_*.ipynb`` directly under ``notebooks_dir``."""
    return sorted(p for p in notebooks_dir.glob("[0-9][0-9]_*.ipynb"))


def _load(path: Path) -> Notebook:
    return json.loads(path.read_text(encoding="utf-8"))


def build(notebooks_dir: Path, out_dir: Path | None = None, *, repo: str = REPO) -> dict[Path, str]:
    """Return ``{path: its text}`` for every solved notebook, stamped, and its student copy.

    Writes nothing. The student copies go to ``out_dir`` (default ``notebooks_dir/student``),
    inside the repository (``notebooks_dir``'s parent), whose badges open them.
    """
    out_dir = notebooks_dir / "student" if out_dir is None else out_dir
    root = notebooks_dir.resolve().parent
    try:
        out_in_repo = out_dir.resolve().relative_to(root).as_posix()
    except ValueError:
        raise ValueError(
            f"the student notebooks' folder {out_dir} is outside the repository {root}, so "
            "their badges could not open them; choose a folder inside it"
        ) from None
    result = {}
    for path in solved_notebooks(notebooks_dir):
        try:
            solved = stamp(_load(path))
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        result[path] = dumps(solved)
        student = make_student(solved)
        render_notebook(student, f"{out_in_repo}/{path.name}", repo=repo)
        result[out_dir / path.name] = dumps(student)
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


def _write_changed(texts: dict[Path, str]) -> list[Path]:
    changed = []
    for path, text in texts.items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            _write(path, text)
            changed.append(path)
    return changed


def set_repo(repo: str, root: Path) -> list[Path]:
    """Point the checkout at ``root`` to ``repo``: pyproject.toml, notebooks, README.

    The solved notebooks get the new badge and setup cell, and the student notebooks are built
    again from them. Returns the files it changed.
    """
    _check_repo(repo)
    old_repo = read_repo(root)
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    changed = _write_changed(
        {pyproject: _URL_LINE.sub(f'Repository = "https://github.com/{repo}"', text, count=1)}
    )
    notebooks_dir = root / "notebooks"
    rendered = {}
    for path in solved_notebooks(notebooks_dir):
        rendered[path] = dumps(render_notebook(_load(path), _notebook_path(path, root), repo=repo))
    changed += _write_changed(rendered)
    changed += [p for p in _write_changed(build(notebooks_dir, repo=repo)) if p not in changed]
    readme = root / "README.md"
    if readme.exists() and old_repo != repo:
        text = readme.read_text(encoding="utf-8")
        changed += _write_changed({readme: text.replace(old_repo, repo)})
    return changed


def make_course(course_dir: Path, notebooks_dir: Path) -> list[Path]:
    """Write an nbgrader course folder: ``nbgrader_config.py`` and one assignment per notebook
    with exercises, ``source/NN_name/NN_name.ipynb`` (the solved notebook, its badge opening
    the student copy, as the released notebook's should).

    Raises:
        ValueError: if any of those files exists already (nothing is overwritten).
    """
    targets = {course_dir / "nbgrader_config.py": NBGRADER_CONFIG.read_text(encoding="utf-8")}
    for path in solved_notebooks(notebooks_dir):
        nb = stamp(_load(path))
        if not graded_cells(nb):
            continue  # 00 welcomes; it has nothing to grade
        render_notebook(nb, f"notebooks/student/{path.name}")
        targets[course_dir / "source" / path.stem / path.name] = dumps(nb)
    existing = [str(p) for p in targets if p.exists()]
    if existing:
        raise ValueError(f"{', '.join(existing)} exists already; choose a new folder")
    return _write_changed(targets)


def _stale(texts: dict[Path, str]) -> list[Path]:
    return [p for p, t in texts.items() if not p.exists() or p.read_text(encoding="utf-8") != t]


def _notebook_commands(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if not args.notebooks.is_dir():
        parser.error(f"--notebooks {args.notebooks} is not a folder")
    try:
        if args.command == "count":
            for path in solved_notebooks(args.notebooks):
                graded = graded_cells(stamp(_load(path)))
                cells = ", ".join(
                    f"{g} {p:g}{'' if auto else ' (by hand)'}" for g, p, auto in graded
                )
                print(f"{path.name}: {sum(p for _, p, _ in graded):g} points: {cells or '-'}")
            return 0
        if args.command == "course":
            written = make_course(args.dir, args.notebooks)
            print(f"wrote {len(written)} files to {args.dir}")
            return 0
        out_dir = args.out or args.notebooks / "student"
        texts = build(args.notebooks, out_dir)
    except ValueError as exc:
        parser.error(str(exc))
    if args.command == "check":
        stale = _stale(texts)
        extra = sorted({p.name for p in out_dir.glob("*.ipynb")} - {p.name for p in texts})
        for path in stale:
            what = "nbgrader metadata" if path.parent == args.notebooks else "student copy"
            print(f"out of date ({what}): {path}", file=sys.stderr)
        for name in extra:
            print(f"no solved notebook for: {out_dir / name}", file=sys.stderr)
        if stale or extra:
            print("run: python tools/notebooks.py build", file=sys.stderr)
            return 1
        print(f"{len(texts) // 2} notebooks and their student copies are up to date")
        return 0
    changed = _write_changed(texts)
    print(f"{len(changed)} files changed; student notebooks are in {out_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python tools/notebooks.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    helps = {
        "build": "stamp nbgrader metadata in the solved notebooks and write their student copies",
        "check": "exit 1 if the metadata or the student copies are out of date",
        "count": "graded cells and points per notebook",
        "course": "write an nbgrader course folder made from the solved notebooks",
    }
    for command, text in helps.items():
        students = sub.add_parser(command, help=text)
        if command == "course":
            students.add_argument("dir", type=Path, help="the course folder to create")
        students.add_argument("--notebooks", type=Path, default=Path("notebooks"))
        if command in ("build", "check"):
            students.add_argument(
                "--out", type=Path, default=None, help="default: <notebooks>/student"
            )
    setter = sub.add_parser("set-repo", help="point badges and setup cells at OWNER/REPO")
    setter.add_argument("repo", help="GitHub OWNER/REPO of your fork")
    setter.add_argument("--root", type=Path, default=Path("."), help="the repository's root")
    sub.add_parser("show-repo", help="print the repository the notebooks install from")
    args = parser.parse_args(argv)
    if args.command == "show-repo":
        print(REPO)
        return 0
    if args.command != "set-repo":
        return _notebook_commands(args, parser)
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
