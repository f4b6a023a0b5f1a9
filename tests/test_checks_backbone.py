"""Tests for the notebook-03 self-checks: they pass the reference and catch plausible mistakes."""

import re

import pytest
import torch
from torch import nn

from deeplab_utils.backbone import Bottleneck
from deeplab_utils.checks import CheckFailed, check_bottleneck, check_stage_dilations
from deeplab_utils.checks.backbone import _torchvision_stage_settings


class NoResidual(Bottleneck):
    """Forgets the shortcut altogether."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)))


class ReluBeforeAdd(Bottleneck):
    """Applies the last ReLU before adding the shortcut (the output can go negative)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.relu(self.bn3(self.conv3(out)))
        return out + (x if self.downsample is None else self.downsample(x))


class IgnoresDownsample(Bottleneck):
    """Always adds the raw input, even when the block changes channels or resolution."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + x)


class StrideOnConv1(Bottleneck):
    """Puts the stride on the first 1x1 conv (ResNet v1) instead of the 3x3 conv (v1.5)."""

    def __init__(self, in_channels: int, planes: int, *, stride: int = 1, **kwargs) -> None:
        super().__init__(in_channels, planes, stride=stride, **kwargs)
        self.conv1.stride = (stride, stride)
        self.conv2.stride = (1, 1)


class PaddingOne(Bottleneck):
    """Pads the 3x3 conv by 1 whatever the dilation, so dilated blocks shrink the map."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.conv2.padding = (1, 1)


class WrongNames(nn.Module):
    """Right computation, but the shortcut is stored as ``shortcut``, not ``downsample``."""

    def __init__(self, in_channels, planes, *, stride=1, dilation=1, downsample=None) -> None:
        super().__init__()
        inner = Bottleneck(in_channels, planes, stride=stride, dilation=dilation)
        self.conv1, self.bn1, self.conv2 = inner.conv1, inner.bn1, inner.conv2
        self.bn2, self.conv3, self.bn3 = inner.bn2, inner.conv3, inner.bn3
        self.shortcut = downsample
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.shortcut is None else self.shortcut(x)))


class NotWritten(Bottleneck):
    """The student copy's stub."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("Exercise: write this part, then run the check below.")


def test_check_bottleneck_passes_the_reference(capsys: pytest.CaptureFixture[str]) -> None:
    """The package's Bottleneck passes and gets one friendly line."""
    check_bottleneck(Bottleneck)
    assert capsys.readouterr().out.startswith("✓ check_bottleneck: all 6 cases")


@pytest.mark.parametrize(
    ("wrong", "case"),
    [
        (NoResidual, "identity shortcut, 9x9, eval mode"),
        (ReluBeforeAdd, "identity shortcut, 9x9, eval mode"),
        (IgnoresDownsample, "projection shortcut (channels 8 -> 16), eval mode"),
        (StrideOnConv1, "stride 2, odd size 13x11, eval mode"),
        (PaddingOne, "dilation 2, identity shortcut, 11x12, eval mode"),
    ],
)
def test_check_bottleneck_catches_mistakes(wrong: type, case: str) -> None:
    """Each plausible mistake fails with a CheckFailed naming the first case it breaks."""
    with pytest.raises(CheckFailed, match=re.escape(f"case '{case}'")):
        check_bottleneck(wrong)


def test_check_bottleneck_lists_wrong_names() -> None:
    """A shortcut stored under another name is reported as missing/unexpected names."""
    with pytest.raises(CheckFailed, match=r"missing \['downsample.0.weight'.*shortcut"):
        check_bottleneck(WrongNames)


def test_check_bottleneck_not_implemented() -> None:
    """The student stub is reported as not implemented yet."""
    with pytest.raises(CheckFailed, match="not implemented yet"):
        check_bottleneck(NotWritten)


def test_check_bottleneck_rejects_an_instance() -> None:
    """Passing an instance instead of the class says so."""
    with pytest.raises(CheckFailed, match="pass the class itself"):
        check_bottleneck(Bottleneck(16, 4))


# Hand-written from DeepLabv3 Sec. 3.2 / Fig. 3: (stride, dilation) of layer1..layer4.
STAGES = {
    32: [(1, 1), (2, 1), (2, 1), (2, 1)],
    16: [(1, 1), (2, 1), (2, 1), (1, 2)],
    8: [(1, 1), (2, 1), (1, 2), (1, 4)],
}


def right(output_stride: int) -> list[tuple[int, int]]:
    """A correct implementation: trade each stride 2 beyond the target for dilation."""
    settings, current, dilation = [], 4, 1
    for stride in (1, 2, 2, 2):
        if current * stride > output_stride:
            dilation, stride = dilation * stride, 1
        current *= stride
        settings.append((stride, dilation))
    return settings


def not_cumulative(output_stride: int) -> list[tuple[int, int]]:
    """Sets each dilated stage's rate to 2 instead of doubling the previous one."""
    return [(s, 1 if s == 2 or i < 2 else 2) for i, (s, _) in enumerate(right(output_stride))]


def keeps_stride(output_stride: int) -> list[tuple[int, int]]:
    """Adds the dilation but forgets to drop the stride."""
    return [(1 if i == 0 else 2, d) for i, (_, d) in enumerate(right(output_stride))]


def not_written(output_stride: int) -> list[tuple[int, int]]:
    """The student copy's stub."""
    raise NotImplementedError("Exercise: write this part, then run the check below.")


@pytest.mark.parametrize("output_stride", [32, 16, 8])
def test_torchvision_oracle_matches_the_hand_written_table(output_stride: int) -> None:
    """The check's oracle (torchvision's convs) agrees with the table from the paper."""
    assert _torchvision_stage_settings(output_stride) == STAGES[output_stride]


def test_check_stage_dilations_passes_a_correct_function(capsys) -> None:
    """A correct function passes with one friendly line."""
    check_stage_dilations(right)
    assert capsys.readouterr().out.startswith("✓ check_stage_dilations")


@pytest.mark.parametrize(
    ("wrong", "case"),
    [(not_cumulative, "output_stride=8"), (keeps_stride, "output_stride=16")],
)
def test_check_stage_dilations_catches_mistakes(wrong, case: str) -> None:
    """Non-cumulative rates and a kept stride fail, naming the output stride."""
    with pytest.raises(CheckFailed, match=f"case '{case}': expected"):
        check_stage_dilations(wrong)


def test_check_stage_dilations_not_implemented() -> None:
    """The student stub is reported as not implemented yet."""
    with pytest.raises(CheckFailed, match="not implemented yet"):
        check_stage_dilations(not_written)


def test_check_stage_dilations_rejects_a_non_list() -> None:
    """Returning something that is not (stride, dilation) pairs names what is expected."""
    with pytest.raises(CheckFailed, match="list of 4 \\(stride, dilation\\) pairs, got 32"):
        check_stage_dilations(lambda output_stride: output_stride)
