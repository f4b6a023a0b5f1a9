"""The student notebooks: generated from the solved ones, free of solutions; the converted ones
(every check keeps what it returns) run to the end with no exercise done, the others fail only
in their tagged cells, each self-check with the friendly "not implemented yet" message."""

import json
import re
from pathlib import Path

import pytest

from deeplab_utils.checks import FALLBACK, NOT_IMPLEMENTED
from deeplab_utils.exercises import (
    BEGIN,
    CHECK_ASSIGN,
    CHECK_CALL,
    END,
    count_exercises,
    main,
    solved_notebooks,
)

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SOLVED = solved_notebooks(NOTEBOOKS)
STUDENT = NOTEBOOKS / "student"
# Notebooks whose checks return the implementation to use: "Run all" goes to the end.
CONVERTED = {"00", "01", "02", "03", "04", "05", "06"}


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


def _tagged(cell: dict) -> bool:
    return "raises-exception" in cell.get("metadata", {}).get("tags", [])


@pytest.mark.parametrize("path", SOLVED, ids=lambda p: p.stem)
def test_converted_notebooks_have_no_cell_expected_to_fail(path):
    """A converted notebook's student copy tags no cell raises-exception and has no bare
    check call: nothing in it is allowed to fail."""
    if path.name[:2] not in CONVERTED:
        pytest.skip("not converted yet: its checks still raise")
    for i, cell in enumerate(_load(STUDENT / path.name)["cells"]):
        source = "".join(cell["source"])
        assert not _tagged(cell), f"cell {i} of {path.name} is tagged raises-exception"
        assert not CHECK_CALL.search(source), f"cell {i} of {path.name} calls a check bare"


@pytest.mark.parametrize("path", SOLVED, ids=lambda p: p.stem)
def test_student_notebook_runs_and_checks_say_not_implemented(path):
    """Run the student copy. A converted notebook runs to the end with no error, and each
    self-check prints the one "not implemented yet" line; in the others only cells tagged
    raises-exception raise, each does, and every self-check raises CheckFailed saying "not
    implemented yet"."""
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
        tagged = _tagged(cell)
        where = f"{path.name}, cell {i}:\n{source}\n"
        if errors:
            assert tagged, f"{where}raised {errors[0]['ename']}: {errors[0]['evalue']}"
        else:
            assert not tagged, f"{where}is tagged raises-exception but ran without error"
        if CHECK_CALL.search(source):
            checks += 1
            assert errors[0]["ename"] == "CheckFailed", where
            assert "not implemented yet" in errors[0]["evalue"], where
        if CHECK_ASSIGN.search(source):
            checks += 1
            text = "".join(
                o.get("text", "") for o in cell["outputs"] if o["output_type"] == "stream"
            )
            lines = [line for line in text.splitlines() if NOT_IMPLEMENTED in line]
            assert len(lines) == 1 and f"{NOT_IMPLEMENTED} — {FALLBACK}" in lines[0], where + text
    assert checks >= (0 if path.name.startswith("00") else 1)
