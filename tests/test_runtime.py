"""Tests for deeplab_utils.runtime: device choice, seeding, the environment report."""

import copy
import os
import platform
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import declare_cpu

from deeplab_utils.colab import environment_report
from deeplab_utils.model import DeepLabV3Plus
from deeplab_utils.runtime import amp_is_fast, pick_device, seed_everything, to_layout


def _draws() -> tuple[float, float, list[float]]:
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()  # noqa: NPY002


@pytest.fixture(autouse=True)
def _restore_hash_seed(monkeypatch):
    """seed_everything sets PYTHONHASHSEED; undo it so later subprocesses are unaffected."""
    monkeypatch.setenv("PYTHONHASHSEED", os.environ.get("PYTHONHASHSEED", "random"))


@pytest.mark.parametrize("seed", [0, 7, 2**40])
def test_seeding_twice_repeats_every_generator(seed):
    """The same seed gives the same Python, NumPy and torch draws; another seed does not."""
    seed_everything(seed)
    first = _draws()
    seed_everything(seed)
    assert _draws() == first
    seed_everything(seed + 1)
    assert _draws() != first


def test_large_seed_leaves_subprocesses_startable():
    """A seed above 2**32 still leaves a PYTHONHASHSEED that a new Python accepts."""
    seed_everything(2**40 + 3)
    result = subprocess.run([sys.executable, "-c", "print(1)"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert os.environ["PYTHONHASHSEED"] == "3"


@pytest.mark.parametrize("seed", [-1, 2**63, 1.5, "0", True])
def test_bad_seed_is_refused(seed):
    """Negative, too large, non-int and bool seeds raise a ValueError naming the value."""
    with pytest.raises(ValueError, match=f"got {seed!r}"):
        seed_everything(seed)


@pytest.mark.parametrize("device", ["cpu", torch.device("cpu")])
def test_pick_cpu(device):
    """Asking for the CPU gives the CPU."""
    assert pick_device(device) == torch.device("cpu")


def test_auto_matches_what_the_machine_has():
    """'auto' and None choose CUDA, then MPS, then CPU, as this machine reports them."""
    if torch.cuda.is_available():
        expected = "cuda"
    elif torch.backends.mps.is_available():
        expected = "mps"
    else:
        expected = "cpu"
    assert pick_device().type == pick_device("auto").type == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu_is_a_clear_error():
    """Asking for CUDA on a CPU-only machine says so and suggests the fix."""
    with pytest.raises(ValueError, match="'cuda' was asked for but CUDA is not available"):
        pick_device("cuda")


def test_unknown_device_is_refused():
    """A device name torch does not know raises a ValueError naming it."""
    with pytest.raises(ValueError, match="got 'gpu'"):
        pick_device("gpu")


def test_environment_report_names_versions_and_device():
    """The report gives the real Python/torch versions, the device pick_device finds, Colab."""
    lines = dict(line.split(": ", 1) for line in environment_report().splitlines())
    assert lines["python"] == platform.python_version()
    assert lines["torch"] == torch.__version__
    assert lines["device"].startswith(pick_device().type + " (")
    assert lines["on Colab"] == "no"


@pytest.mark.parametrize(("device", "expected"), [("cuda", True), ("cuda:1", True), ("mps", False)])
def test_amp_is_fast_on_gpus(device, expected):
    """Mixed precision is worth it on CUDA, not on MPS (no GPU needed to decide)."""
    assert amp_is_fast(device) is expected


# Every input amp_is_fast reads from the host is set by the test: the kernels torch runs
# (get_cpu_capability) and the two bf16 features. A test that left one to the host passed on an
# AVX-512 CPU and failed on an AVX2 laptop (issue 19).
@pytest.mark.parametrize("capability", ["AVX512", "AMX"])
@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "expected"),
    [(False, False, False), (True, False, True), (False, True, True), (True, True, True)],
)
def test_amp_is_fast_on_cpus_with_native_bf16_only(
    monkeypatch, capability, avx512_bf16, amx, expected
):
    """With AVX-512 (or AMX) kernels, bf16 autocast pays off only with AVX512-BF16 or AMX."""
    declare_cpu(monkeypatch, capability, avx512_bf16=avx512_bf16, amx=amx)
    assert amp_is_fast("cpu") is expected
    assert amp_is_fast(torch.device("cpu")) is expected


@pytest.mark.parametrize("capability", ["AVX2", "DEFAULT", "NO AVX", "ZVECTOR", "VSX"])
@pytest.mark.parametrize(("avx512_bf16", "amx"), [(False, False), (True, False), (True, True)])
def test_amp_is_slow_where_torch_runs_no_avx512_kernels(monkeypatch, capability, avx512_bf16, amx):
    """The twin: a CPU with bf16 features whose kernels are limited to AVX2 (a laptop, or
    ATEN_CPU_CAPABILITY=avx2) emulates bf16 slowly, so amp stays off. Fails if the capability
    check is dropped from the decision, whatever the host."""
    declare_cpu(monkeypatch, capability, avx512_bf16=avx512_bf16, amx=amx)
    assert amp_is_fast("cpu") is False


def test_amp_is_fast_without_torch_helpers_says_no(monkeypatch):
    """A torch without the private CPU-feature helpers gets the safe answer, False, even
    where torch runs AVX-512 kernels."""
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    assert amp_is_fast("cpu") is False


def _layouts(model: torch.nn.Module) -> dict[str, bool]:
    """Each weight's name -> whether it is NHWC (channels last) in memory, for the kernels whose
    two layouts differ (a 1x1 kernel, or one of one input channel, is both)."""
    return {
        name: p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
        for name, p in model.named_parameters()
        if p.ndim == 4 and p.shape[1] > 1 and p.shape[2] * p.shape[3] > 1
    }


def test_to_layout_keeps_the_last_two_stages_nchw_on_a_cpu():
    """NHWC on a CPU puts every convolution's weight channels last except layer3's and layer4's,
    whose input a hook makes NCHW (added once however often it is called), and computes what
    the untouched NCHW network computes; without NHWC nothing changes layout."""
    torch.manual_seed(0)
    plain = DeepLabV3Plus(num_classes=3).eval()
    model = copy.deepcopy(plain)
    for _ in range(2):
        to_layout(model, torch.device("cpu"), channels_last=True)
    layouts = _layouts(model)
    stages = ("backbone.layer3.", "backbone.layer4.")
    assert not any(nhwc for name, nhwc in layouts.items() if name.startswith(stages))
    assert all(nhwc for name, nhwc in layouts.items() if not name.startswith(stages))
    assert len(model.backbone.layer3._forward_pre_hooks) == 1
    seen = []
    model.backbone.layer4.register_forward_pre_hook(lambda m, a: seen.append(a[0].is_contiguous()))
    image = torch.randn(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(model(image), plain(image), atol=1e-4, rtol=1e-4)
    assert seen == [True]
    untouched = copy.deepcopy(plain)
    to_layout(untouched, torch.device("cpu"), channels_last=False)
    assert not any(_layouts(untouched).values())
    assert not untouched.backbone.layer3._forward_pre_hooks


def test_to_layout_leaves_another_network_nhwc_throughout():
    """A network without the course's stage names (smp's, say) is put in NHWC as a whole."""
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(4, 4, 3))
    to_layout(model, torch.device("cpu"), channels_last=True)
    assert all(_layouts(model).values())
