"""Tests for tools/notebooks.py: turning solved notebooks into student notebooks."""

import json

import pytest

from tools.notebooks import (
    STUB,
    count_exercises,
    main,
    make_student,
    strip_code_solutions,
    strip_markdown_solutions,
)

SOLVED_CODE = """def add_one(x):
    \"\"\"Add one.\"\"\"
    ### BEGIN SOLUTION
    secret = 41
    return x + 1
    ### END SOLUTION


y = 2"""


def _notebook(*cells):
    return {"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def _code(source, tags=None, outputs=None):
    cell = {"cell_type": "code", "source": source, "metadata": {}, "outputs": outputs or []}
    cell["execution_count"] = 1
    if tags:
        cell["metadata"]["tags"] = tags
    return cell


def _md(source):
    return {"cell_type": "markdown", "source": source, "metadata": {}}


def test_solution_region_becomes_indented_stub():
    """The region is replaced by '# YOUR CODE HERE' and a raise, at the marker's indent."""
    student, n = strip_code_solutions(SOLVED_CODE)
    assert n == 1
    assert "secret" not in student and "return x + 1" not in student
    assert f"    # YOUR CODE HERE\n    {STUB}" in student
    assert student.startswith('def add_one(x):\n    """Add one."""')
    assert student.endswith("y = 2")


def test_student_stub_raises_not_implemented():
    """The stubbed function is valid Python that raises NotImplementedError when called."""
    student, _ = strip_code_solutions(SOLVED_CODE)
    namespace = {}
    exec(student, namespace)
    with pytest.raises(NotImplementedError):
        namespace["add_one"](1)


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ("### BEGIN SOLUTION\nx = 1", "never closed"),
        ("x = 1\n### END SOLUTION", "line 2"),
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "line 2"),
    ],
)
def test_unbalanced_markers_raise(source, match):
    """A BEGIN without END (or the reverse) is an error naming where it is."""
    with pytest.raises(ValueError, match=match):
        strip_code_solutions(source)


def test_markdown_answers_are_removed():
    """Answers between HTML-comment markers become a placeholder."""
    text, n = strip_markdown_solutions("Q?\n<!-- BEGIN SOLUTION -->\n42\n<!-- END SOLUTION -->")
    assert n == 1 and "42" not in text and "*Your answer here.*" in text


def test_make_student_clears_outputs_and_keeps_checks_untagged():
    """Outputs are cleared; a check whose result is kept (my_fn = check_my_fn(my_fn)) and the
    cells after it are left as they are: nothing in a student notebook is expected to fail."""
    nb = _notebook(
        _md("# Title"),
        _code(SOLVED_CODE, outputs=[{"output_type": "stream", "name": "stdout", "text": "x"}]),
        _code("add_one = check_add_one(add_one)"),
        _code("print(add_one(3))"),
    )
    student, n = make_student(nb)
    assert n == 1 and count_exercises(nb) == 1
    assert [c["metadata"].get("tags", []) for c in student["cells"]] == [[], [], [], []]
    assert all(c.get("outputs", []) == [] for c in student["cells"][1:])
    assert all(c.get("execution_count") is None for c in student["cells"][1:])
    assert nb["cells"][1]["outputs"], "the solved notebook itself is left untouched"


def test_a_check_whose_result_is_thrown_away_is_refused():
    """A bare check_x(x) would leave the student copy running the unwritten exercise later."""
    nb = _notebook(_code(SOLVED_CODE), _code("check_add_one(add_one)"))
    with pytest.raises(ValueError, match=r"cell 1 .*my_fn = check_my_fn\(my_fn\)"):
        make_student(nb)


def test_cli_build_then_check(tmp_path, capsys):
    """`build` writes student notebooks with no solution text, `check` then agrees, and
    `check` fails once a solved notebook changes outside its solutions."""
    solved = tmp_path / "notebooks"
    solved.mkdir()
    nb = _notebook(_md("# Demo"), _code(SOLVED_CODE), _code("add_one = check_add_one(add_one)"))
    (solved / "01_demo.ipynb").write_text(json.dumps(nb))
    assert main(["build", "--notebooks", str(solved)]) == 0
    written = (solved / "student" / "01_demo.ipynb").read_text()
    assert "secret" not in written and "return x + 1" not in written
    assert "notebooks/student/01_demo.ipynb" in written, "badge opens the student copy"
    assert main(["check", "--notebooks", str(solved)]) == 0
    nb["cells"][1]["source"] = SOLVED_CODE.replace("y = 2", "y = 3")
    (solved / "01_demo.ipynb").write_text(json.dumps(nb))
    assert main(["check", "--notebooks", str(solved)]) == 1
    assert "out of date" in capsys.readouterr().err
