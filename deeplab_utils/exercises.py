"""Generate the student notebooks from the solved ones.

Teaching-aid layer. The solved notebooks in ``notebooks/`` mark the code a learner should write
with nbgrader's convention::

    def my_function(x):
        ### BEGIN SOLUTION
        return x + 1
        ### END SOLUTION

``python -m deeplab_utils.exercises build`` writes ``notebooks/student/NN_*.ipynb`` where every
such region becomes ``# YOUR CODE HERE`` and ``raise NotImplementedError(...)`` (indented like
the marker) and outputs are cleared. Markdown answers between ``<!-- BEGIN SOLUTION -->`` and
``<!-- END SOLUTION -->`` become "*Your answer here.*".

Two forms of self-check cell, told apart by their source:

- ``my_fn = check_my_fn(my_fn)`` (the form of notebooks 00-06): the check hands back the
  package's version when the exercise is not written, so the student notebook runs to the end
  with "Run all"; such cells, and the cells after them that use ``my_fn``, are left untagged.
- a bare ``check_my_fn(my_fn)`` (the older form, notebooks 07-08 until they are converted): the
  check raises "not implemented yet", so the cell is tagged ``raises-exception``, and so is every
  cell tagged ``uses-solution`` (it runs the learner's unwritten code), for nbval and the tests.

``python -m deeplab_utils.exercises check`` exits with status 1 when the committed student
notebooks differ from what ``build`` would write (the test suite runs it).
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path
from typing import Any

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
MD_BEGIN, MD_END = "<!-- BEGIN SOLUTION -->", "<!-- END SOLUTION -->"
STUB = 'raise NotImplementedError("Exercise: write this part, then run the check below.")'
USES_SOLUTION = "uses-solution"  # tag: the cell runs learner code, so it fails in the student copy
CHECK_CALL = re.compile(r"^\s*check_\w+\(", re.MULTILINE)  # a bare call: the older form
CHECK_ASSIGN = re.compile(r"^\s*\w+\s*=\s*check_\w+\(", re.MULTILINE)  # keeps what it returns

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
    """Return the student version of a solved notebook and its number of exercises."""
    student = copy.deepcopy(notebook)
    exercises = 0
    for cell in student["cells"]:
        source = _source(cell)
        if cell["cell_type"] == "code":
            source, n = strip_code_solutions(source)
            exercises += n
            tags = [t for t in cell.get("metadata", {}).get("tags", []) if t != USES_SOLUTION]
            if CHECK_CALL.search(source) or USES_SOLUTION in cell.get("metadata", {}).get(
                "tags", []
            ):
                tags.append("raises-exception")
            if tags:
                cell.setdefault("metadata", {})["tags"] = tags
            else:
                cell.get("metadata", {}).pop("tags", None)
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
    from .colab import render_notebook  # colab imports this module: import here, not at the top

    result = {}
    for path in solved_notebooks(notebooks_dir):
        student, _ = make_student(json.loads(path.read_text(encoding="utf-8")))
        # The badge must open the student copy, not the solved notebook.
        render_notebook(student, f"notebooks/student/{path.name}")
        result[path.name] = dumps(student)
    return result


def main(argv: list[str] | None = None) -> int:
    """Command line: ``build`` writes the student notebooks, ``check`` compares them."""
    parser = argparse.ArgumentParser(prog="python -m deeplab_utils.exercises", description=__doc__)
    parser.add_argument("command", choices=["build", "check", "count"])
    parser.add_argument("--notebooks", type=Path, default=Path("notebooks"), help="solved ones")
    parser.add_argument("--out", type=Path, default=None, help="default: <notebooks>/student")
    args = parser.parse_args(argv)
    if not args.notebooks.is_dir():
        parser.error(f"--notebooks {args.notebooks} is not a folder")
    out_dir = args.out or args.notebooks / "student"
    texts = build(args.notebooks)
    if args.command == "count":
        for path in solved_notebooks(args.notebooks):
            print(f"{path.name}: {count_exercises(json.loads(path.read_text(encoding='utf-8')))}")
        return 0
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
            print("run: python -m deeplab_utils.exercises build", file=sys.stderr)
            return 1
        print(f"{len(texts)} student notebooks are up to date")
        return 0
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        (out_dir / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(texts)} student notebooks to {out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
