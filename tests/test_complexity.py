"""Tests for deeplab_utils.complexity: parameter and multiply-accumulate counts."""

import pytest
import torch
from torch import nn

from deeplab_utils import SeparableConv2d, count_macs, count_parameters, macs_by_module


class _TwoStage(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.branches = nn.ModuleList([nn.Conv2d(8, 4, 1), nn.Conv2d(8, 4, 3, stride=2)])
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(4, 2, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        a, b = (branch(x) for branch in self.branches)
        return self.head(a[..., ::2, ::2][..., : b.shape[-2], : b.shape[-1]] + b)


def test_count_parameters_counts_weights_and_biases() -> None:
    """A Conv2d(3, 8, 3) has 3*8*9 weights plus 8 biases."""
    assert count_parameters(nn.Conv2d(3, 8, 3)) == 3 * 8 * 9 + 8


@pytest.mark.parametrize("batch", [1, 2])
def test_conv_macs_are_hand_computed(batch: int) -> None:
    """A conv costs B * C_in * C_out * k * k * H_out * W_out multiply-accumulates."""
    conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
    x = torch.randn(batch, 3, 10, 12)
    assert count_macs(conv, x) == batch * 3 * 8 * 3 * 3 * 5 * 6


def test_separable_conv_macs_are_hand_computed() -> None:
    """A separable conv costs C_in*k*k*H*W (depthwise) + C_in*C_out*H*W (pointwise)."""
    conv = SeparableConv2d(16, 32, 3, dilation=2)
    assert count_macs(conv, torch.randn(1, 16, 7, 9)) == (16 * 9 + 16 * 32) * 7 * 9


def test_macs_by_module_splits_the_total() -> None:
    """Per-child counts are hand-computed, include never-called containers, and sum to the total."""
    model = _TwoStage()
    x = torch.randn(1, 3, 9, 9)
    stem = 3 * 8 * 9 * 9 * 9
    branches = 8 * 4 * 9 * 9 + 8 * 4 * 9 * 4 * 4
    head = 4 * 2 * 4 * 4
    assert macs_by_module(model, x) == {"stem": stem, "branches": branches, "head": head}
    assert sum(macs_by_module(model, x).values()) == count_macs(model, x)


def test_macs_by_module_deeper() -> None:
    """depth=2 lists grandchildren by dotted name, including ones without multiply-adds."""
    counts = macs_by_module(_TwoStage(), torch.randn(1, 3, 9, 9), depth=2)
    assert counts == {
        "branches.0": 8 * 4 * 9 * 9,
        "branches.1": 8 * 4 * 9 * 4 * 4,
        "head.0": 0,
        "head.1": 4 * 2 * 4 * 4,
    }


@pytest.mark.parametrize("count", [count_macs, macs_by_module])
def test_counting_leaves_mode_and_batchnorm_statistics_alone(count) -> None:
    """Counting a model in train mode neither updates BatchNorm's statistics nor its mode."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count(model, torch.randn(2, 3, 8, 8) * 5 + 3)
    assert model.training and all(m.training for m in model)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
