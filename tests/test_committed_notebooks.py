"""The solved notebooks are stored as a learner should first see them: executed top to bottom in
one kernel, figures as PNG, and a progress bar at its last state, as Jupyter shows it, not as
hundreds of stored frames (after executing, `jupyter nbconvert --to notebook --inplace
--CoalesceStreamsPreprocessor.enabled=True NN_name.ipynb` stores it so)."""

import json
import re
from pathlib import Path

import pytest

from tools.notebooks import solved_notebooks

NOTEBOOKS = solved_notebooks(Path(__file__).resolve().parents[1] / "notebooks")
# Text that a carriage return overwrites when shown (nbconvert's CoalesceStreamsPreprocessor rule).
OVERWRITTEN = re.compile(r".*\r(?=[^\n])")


def _code_cells(path: Path) -> list[dict]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return [cell for cell in cells if cell["cell_type"] == "code"]


def stream_problems(cells: list[dict]) -> list[str]:
    """Cells whose stored stream text holds frames a carriage return overwrites on screen."""
    problems = []
    for index, cell in enumerate(cells):
        text = {"stdout": "", "stderr": ""}
        for output in cell.get("outputs", []):
            if output["output_type"] == "stream":
                text[output["name"]] += "".join(output["text"])
        problems += [
            f"code cell {index}: carriage-return frames in {name}"
            for name, joined in text.items()
            if OVERWRITTEN.search(joined)
        ]
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_executed_top_to_bottom(path):
    counts = [cell["execution_count"] for cell in _code_cells(path) if cell["source"]]
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: execution counts {counts}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_figures_are_png(path):
    kinds = {
        kind
        for cell in _code_cells(path)
        for output in cell.get("outputs", [])
        for kind in output.get("data", {})
        if kind.startswith("image/")
    }
    assert kinds <= {"image/png"}, f"{path.name} stores {sorted(kinds)}"


@pytest.mark.parametrize(
    "path", [*NOTEBOOKS, *NOTEBOOKS[0].parent.glob("student/*.ipynb")], ids=str
)
def test_no_widget_state_is_stored(path):
    """No notebook stores ipywidgets' state or views (a kernel with ipywidgets gives tqdm.auto a
    widget): a widget's stored text is its first frame, and the website's page would fetch the
    widgets' script from a CDN."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert "widgets" not in nb["metadata"], f"{path.name}: metadata.widgets"
    views = [
        index
        for index, cell in enumerate(nb["cells"])
        for output in cell.get("outputs", [])
        if "application/vnd.jupyter.widget-view+json" in output.get("data", {})
    ]
    assert views == [], f"{path.name}: widget outputs in cells {views}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_streams_stored_as_shown(path):
    assert stream_problems(_code_cells(path)) == []


def test_stream_check_rejects_a_stored_progress_bar():
    frames = [
        {"output_type": "stream", "name": "stderr", "text": ["\rtrain:   0%| 0/4"]},
        {"output_type": "stream", "name": "stderr", "text": ["\rtrain:  50%| 2/4"]},
    ]
    merged = [{"output_type": "stream", "name": "stderr", "text": ["\rtrain: 0%\rtrain: 50%"]}]
    final = [{"output_type": "stream", "name": "stderr", "text": ["train: 100%| 4/4\n"]}]
    assert stream_problems([{"outputs": frames}]) == [
        "code cell 0: carriage-return frames in stderr"
    ]
    assert stream_problems([{"outputs": merged}]) == [
        "code cell 0: carriage-return frames in stderr"
    ]
    assert stream_problems([{"outputs": final}]) == []
