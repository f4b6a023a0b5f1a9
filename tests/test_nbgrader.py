"""The classroom round trip: an nbgrader course made from the solved notebooks, run with
nbgrader's own commands, as the README's "For instructors" shows.

Every notebook is released and compared with notebooks/student/; three are graded, 01, 02 and
05, so the test stays at a few minutes: 01 has the written answer (graded by hand), 02 an
exercise built on another (MyASPP on MyASPPPooling), the case a wrong answer must not spread
through, and 05 the most exercises (4). Notebooks 03, 04 and 06 take the same path; 07 and 08
train for minutes (their checks are the same kind, and README gives their time limit).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.notebooks import BEGIN, END, main, solved_notebooks

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
GRADED = ["01_atrous_convolution", "02_aspp", "05_losses_and_metrics"]
WRITTEN = {"01_atrous_convolution": "recurrence"}  # graded by hand
# A known wrong answer in 02: BN switched to eval mode for a batch of one, and never back.
STICKY_EVAL = """\
        size = x.shape[-2:]
        pool, conv, bn, relu = self
        if self.training and x.shape[0] == 1:
            bn.eval()
        y = relu(bn(conv(pool(x))))
        return F.interpolate(y, size=size, mode="bilinear", align_corners=False)"""
STICKY_CASE = "train mode, batch 1, 13x9"  # the case of check_aspp_pooling it fails
# An instructor's hidden test, added to 01's receptive_fields check cell in the course's source.
HIDDEN = """
### BEGIN HIDDEN TESTS
assert my_receptive_fields([(3, 2, 1), (3, 1, 2)]) == [3, 11]
print("hidden test passed")
### END HIDDEN TESTS"""


@pytest.fixture(scope="module", autouse=True)
def _environment_on_path():
    """nbgrader's gradebook runs the `alembic` command: this environment's, as once activated."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        yield


def _nbgrader(course: Path, *args: str) -> None:
    """Run `nbgrader ARGS` in the course folder, as an instructor would (no grading variable or
    course working folder inherited from the test run: each submission works in its own)."""
    ignored = ("NBGRADER_EXECUTION", "DEEPLAB_WORKDIR")
    env = {k: v for k, v in os.environ.items() if k not in ignored}
    result = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=course,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"nbgrader {' '.join(args)}:\n{result.stderr[-3000:]}"


def _submit(course: Path, student: str, assignment: str, notebook: dict) -> None:
    folder = course / "submitted" / student / assignment
    folder.mkdir(parents=True)
    (folder / f"{assignment}.ipynb").write_text(json.dumps(notebook), encoding="utf-8")


def _cell(notebook: dict, grade_id: str) -> dict:
    """The cell of ``notebook`` with that nbgrader grade id."""
    cells = [
        c
        for c in notebook["cells"]
        if c["metadata"].get("nbgrader", {}).get("grade_id") == grade_id
    ]
    assert len(cells) == 1, f"no cell {grade_id!r}"
    return cells[0]


def _with_sticky_eval(solved: dict) -> dict:
    """The solved notebook 02 with MyASPPPooling's forward replaced by the sticky eval."""
    cell = _cell(solved, "aspp_pooling_solution")
    head, rest = "".join(cell["source"]).split(BEGIN + "\n")
    _, tail = rest.split(END)
    cell["source"] = f"{head}{BEGIN}\n{STICKY_EVAL}\n        {END}{tail}"
    return solved


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A course folder, every assignment released, three submissions graded with feedback:
    "solved" (the solved notebooks), "blank" (the released ones, unchanged) and "wrong" (02 with
    one wrong answer)."""
    course = tmp_path_factory.mktemp("course")
    assert main(["course", str(course), "--notebooks", str(NOTEBOOKS)]) == 0
    source_01 = course / "source" / GRADED[0] / f"{GRADED[0]}.ipynb"
    nb = json.loads(source_01.read_text())
    cell = _cell(nb, "receptive_fields")
    cell["source"] = "".join(cell["source"]) + HIDDEN
    source_01.write_text(json.dumps(nb))
    _nbgrader(course, "generate_assignment", "*")
    for assignment in GRADED:
        solved = json.loads((course / "source" / assignment / f"{assignment}.ipynb").read_text())
        released = json.loads((course / "release" / assignment / f"{assignment}.ipynb").read_text())
        _submit(course, "solved", assignment, solved)
        _submit(course, "blank", assignment, released)
        if assignment == "02_aspp":
            _submit(course, "wrong", assignment, _with_sticky_eval(solved))
    for assignment in GRADED:
        _nbgrader(course, "autograde", assignment)
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:  # formgrader's part
        for assignment, grade_id in WRITTEN.items():
            grade = gradebook.find_grade(grade_id, assignment, assignment, "solved")
            grade.manual_score = grade.max_score
        gradebook.db.commit()
    for assignment in GRADED:
        _nbgrader(course, "generate_feedback", assignment)
    _nbgrader(course, "export", "--to", str(course / "grades.csv"))
    return course


def _grades(course: Path, assignment: str, student: str) -> dict[str, tuple]:
    """{grade id: (score, max score, needs manual grading)} of one submission."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        notebook = gradebook.find_submission_notebook(assignment, assignment, student)
        return {g.name: (g.score, g.max_score, g.needs_manual_grade) for g in notebook.grades}


def _errors(course: Path, assignment: str, student: str) -> dict[str, list[str]]:
    """{grade id, or cell index for other cells: the error messages of that cell} of the
    graded notebook, and whether every code cell ran."""
    path = course / "autograded" / student / assignment / f"{assignment}.ipynb"
    errors = {}
    for index, cell in enumerate(json.loads(path.read_text())["cells"]):
        if cell["cell_type"] != "code":
            continue
        assert cell["execution_count"] is not None, f"{assignment} cell {index} never ran"
        messages = [o["evalue"] for o in cell["outputs"] if o["output_type"] == "error"]
        if messages:
            errors[cell["metadata"].get("nbgrader", {}).get("grade_id", str(index))] = messages
    return errors


def test_released_notebooks_are_the_student_notebooks(course):
    """nbgrader's generate_assignment releases exactly notebooks/student/ (byte for byte, so
    tests/test_student_notebooks.py's proof that no solution line is left holds for them), with
    no solution marker left (and no trace of the instructor's hidden test)."""
    for path in solved_notebooks(NOTEBOOKS):
        released = course / "release" / path.stem / path.name
        if path.name.startswith("00"):
            assert not released.exists(), "00 has nothing to grade"
            continue
        text = released.read_text(encoding="utf-8")
        assert text == (NOTEBOOKS / "student" / path.name).read_text(encoding="utf-8"), path.name
        assert BEGIN not in text and END not in text and "<!-- BEGIN SOLUTION" not in text


@pytest.mark.parametrize("assignment", GRADED)
def test_solved_notebooks_get_full_marks(course, assignment):
    """The solved notebook scores every point, with no error in any cell; only its written
    answer waited for a hand grade (given in the fixture, as formgrader would)."""
    grades = _grades(course, assignment, "solved")
    assert grades and all(score == top for score, top, _ in grades.values()), grades
    manual = {name for name, (_, _, needs) in grades.items() if needs}
    assert manual == ({WRITTEN[assignment]} if assignment in WRITTEN else set())
    assert _errors(course, assignment, "solved") == {}


@pytest.mark.parametrize("assignment", GRADED)
def test_released_notebooks_unchanged_get_zero_and_run_to_the_end(course, assignment):
    """The released notebook handed in as it is: zero on every exercise, and the only errors
    are the self-checks' own, one per exercise, saying the rest uses the package's version."""
    grades = _grades(course, assignment, "blank")
    assert grades and all(score == 0 and not needs for score, _, needs in grades.values())
    errors = _errors(course, assignment, "blank")
    tests = set(grades) - set(WRITTEN.values())
    assert set(errors) == tests, errors
    for messages in errors.values():
        assert len(messages) == 1 and "not implemented yet" in messages[0]


def test_one_wrong_answer_loses_only_its_points(course):
    """02 with the sticky bn.eval(): check_aspp_pooling's points are lost, MyASPP (built on the
    package's pooling after the failed check) keeps its own, and no other cell fails."""
    assert _grades(course, "02_aspp", "wrong") == {
        "aspp_pooling": (0, 1, False),
        "aspp": (1, 1, False),
    }
    errors = _errors(course, "02_aspp", "wrong")
    assert list(errors) == ["aspp_pooling"] and STICKY_CASE in errors["aspp_pooling"][0]


def test_feedback_names_the_failing_case(course):
    """Every graded submission has its feedback file; the wrong one's names the failing case."""
    for assignment in GRADED:
        for student in ("solved", "blank"):
            assert (course / "feedback" / student / assignment / f"{assignment}.html").exists()
    html = (course / "feedback" / "wrong" / "02_aspp" / "02_aspp.html").read_text()
    assert STICKY_CASE in html and "check_aspp_pooling" in html


def test_grades_export(course):
    """`nbgrader export` writes one row per student and assignment with its score."""
    with (course / "grades.csv").open() as file:
        rows = {(r["student_id"], r["assignment"]): r for r in csv.DictReader(file)}
    for assignment in GRADED:
        top = float(rows["solved", assignment]["max_score"])
        assert float(rows["solved", assignment]["score"]) == top > 0
        assert float(rows["blank", assignment]["score"]) == 0
    assert float(rows["wrong", "02_aspp"]["score"]) == 1


def test_hidden_test_runs_when_grading(course):
    """The hidden test, absent from the release, ran on the solved submission's code after its
    check passed, and not on the blank one, whose check had stopped the cell."""
    for student, ran in (("solved", True), ("blank", False)):
        path = course / "autograded" / student / GRADED[0] / f"{GRADED[0]}.ipynb"
        cell = _cell(json.loads(path.read_text()), "receptive_fields")
        text = "".join("".join(o["text"]) for o in cell["outputs"] if o["output_type"] == "stream")
        assert ("hidden test passed" in text) == ran, student
