"""Tests for the notebook 02 self-checks: check_aspp_pooling and check_aspp."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deeplab_utils import ASPP, ASPPConv, ASPPPooling
from deeplab_utils.checks import CheckFailed, check_aspp, check_aspp_pooling


class SimplePooling(ASPPPooling):
    """torchvision's forward: every module in turn, so BN fails on a batch of one in training."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        for module in self:
            x = module(x)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class SquarePooling(ASPPPooling):
    """Upsamples to (H, H) instead of (H, W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.shape[-2]
        y = super().forward(x)
        return F.interpolate(y[..., :1, :1], size=(h, h), mode="bilinear", align_corners=False)


class MaxPooling(ASPPPooling):
    """Global max pooling instead of average pooling (same parameters)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels)
        self[0] = nn.AdaptiveMaxPool2d(1)


class SkipBatchNormForOne(ASPPPooling):
    """Leaves BN out for a batch of one in train mode instead of using the running statistics."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1:
            pool, conv, _, relu = self
            y = relu(conv(pool(x)))
            return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return super().forward(x)


class NamedPooling(nn.Module):
    """Right computation, wrong submodule names."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn(self.conv(x.mean((2, 3), keepdim=True))))
        return y.expand(-1, -1, *x.shape[-2:])


class StubPooling(ASPPPooling):
    """The student copy's stub."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("Exercise: write this part, then run the check below.")


class NoPoolingASPP(nn.Module):
    """ASPP without the image-pooling branch."""

    def __init__(self, in_channels: int, out_channels: int, rates: tuple[int, ...]) -> None:
        super().__init__()
        one = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )
        self.convs = nn.ModuleList([one] + [ASPPConv(in_channels, out_channels, r) for r in rates])
        self.project = nn.Sequential(
            nn.Conv2d(len(self.convs) * out_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.Dropout(0.5),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([conv(x) for conv in self.convs], dim=1))


class NoProjectASPP(ASPP):
    """Forgets the projection: returns the concatenated branches."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([conv(x) for conv in self.convs], dim=1)


class ReversedASPP(ASPP):
    """Concatenates the branches in reverse order."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([conv(x) for conv in reversed(self.convs)], dim=1))


class StubASPP(ASPP):
    """The student copy's stub."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("Exercise: write this part, then run the check below.")


def test_check_aspp_pooling_passes_on_reference(capsys: pytest.CaptureFixture[str]) -> None:
    """The package's ASPPPooling passes and the check prints one success line."""
    check_aspp_pooling(ASPPPooling)
    out = capsys.readouterr().out
    assert out.startswith("✓ check_aspp_pooling: all 4 cases") and out.count("\n") == 1


@pytest.mark.parametrize(
    ("cls", "match"),
    [
        (SimplePooling, "case 'train mode, batch 1.*raised ValueError.*running_mean"),
        (
            SquarePooling,
            r"case 'eval mode, batch 1, non-square 7x12'.*expected shape \(1, 5, 7, 12",
        ),
        (MaxPooling, "case 'eval mode, batch 2, 9x9'.*values differ"),
        (SkipBatchNormForOne, "case 'train mode, batch 1, 13x9'.*values differ.*F.batch_norm"),
        (NamedPooling, r"names differ.*Missing: \['1.weight'.*unexpected: \['conv.weight'"),
    ],
)
def test_check_aspp_pooling_fails_on_wrong_code(cls: type, match: str) -> None:
    """Plausible mistakes raise CheckFailed naming the case (or the names) and a hint."""
    with pytest.raises(CheckFailed, match=match):
        check_aspp_pooling(cls)


def test_check_aspp_pooling_not_implemented() -> None:
    """The student stub gives the 'not implemented yet' message, not a traceback."""
    with pytest.raises(CheckFailed, match="check_aspp_pooling: not implemented yet"):
        check_aspp_pooling(StubPooling)


def test_check_aspp_pooling_rejects_an_instance() -> None:
    """Passing an instance instead of the class is explained."""
    with pytest.raises(CheckFailed, match="pass the class itself"):
        check_aspp_pooling(ASPPPooling(4, 2))


def test_check_aspp_passes_on_reference(capsys: pytest.CaptureFixture[str]) -> None:
    """The package's ASPP passes and the check prints one success line."""
    check_aspp(ASPP)
    out = capsys.readouterr().out
    assert out.startswith("✓ check_aspp: all 4 cases") and out.count("\n") == 1


@pytest.mark.parametrize(
    ("cls", "match"),
    [
        (NoPoolingASPP, r"names differ.*Missing: \['convs.4.1.weight'.*MyASPPPooling"),
        (NoProjectASPP, r"case 'eval mode, batch 2.*expected shape \(2, 4, 9, 11\), got \(2, 20"),
        (ReversedASPP, "case 'eval mode, batch 2, rates \\(1, 2, 3\\), 9x11'.*values differ"),
    ],
)
def test_check_aspp_fails_on_wrong_code(cls: type, match: str) -> None:
    """ASPP without pooling, without projection or with branches out of order is caught."""
    with pytest.raises(CheckFailed, match=match):
        check_aspp(cls)


def test_check_aspp_not_implemented() -> None:
    """The student stub gives the 'not implemented yet' message."""
    with pytest.raises(CheckFailed, match="check_aspp: not implemented yet"):
        check_aspp(StubASPP)
