"""Tests that the repository's set-up files agree with each other."""

import pathlib
import re

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONDA_NAMES = {"pytorch": "torch"}  # conda-forge's name -> PyPI's name


def _split(requirement: str) -> tuple[str, str]:
    """'torch>=2.4' -> ('torch', '>=2.4'), with the name normalised as PyPI does."""
    name, spec = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement).groups()
    return re.sub(r"[-_.]+", "-", name).lower(), spec.replace(" ", "")


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["dev"]
    return dict(_split(r) for r in reqs)


def _conda_requirements() -> dict[str, str]:
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = lines.index("dependencies:")
    reqs = {}
    for line in lines[start + 1 :]:
        item = re.match(r"^  - ([^:#]+)$", line)  # two-space items only: skips the pip section
        if item:
            name, spec = _split(item.group(1))
            reqs[CONDA_NAMES.get(name, name)] = spec
    for tool in ("python", "pip"):
        reqs.pop(tool, None)
    return reqs


def test_environment_yml_matches_pyproject():
    """environment.yml names exactly the runtime and dev dependencies of pyproject.toml."""
    assert _conda_requirements() == _pyproject_requirements()


def test_dependencies_are_ranges_not_pins():
    """No dependency is pinned with ==: Colab must keep its own torch."""
    pinned = {n: s for n, s in _pyproject_requirements().items() if "==" in s}
    assert not pinned


def test_python_requirement_matches():
    """The conda environment and pyproject.toml ask for the same Python."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert f"python{project['requires-python']}" in (ROOT / "environment.yml").read_text()
