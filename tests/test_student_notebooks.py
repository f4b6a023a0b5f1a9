"""The student notebooks: generated from the solved ones, free of solutions, and every
self-check in them fails with the friendly "not implemented yet" message."""

import json
import re
from pathlib import Path

import pytest

from deeplab_utils.exercises import (
    BEGIN,
    CHECK_CALL,
    END,
    count_exercises,
    main,
    solved_notebooks,
)

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SOLVED = solved_notebooks(NOTEBOOKS)
STUDENT = NOTEBOOKS / "student"


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
    """notebooks/student/ is exactly what `python -m deeplab_utils.exercises build` writes."""
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
def test_student_notebook_runs_and_checks_say_not_implemented(path):
    """Run the student copy: only cells tagged raises-exception raise, each does, and every
    self-check raises CheckFailed saying "not implemented yet"."""
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
        tagged = "raises-exception" in cell.get("metadata", {}).get("tags", [])
        where = f"{path.name}, cell {i}:\n{source}\n"
        if errors:
            assert tagged, f"{where}raised {errors[0]['ename']}: {errors[0]['evalue']}"
        else:
            assert not tagged, f"{where}is tagged raises-exception but ran without error"
        if CHECK_CALL.search(source):
            checks += 1
            assert errors[0]["ename"] == "CheckFailed", where
            assert "not implemented yet" in errors[0]["evalue"], where
    assert checks >= (0 if path.name.startswith("00") else 1)
