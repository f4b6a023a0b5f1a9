"""Tests for deeplab_utils.files: atomic writes."""

import json

import pytest

from deeplab_utils.files import atomic_write


def test_atomic_write_replaces_the_file_in_one_go(tmp_path):
    """The new content appears whole; no temporary file is left behind."""
    path = tmp_path / "sub" / "history.json"
    with atomic_write(path, "w", encoding="utf-8") as file:
        json.dump({"step": [1, 2]}, file)
    assert json.loads(path.read_text(encoding="utf-8")) == {"step": [1, 2]}
    assert [p.name for p in path.parent.iterdir()] == ["history.json"]


def test_a_crash_mid_write_keeps_the_old_file(tmp_path):
    """An exception half-way leaves the previous content, and no temporary file."""
    path = tmp_path / "history.json"
    path.write_text("old", encoding="utf-8")
    with pytest.raises(OSError, match="disk unplugged"):
        with atomic_write(path, "w", encoding="utf-8") as file:
            file.write("new but incomplete")
            raise OSError("disk unplugged")
    assert path.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["history.json"]
