"""Tests for the notebook-03 self-checks: they pass correct code and catch plausible mistakes."""

import re

import pytest
import torch
from torch import nn

from deeplab_utils.backbone import block_settings
from deeplab_utils.checks import CheckFailed, check_block_settings, check_bottleneck


class GoodBottleneck(nn.Module):
    """Notebook 03's solution: 1x1 reduce, 3x3 (stride, dilation), 1x1 expand, shortcut."""

    expansion = 4

    def __init__(self, in_channels, planes, *, stride=1, dilation=1, downsample=None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(
            planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False
        )
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, 4 * planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(4 * planes)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.downsample is None else self.downsample(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.branch(x) + self.shortcut(x))


class NoResidual(GoodBottleneck):
    """Forgets the shortcut altogether."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.branch(x))


class ReluBeforeAdd(GoodBottleneck):
    """Applies the last ReLU before adding the shortcut (the output can go negative)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.branch(x)) + self.shortcut(x)


class IgnoresDownsample(GoodBottleneck):
    """Always adds the raw input, even when the block changes channels or resolution."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.branch(x) + x)


class StrideOnConv1(GoodBottleneck):
    """Puts the stride on the first 1x1 conv (ResNet v1) instead of the 3x3 conv (v1.5)."""

    def __init__(self, in_channels: int, planes: int, *, stride: int = 1, **kwargs) -> None:
        super().__init__(in_channels, planes, stride=stride, **kwargs)
        self.conv1.stride = (stride, stride)
        self.conv2.stride = (1, 1)


class PaddingOne(GoodBottleneck):
    """Pads the 3x3 conv by 1 whatever the dilation, so dilated blocks shrink the map."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.conv2.padding = (1, 1)


class ExpandsToPlanes(GoodBottleneck):
    """Forgets the expansion: conv3 gives `planes` channels, not 4 * planes."""

    def __init__(self, in_channels, planes, **kwargs) -> None:
        super().__init__(in_channels, planes, **kwargs)
        self.conv3 = nn.Conv2d(planes, planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)


class WrongNames(GoodBottleneck):
    """Right computation, but the shortcut is stored as ``skip``, not ``downsample``."""

    def __init__(self, in_channels, planes, *, downsample=None, **kwargs) -> None:
        super().__init__(in_channels, planes, **kwargs)
        self.skip = downsample

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.skip is None else self.skip(x)


class FunctionalRelu(nn.Module):
    """Another valid decision: the ReLUs applied with torch.relu (no module), the padding given
    as a pair, the shortcut computed first and added in the other order."""

    def __init__(self, in_channels, planes, *, stride=1, dilation=1, downsample=None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, (1, 1), bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(
            planes, planes, 3, stride, padding=(dilation, dilation), dilation=dilation, bias=False
        )
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = self.downsample(x) if self.downsample is not None else x
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        return torch.relu(identity + self.bn3(self.conv3(out)))


class SeparateRelus(GoodBottleneck):
    """Another valid decision: one ReLU module per use (ReLUs hold no weights)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.relu1, self.relu2, self.relu3 = nn.ReLU(), nn.ReLU(inplace=True), nn.ReLU()
        del self.relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        return self.relu3(self.bn3(self.conv3(out)) + self.shortcut(x))


class BiasedConvs(GoodBottleneck):
    """Right computation, but every conv keeps its bias: torchvision's weights have none."""

    def __init__(self, in_channels, planes, **kwargs) -> None:
        super().__init__(in_channels, planes, **kwargs)
        self.conv1 = nn.Conv2d(in_channels, planes, 1)


@pytest.mark.parametrize("good", [GoodBottleneck, FunctionalRelu, SeparateRelus])
def test_check_bottleneck_passes_and_returns_the_class(capsys, good: type) -> None:
    """Every decision the exercise leaves open passes with one friendly line and comes back."""
    assert check_bottleneck(good) is good
    assert capsys.readouterr().out.startswith("✓ check_bottleneck: all 6 cases")


def test_check_bottleneck_says_why_a_bias_is_refused() -> None:
    """A conv bias before BN fails with the convention the text states (the state dict loaded
    later has none), not only the name of the unexpected key."""
    with pytest.raises(CheckFailed, match=r"unexpected \['conv1.bias'\].*followed by a BN has no"):
        check_bottleneck(BiasedConvs)


@pytest.mark.parametrize(
    ("wrong", "case"),
    [
        (NoResidual, "identity shortcut, 9x9, eval mode"),
        (ReluBeforeAdd, "identity shortcut, 9x9, eval mode"),
        (IgnoresDownsample, "projection shortcut (channels 8 -> 16), eval mode"),
        (StrideOnConv1, "stride 2, odd size 13x11, eval mode"),
        (PaddingOne, "dilation 2, identity shortcut, 11x12, eval mode"),
        (ExpandsToPlanes, "identity shortcut, 9x9"),
    ],
)
def test_check_bottleneck_catches_mistakes(wrong: type, case: str) -> None:
    """Each plausible mistake fails with a CheckFailed naming the first case it breaks."""
    with pytest.raises(CheckFailed, match=re.escape(f"case '{case}'")):
        check_bottleneck(wrong)


def test_check_bottleneck_names_the_original_resnets_stride() -> None:
    """He et al.'s block (the stride on conv1: same shapes, other values) fails with a hint that
    says the check compares with torchvision's v1.5 block, not with a hint about F(x) + x."""
    with pytest.raises(CheckFailed) as failure:
        check_bottleneck(StrideOnConv1)
    message = str(failure.value)
    assert "case 'stride 2, odd size 13x11, eval mode': values differ" in message
    assert "original ResNet's block" in message and "torchvision's v1.5 block" in message
    assert "ReLU(F(x) + x)" not in message


def test_check_bottleneck_lists_wrong_names() -> None:
    """A shortcut stored under another name is reported as missing/unexpected names."""
    with pytest.raises(CheckFailed, match=r"missing \['downsample.0.weight'.*skip"):
        check_bottleneck(WrongNames)


def test_check_bottleneck_rejects_an_instance() -> None:
    """Passing an instance instead of the class says so."""
    with pytest.raises(CheckFailed, match="pass the class itself"):
        check_bottleneck(GoodBottleneck(16, 4))


# Hand-written from DeepLabv3 Sec. 3.2 and torchvision's rule (a dilated stage's first block
# keeps the previous rate): (stride, dilation) of each block's 3x3 conv, stage by stage.
BLOCKS = {
    32: [[(1, 1)] * 3, [(2, 1)] + [(1, 1)] * 3, [(2, 1)] + [(1, 1)] * 5, [(2, 1), (1, 1), (1, 1)]],
    16: [[(1, 1)] * 3, [(2, 1)] + [(1, 1)] * 3, [(2, 1)] + [(1, 1)] * 5, [(1, 1), (1, 2), (1, 2)]],
    8: [[(1, 1)] * 3, [(2, 1)] + [(1, 1)] * 3, [(1, 1)] + [(1, 2)] * 5, [(1, 2), (1, 4), (1, 4)]],
}


def right(output_stride, multi_grid=None):
    """A correct implementation, written independently of the package."""
    stages, current, rate = [], 4, 1
    for blocks, stride in zip((3, 4, 6, 3), (1, 2, 2, 2), strict=True):
        previous = rate
        if current * stride > output_stride:
            rate, stride = rate * stride, 1
        current *= stride
        stages.append([(stride, previous)] + [(1, rate)] * (blocks - 1))
    if multi_grid:
        stages[-1] = [(s, rate * u) for (s, _), u in zip(stages[-1], multi_grid, strict=True)]
    return stages


def one_rate_per_stage(output_stride, multi_grid=None):
    """Gives a dilated stage's first block the new rate too."""
    return [[(s, stage[-1][1]) for s, _ in stage] for stage in right(output_stride, multi_grid)]


def not_cumulative(output_stride, multi_grid=None):
    """Sets every dilated block's rate to 2 instead of doubling the previous rate."""
    return [[(s, min(d, 2)) for s, d in stage] for stage in right(output_stride, multi_grid)]


def keeps_stride(output_stride, multi_grid=None):
    """Adds the dilation but forgets to drop the stride."""
    stages = right(output_stride, multi_grid)
    return [
        [(2 if i and j == 0 else s, d) for j, (s, d) in enumerate(st)]
        for i, st in enumerate(stages)
    ]


def multi_grid_from_second_block(output_stride, multi_grid=None):
    """Applies the unit rates to layer4's later blocks only, keeping the first block's rate."""
    stages = right(output_stride)
    if multi_grid:
        rate = stages[-1][-1][1]
        stages[-1] = [stages[-1][0]] + [(1, rate * u) for u in multi_grid[1:]]
    return stages


def ignores_multi_grid(output_stride, multi_grid=None):
    return right(output_stride)


@pytest.mark.parametrize("output_stride", [32, 16, 8])
def test_reference_matches_the_hand_written_table(output_stride: int) -> None:
    """The check's reference (the package's block_settings, itself tested against torchvision)
    agrees with the table written by hand, with and without multi-grid."""
    assert block_settings(output_stride) == BLOCKS[output_stride]
    assert block_settings(output_stride, (1, 2, 4)) == right(output_stride, (1, 2, 4))


def test_check_block_settings_passes_a_correct_function(capsys) -> None:
    """A correct function passes with one friendly line and comes back."""
    assert check_block_settings(right) is right
    assert capsys.readouterr().out.startswith("✓ check_block_settings: all 6 cases")


@pytest.mark.parametrize(
    ("wrong", "case"),
    [
        (one_rate_per_stage, r"output_stride=16': layer4: expected \[\(1, 1\), \(1, 2\)"),
        (not_cumulative, "output_stride=8': layer4"),
        (keeps_stride, "output_stride=16': layer4"),
        (
            ignores_multi_grid,
            r"output_stride=16, multi_grid=\(1, 2, 4\)': layer4: expected \[\(1, 2\), \(1, 4\)",
        ),
        (multi_grid_from_second_block, r"output_stride=16, multi_grid=\(1, 2, 4\)': layer4"),
    ],
)
def test_check_block_settings_catches_mistakes(wrong, case: str) -> None:
    """The first block taking the new rate, non-cumulative rates, a kept stride, an ignored
    multi-grid and a multi-grid that skips the first block each fail, naming the case."""
    with pytest.raises(CheckFailed, match=f"case '{case}"):
        check_block_settings(wrong)


def test_check_block_settings_rejects_a_non_list() -> None:
    """Returning something that is not lists of (stride, dilation) pairs names what is expected."""
    with pytest.raises(CheckFailed, match=r"expected a list of 4 lists .* got 32"):
        check_block_settings(lambda output_stride, multi_grid=None: output_stride)
