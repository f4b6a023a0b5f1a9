"""The student notebooks: generated from the solved ones, free of solutions, and they run to the
end with no exercise done (every check keeps what it returns and says "not implemented yet")."""

import json
import re
from pathlib import Path

import pytest

from deeplab_utils.checks import FALLBACK, NOT_IMPLEMENTED
from tools.notebooks import (
    BEGIN,
    END,
    count_exercises,
    main,
    solved_notebooks,
)

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SOLVED = solved_notebooks(NOTEBOOKS)
STUDENT = NOTEBOOKS / "student"
CHECK_ASSIGN = re.compile(r"^\s*\w+\s*=\s*check_\w+\(", re.MULTILINE)  # keeps what it returns


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _solution_lines(source: str) -> list[str]:
    """The telling lines inside the solution regions of one cell."""
    lines, inside = [], False
    for line in source.splitlines():
        if line.strip() == BEGIN:
            inside = True
        elif line.strip() == END:
            inside = False
        elif inside and len(line.strip()) >= 12 and not line.strip().startswith("#"):
            lines.append(line.strip())  # short lines (")", "return x") are not telling
    return lines


def test_student_notebooks_are_up_to_date():
    """notebooks/student/ is exactly what `python tools/notebooks.py build` writes."""
    assert main(["check", "--notebooks", str(NOTEBOOKS)]) == 0


def test_every_lesson_has_exercises():
    """Notebooks 01-08 each have at least one solution region (00 is the welcome)."""
    counts = {p.name[:2]: count_exercises(_load(p)) for p in SOLVED}
    assert set(counts) >= {f"{i:02d}" for i in range(9)}
    assert all(n >= 1 for number, n in counts.items() if number != "00"), counts


@pytest.mark.parametrize("path", SOLVED, ids=lambda p: p.stem)
def test_no_solution_text_leaks(path):
    """No line of a solution region appears in the matching cell of the student notebook."""
    student = _load(STUDENT / path.name)
    for i, (solved, stub) in enumerate(zip(_load(path)["cells"], student["cells"], strict=True)):
        stub_text = "".join(stub["source"])
        if stub["cell_type"] == "code":
            assert BEGIN not in stub_text and END not in stub_text
        for line in _solution_lines("".join(solved["source"])):
            assert not re.search(rf"^\s*{re.escape(line)}\s*$", stub_text, re.MULTILINE), (
                f"cell {i} of {path.name}: solution line {line!r} is in the student copy"
            )
        assert not stub.get("outputs"), f"cell {i} of {path.name} keeps its outputs"


@pytest.mark.parametrize("path", SOLVED, ids=lambda p: p.stem)
def test_student_notebook_runs_to_the_end(path):
    """Run the student copy as "Run all" would, with no exercise written: no cell fails, and
    each self-check prints the one "not implemented yet" line naming the package's version
    that the rest of the notebook uses."""
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(STUDENT / path.name, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=900,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(STUDENT)}},
    )
    client.execute()
    checks = 0
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        errors = [o for o in cell["outputs"] if o["output_type"] == "error"]
        where = f"{path.name}, cell {i}:\n{source}\n"
        assert not errors, f"{where}raised {errors[0]['ename']}: {errors[0]['evalue']}"
        assert "raises-exception" not in cell.get("metadata", {}).get("tags", []), where
        if CHECK_ASSIGN.search(source):
            checks += 1
            text = "".join(
                o.get("text", "") for o in cell["outputs"] if o["output_type"] == "stream"
            )
            lines = [line for line in text.splitlines() if NOT_IMPLEMENTED in line]
            assert len(lines) == 1 and f"{NOT_IMPLEMENTED} — {FALLBACK}" in lines[0], where + text
    assert checks >= (0 if path.name.startswith("00") else 1)
