"""Shared test settings: small, deterministic, CPU only, and never a download."""

import urllib.error

import pytest
import torch

from deeplab_utils.checks import _common


@pytest.fixture(autouse=True)
def _seed() -> None:
    """Every test starts from the same random state, so failures reproduce."""
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that would download (weights through torch.hub) fails instead of reaching out."""

    def refuse(url: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError(f"tests never download, but one asked for {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


@pytest.fixture(autouse=True)
def _fresh_hints() -> None:
    """Every test starts with no earlier failures, so a check gives its short hints first."""
    _common._FAILURES.clear()
