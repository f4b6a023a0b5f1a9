"""Tests for tools/notebooks.py: nbgrader metadata from the markers, and the student notebooks
nbgrader's own preprocessors release from the solved ones."""

import json

import pytest

from tools.notebooks import (
    count_exercises,
    graded_cells,
    main,
    make_student,
    stamp,
    stub_code,
)

SOLVED_CODE = """def add_one(x):
    \"\"\"Add one.\"\"\"
    ### BEGIN SOLUTION
    secret = 41
    return x + 1
    ### END SOLUTION


y = 2"""
CHECK = "add_one = check_add_one(add_one)"


def _notebook(*cells):
    for number, cell in enumerate(cells):
        cell["id"] = f"cell-{number}"
    metadata = {"kernelspec": {"language": "python", "name": "python3", "display_name": "Python"}}
    return {"cells": list(cells), "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}


def _code(source, outputs=None):
    cell = {"cell_type": "code", "source": source, "metadata": {}, "outputs": outputs or []}
    cell["execution_count"] = 1
    return cell


def _md(source):
    return {"cell_type": "markdown", "source": source, "metadata": {}}


def _nbgrader(cell):
    return cell["metadata"].get("nbgrader")


def test_solution_region_becomes_indented_stub():
    """The region becomes nbgrader's stub from the course configuration, at the marker's
    indent, and the rest of the cell is kept."""
    student = make_student(_notebook(_code(SOLVED_CODE), _code(CHECK)))
    source = "".join(student["cells"][0]["source"])
    assert "secret" not in source and "return x + 1" not in source
    stub = "\n".join(f"    {line}" for line in stub_code().splitlines())
    assert (
        stub.startswith("    # YOUR CODE HERE\n    raise NotImplementedError(") and stub in source
    )
    assert source.startswith('def add_one(x):\n    """Add one."""')
    assert source.endswith("y = 2")


def test_student_stub_raises_not_implemented():
    """The stubbed function is valid Python that raises NotImplementedError when called, which
    is what makes its check say "not implemented yet"."""
    student = make_student(_notebook(_code(SOLVED_CODE), _code(CHECK)))
    namespace = {}
    exec("".join(student["cells"][0]["source"]), namespace)
    with pytest.raises(NotImplementedError):
        namespace["add_one"](1)


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ("### BEGIN SOLUTION\nx = 1", "cell 0: .*never closed"),
        ("x = 1\n### END SOLUTION", "cell 0: line 2"),
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "cell 0: line 2"),
        ("x = 1  # ### BEGIN SOLUTION", "cell 0: line 1 names a solution marker"),
    ],
)
def test_unbalanced_or_inline_markers_raise(source, match):
    """A BEGIN without END (or the reverse), or a marker inside other text, is an error naming
    the cell and line."""
    with pytest.raises(ValueError, match=match):
        stamp(_notebook(_code(source), _code(CHECK)))


def test_markers_named_in_prose_are_refused():
    """Prose naming both markers on one line (notebook 01's text once did) is refused before
    nbgrader reads it as a region that never ends."""
    prose = _md("Write it between the `### BEGIN SOLUTION` and `### END SOLUTION` markers.")
    with pytest.raises(ValueError, match="cell 0: line 1 names a solution marker"):
        stamp(_notebook(prose, _code(SOLVED_CODE), _code(CHECK)))


def test_stamp_marks_answers_tests_and_written_answers():
    """A solution cell is an autograded answer of the exercise checked next, the check cell its
    locked test worth a point, a markdown answer a hand-graded one; other cells carry nothing."""
    nb = stamp(
        _notebook(
            _md("# Title"),
            _code(SOLVED_CODE),
            _code(SOLVED_CODE.replace("add_one", "helper")),
            _code(CHECK),
            _md("Why?\n<!-- BEGIN SOLUTION -->\nBecause.\n<!-- END SOLUTION -->"),
            _code("print(1)"),
        )
    )
    metas = [_nbgrader(cell) for cell in nb["cells"]]
    assert metas[0] is None and metas[5] is None
    assert [m["grade_id"] for m in metas[1:5]] == [
        "add_one_solution_1",
        "add_one_solution_2",
        "add_one",
        "answer_1",
    ]
    assert [(m["solution"], m["grade"], m["locked"]) for m in metas[1:5]] == [
        (True, False, False),
        (True, False, False),
        (False, True, True),
        (True, True, False),
    ]
    assert graded_cells(nb) == [("add_one", 1, True), ("answer_1", 1, False)]
    assert count_exercises(nb) == 1


def test_stamp_keeps_the_instructors_points_and_drops_stale_metadata():
    """Points given to a test cell (and a written answer's own grade id) survive stamping
    again; metadata left on a cell that is no longer an exercise is removed."""
    nb = stamp(
        _notebook(
            _code(SOLVED_CODE), _code(CHECK), _md("<!-- BEGIN SOLUTION -->\n<!-- END SOLUTION -->")
        )
    )
    _nbgrader(nb["cells"][1])["points"] = 5
    _nbgrader(nb["cells"][2])["grade_id"] = "why"
    stale = _code("print(2)")
    stale["metadata"]["nbgrader"] = {"grade": True, "grade_id": "old", "points": 1}
    nb["cells"].append(stale)
    again = stamp(nb)
    assert graded_cells(again) == [("add_one", 5, True), ("why", 1, False)]
    assert _nbgrader(again["cells"][3]) is None
    assert stamp(again) == again


@pytest.mark.parametrize(
    ("cells", "match"),
    [
        ([_code(SOLVED_CODE)], "cell 0: a solution with no self-check after it"),
        ([_code(SOLVED_CODE), _code("check_add_one(add_one)")], r"cell 1: .*check_my_fn\(my_fn\)"),
        ([_code(SOLVED_CODE), _code(f"{CHECK}\ny = check_y(y)")], "cell 1: it runs 2 checks"),
        ([_code(SOLVED_CODE), _code(CHECK), _code(CHECK)], "cell 2: .*'add_one' is checked twice"),
        ([_code(f"{SOLVED_CODE}\n{CHECK}")], "cell 0: it holds a solution and a check"),
    ],
    ids=["no-check", "bare-check", "two-checks", "checked-twice", "solution-and-check"],
)
def test_exercises_that_could_not_be_graded_are_refused(cells, match):
    """Each exercise needs exactly one check cell that keeps what the check returns (a bare
    check_x(x) would leave the student copy running the unwritten exercise later)."""
    with pytest.raises(ValueError, match=match):
        stamp(_notebook(*cells))


def test_make_student_clears_outputs_and_answers():
    """Outputs and execution counts are cleared, a written answer becomes the placeholder, and
    the solved notebook itself is left untouched."""
    nb = _notebook(
        _md("# Title"),
        _code(SOLVED_CODE, outputs=[{"output_type": "stream", "name": "stdout", "text": "x"}]),
        _code(CHECK),
        _md("Q?\n<!-- BEGIN SOLUTION -->\n42\n<!-- END SOLUTION -->"),
        _code("print(add_one(3))"),
    )
    student = make_student(nb)
    assert all(c.get("outputs", []) == [] for c in student["cells"])
    assert all(c.get("execution_count") is None for c in student["cells"])
    assert "".join(student["cells"][3]["source"]) == "Q?\n*Your answer here.*"
    assert nb["cells"][1]["outputs"] and _nbgrader(nb["cells"][1]) is None


def _solved_folder(tmp_path):
    solved = tmp_path / "notebooks"
    solved.mkdir(parents=True)
    nb = _notebook(_md("# Demo"), _code(SOLVED_CODE), _code(CHECK))
    (solved / "01_demo.ipynb").write_text(json.dumps(nb))
    return solved, nb


def test_cli_build_then_check(tmp_path, capsys):
    """`build` stamps the solved notebook and writes its student copy, `check` then agrees, and
    fails once a solved notebook changes or loses its nbgrader metadata."""
    solved, nb = _solved_folder(tmp_path)
    assert main(["build", "--notebooks", str(solved)]) == 0
    written = (solved / "student" / "01_demo.ipynb").read_text()
    assert "secret" not in written and "return x + 1" not in written
    assert "notebooks/student/01_demo.ipynb" in written, "badge opens the student copy"
    stamped = json.loads((solved / "01_demo.ipynb").read_text())
    assert _nbgrader(stamped["cells"][2])["grade_id"] == "add_one"
    assert main(["check", "--notebooks", str(solved)]) == 0
    (solved / "01_demo.ipynb").write_text(json.dumps(nb))  # as before build: no metadata
    assert main(["check", "--notebooks", str(solved)]) == 1
    assert "out of date (nbgrader metadata)" in capsys.readouterr().err
    assert main(["build", "--notebooks", str(solved)]) == 0
    stamped["cells"][1]["source"] = SOLVED_CODE.replace("y = 2", "y = 3")
    (solved / "01_demo.ipynb").write_text(json.dumps(stamped))
    assert main(["check", "--notebooks", str(solved)]) == 1
    assert "out of date (student copy)" in capsys.readouterr().err


def test_badges_open_the_folder_given_by_out(tmp_path):
    """With --out, the student copies' badges open them there, not in notebooks/student/."""
    solved, _ = _solved_folder(tmp_path)
    out = tmp_path / "notebooks" / "learners"
    assert main(["build", "--notebooks", str(solved), "--out", str(out)]) == 0
    written = (out / "01_demo.ipynb").read_text()
    assert "blob/main/notebooks/learners/01_demo.ipynb" in written
    assert "notebooks/student/" not in written
    assert main(["check", "--notebooks", str(solved), "--out", str(out)]) == 0


def test_out_outside_the_repository_is_refused(tmp_path, capsys):
    """A folder outside the repository could not be opened by a badge: one-line error."""
    solved, _ = _solved_folder(tmp_path / "repo")
    with pytest.raises(SystemExit) as exit_info:
        main(["build", "--notebooks", str(solved), "--out", str(tmp_path / "elsewhere")])
    assert exit_info.value.code == 2
    assert "outside the repository" in capsys.readouterr().err


def test_course_folder(tmp_path, capsys):
    """`course DIR` writes nbgrader's config and one source assignment per notebook with
    exercises (badge opening the student copy), and never overwrites."""
    solved, _ = _solved_folder(tmp_path)
    (solved / "00_welcome.ipynb").write_text(json.dumps(_notebook(_md("# Hi"))))
    course = tmp_path / "course"
    assert main(["course", str(course), "--notebooks", str(solved)]) == 0
    assert "ClearSolutions.code_stub" in (course / "nbgrader_config.py").read_text()
    assert [p.relative_to(course).as_posix() for p in sorted(course.rglob("*.ipynb"))] == [
        "source/01_demo/01_demo.ipynb"
    ]
    source = json.loads((course / "source/01_demo/01_demo.ipynb").read_text())
    assert "secret" in "".join(source["cells"][1]["source"]), "the source keeps its solution"
    assert "notebooks/student/01_demo.ipynb" in "".join(source["cells"][0]["source"])
    with pytest.raises(SystemExit):
        main(["course", str(course), "--notebooks", str(solved)])
    assert "exists already" in capsys.readouterr().err
