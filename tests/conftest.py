"""Shared test settings: small, deterministic, CPU only, and never a download."""

import urllib.error

import pytest
import torch

from deeplab_utils.checks import _common, pieces


@pytest.fixture(autouse=True)
def _seed() -> None:
    """Every test starts from the same random state, so failures reproduce."""
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _declared_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs on a declared CPU, not the host's: AVX2 kernels, no native bf16 (a
    laptop). What reads the host (``amp_is_fast``, and through it the ``amp`` default and the
    main job's default steps) then decides the same on an AVX2 laptop and an AVX-512 server; a
    test about another CPU declares it with :func:`declare_cpu`. The kernels torch really runs
    still differ by host, so tests compare runs of one host with each other, never stored digits.
    """
    declare_cpu(monkeypatch, "AVX2", avx512_bf16=False, amx=False)


def declare_cpu(
    monkeypatch: pytest.MonkeyPatch, capability: str, *, avx512_bf16: bool, amx: bool
) -> None:
    """Make this process report ``capability`` kernels and these native bf16 features."""
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)


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


@pytest.fixture(autouse=True)
def _no_pieces_folder():
    """No test saves a passing exercise unless it says where (``setup_notebook`` in one test
    would otherwise have every later check write into the repository's ``my_pieces/``)."""
    pieces.keep_pieces_in(None)
    yield
    pieces.keep_pieces_in(None)
