"""Shared test settings: small, deterministic, CPU only."""

import pytest
import torch

from deeplab_utils.checks import _common


@pytest.fixture(autouse=True)
def _seed() -> None:
    """Every test starts from the same random state, so failures reproduce."""
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _fresh_hints() -> None:
    """Every test starts with no earlier failures, so a check gives its short hints first."""
    _common._FAILURES.clear()
