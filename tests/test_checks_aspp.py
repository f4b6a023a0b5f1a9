"""Tests for the notebook 02 self-checks: check_aspp_pooling and check_aspp."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deeplab_utils.checks import CheckFailed, check_aspp, check_aspp_pooling

# --- an image-pooling branch written out as notebook 02's solution, and wrong variants ---


class GoodPooling(nn.Sequential):
    """Pool, 1x1 conv, BN (running statistics for a batch of one in training), ReLU, upsample."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pool, conv, bn, relu = self
        y = conv(pool(x))
        if self.training and y.shape[0] == 1:
            y = F.batch_norm(
                y, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False, eps=bn.eps
            )
        else:
            y = bn(y)
        return F.interpolate(relu(y), size=size, mode="bilinear", align_corners=False)


class ManualEvalPooling(GoodPooling):
    """Another valid decision: eval mode's formula written out with the running statistics (no
    F.batch_norm), the size read at the end, and a 1x1 map broadcast to (H, W) by expand (what
    bilinear upsampling of a single value gives)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool, conv, bn, relu = self
        y = conv(pool(x))  # (B, C_out, 1, 1)
        if self.training and len(y) == 1:
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            y = (y - bn.running_mean[:, None, None]) * scale[:, None, None] + bn.bias[:, None, None]
        else:
            y = bn(y)
        return relu(y).expand(-1, -1, x.shape[2], x.shape[3])


class RestoredModePooling(GoodPooling):
    """Another valid decision: for a batch of one, the BN put in eval mode for that call and
    back in train mode after it (every attribute left as it was)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool, conv, bn, relu = self
        y = conv(pool(x))
        if self.training and len(y) == 1:
            bn.eval()
            y = bn(y)
            bn.train()
        else:
            y = bn(y)
        return F.interpolate(relu(y), size=x.shape[-2:], mode="bilinear", align_corners=False)


class SimplePooling(GoodPooling):
    """torchvision's forward: every module in turn, so BN fails on a batch of one in training."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        for module in self:
            x = module(x)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class SquarePooling(GoodPooling):
    """Upsamples to (H, H) instead of (H, W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.shape[-2]
        y = super().forward(x)
        return F.interpolate(y[..., :1, :1], size=(h, h), mode="bilinear", align_corners=False)


class MaxPooling(GoodPooling):
    """Global max pooling instead of average pooling (same parameters)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels)
        self[0] = nn.AdaptiveMaxPool2d(1)


class NoReluInEval(GoodPooling):
    """Leaves the ReLU out in eval mode: the shapes are right, the values are not."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return super().forward(x)
        pool, conv, bn, _ = self
        return F.interpolate(bn(conv(pool(x))), size=x.shape[-2:], mode="bilinear")


class SkipBatchNormForOne(GoodPooling):
    """Leaves BN out for a batch of one in train mode instead of using the running statistics."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1:
            pool, conv, _, relu = self
            y = relu(conv(pool(x)))
            return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return super().forward(x)


class StickyEvalPooling(GoodPooling):
    """Switches its BN to eval mode for a batch of one and never back: right for that call,
    wrong for every later batch of several images."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool, conv, bn, relu = self
        if self.training and x.shape[0] == 1:
            bn.eval()
        y = relu(bn(conv(pool(x))))
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


class RememberedBatchOfOne(GoodPooling):
    """Remembers that it once saw a batch of one and uses the running statistics from then on
    (the modes stay right, so only a later call with a larger batch shows it)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool, conv, bn, relu = self
        y = conv(pool(x))
        self.saw_one = getattr(self, "saw_one", False) or (self.training and x.shape[0] == 1)
        if self.saw_one:
            y = F.batch_norm(
                y, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False, eps=bn.eps
            )
        else:
            y = bn(y)
        return F.interpolate(relu(y), size=x.shape[-2:], mode="bilinear", align_corners=False)


class ModuleEvalPooling(GoodPooling):
    """Switches the whole module to eval mode for a batch of one and never back."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1:
            self.eval()
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


class BiasPooling(GoodPooling):
    """Keeps a bias in the conv that BN follows (harmless: BN removes a constant shift)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels)
        self[1] = nn.Conv2d(in_channels, out_channels, 1, bias=True)


@pytest.mark.parametrize("cls", [GoodPooling, BiasPooling, ManualEvalPooling, RestoredModePooling])
def test_check_aspp_pooling_passes_and_returns_the_class(cls, capsys) -> None:
    """A correct pooling branch passes, with or without a bias before its BN, whichever way it
    computes eval mode's normalisation (a mode switched for one call and back included) and the
    upsampling; the check prints one line and hands the class back."""
    assert check_aspp_pooling(cls) is cls
    out = capsys.readouterr().out
    assert out.startswith("✓ check_aspp_pooling: all 5 cases") and out.count("\n") == 1


@pytest.mark.parametrize(
    ("cls", "match"),
    [
        (
            SimplePooling,
            "case 'train mode, batch 1.*raised ValueError.*what would eval mode compute",
        ),
        (
            SquarePooling,
            r"case 'eval mode, batch 1, non-square 7x12'.*expected shape \(1, 5, 7, 12.*"
            "follow the shapes",
        ),
        (MaxPooling, "case 'eval mode, batch 2, 9x9'.*values differ"),
        (
            NoReluInEval,
            r"case 'eval mode, batch 2, 9x9'.*values differ.*pool -> conv -> BN -> ReLU",
        ),
        (
            SkipBatchNormForOne,
            "case 'train mode, batch 1, 13x9'.*values differ.*what would eval mode",
        ),
        (StickyEvalPooling, r"case 'train mode, batch 1, 13x9'.*its BN in eval mode"),
        (RememberedBatchOfOne, r"case 'train mode, one module: batch 1, then batch 3 \(call 2"),
        (ModuleEvalPooling, r"case 'train mode, batch 1, 13x9'.*module is in eval mode"),
        (NamedPooling, r"differ.*: missing \['1.weight'.*; unexpected \['conv.weight'"),
    ],
)
def test_check_aspp_pooling_fails_on_wrong_code(cls: type, match: str) -> None:
    """Plausible mistakes raise CheckFailed naming the case (or the names) and a hint; the
    batch-of-one fix that leaves the BN in eval mode is caught by the second call."""
    with pytest.raises(CheckFailed, match=match):
        check_aspp_pooling(cls)


def test_check_aspp_pooling_full_hint_on_request() -> None:
    """hint=True shows the second hint (the idea of batch norm's functional form, not the call)
    on the first failure."""
    with pytest.raises(CheckFailed, match=r"More: the functional form of batch norm .* takes"):
        check_aspp_pooling(SkipBatchNormForOne, hint=True)


def test_check_aspp_pooling_rejects_an_instance() -> None:
    """Passing an instance instead of the class is explained."""
    with pytest.raises(CheckFailed, match="pass the class itself"):
        check_aspp_pooling(GoodPooling(4, 2))


# --- ASPP written out as notebook 02's solution (__init__ and forward), and wrong variants ---


def _branch(conv: nn.Conv2d, channels: int) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm2d(channels), nn.ReLU())


class GoodASPP(nn.Module):
    def __init__(self, in_channels, out_channels, rates, dropout=0.5, *, padding=None, bias=False):
        super().__init__()
        branches = [_branch(nn.Conv2d(in_channels, out_channels, 1, bias=bias), out_channels)]
        for r in rates:
            pad = r if padding is None else padding
            conv = nn.Conv2d(in_channels, out_channels, 3, padding=pad, dilation=r, bias=bias)
            branches.append(_branch(conv, out_channels))
        branches.append(GoodPooling(in_channels, out_channels))
        self.convs = nn.ModuleList(branches)
        self.project = nn.Sequential(
            nn.Conv2d(self._width(out_channels), out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.Dropout(dropout),
        )

    def _width(self, out_channels: int) -> int:
        return len(self.convs) * out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([conv(x) for conv in self.convs], dim=1))


class CountedASPP(GoodASPP):
    """Another valid decision: the width counted from the rates, the branches joined along
    dimension -3 (the channels, counted from the end)."""

    def __init__(self, in_channels, out_channels, rates, dropout=0.5):
        self.rates = tuple(rates)
        super().__init__(in_channels, out_channels, rates, dropout)

    def _width(self, out_channels: int) -> int:
        return (len(self.rates) + 2) * out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.convs], dim=-3))


class StackedASPP(GoodASPP):
    """Another valid decision: the branches stacked on a new axis, then flattened into the
    channels in branch order (the same tensor as concatenating them)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.stack([conv(x) for conv in self.convs], dim=1).flatten(1, 2))


class WidthConcatASPP(GoodASPP):
    """Joins the branches side by side along the width instead of the channels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([conv(x) for conv in self.convs], dim=3))


class FiveBranchesASPP(GoodASPP):
    """Hard-codes the projection's input as 5 branches' channels."""

    def _width(self, out_channels: int) -> int:
        return 5 * out_channels


class PaddingOneASPP(GoodASPP):
    """Pads every atrous branch by 1, whatever its rate."""

    def __init__(self, in_channels, out_channels, rates, dropout=0.5):
        super().__init__(in_channels, out_channels, rates, dropout, padding=1)


class BiasASPP(GoodASPP):
    """Keeps a bias in the convs that BN follows (harmless: BN removes a constant shift)."""

    def __init__(self, in_channels, out_channels, rates, dropout=0.5):
        super().__init__(in_channels, out_channels, rates, dropout, bias=True)


class FixedDropoutASPP(GoodASPP):
    """Ignores the dropout it is given."""

    def __init__(self, in_channels, out_channels, rates, dropout=0.5):
        super().__init__(in_channels, out_channels, rates, 0.5)


class NoPoolingASPP(GoodASPP):
    """ASPP without the image-pooling branch."""

    def __init__(self, in_channels, out_channels, rates, dropout=0.5):
        super().__init__(in_channels, out_channels, rates, dropout)
        self.convs = self.convs[:-1]


class NoProjectASPP(GoodASPP):
    """Forgets the projection: returns the concatenated branches."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([conv(x) for conv in self.convs], dim=1)


class ReversedASPP(GoodASPP):
    """Concatenates the branches in reverse order."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([conv(x) for conv in reversed(self.convs)], dim=1))


@pytest.mark.parametrize("cls", [GoodASPP, BiasASPP, CountedASPP, StackedASPP])
def test_check_aspp_passes_and_returns_the_class(cls, capsys) -> None:
    """A correct ASPP passes, with or without biases in the convs that BN follows, however it
    counts the projection's width and joins the branches along the channels (the text leaves
    these to the learner); the check prints one line and hands the class back."""
    assert check_aspp(cls) is cls
    out = capsys.readouterr().out
    assert out.startswith("✓ check_aspp: all 6 cases") and out.count("\n") == 1


@pytest.mark.parametrize(
    ("cls", "match"),
    [
        (NoPoolingASPP, r"differ.*: missing \['convs.4.1.weight'"),
        (
            FiveBranchesASPP,
            r"shapes \['project.0.weight: \(3, 15, 1, 1\) vs expected \(3, 12, 1, 1\)",
        ),
        (
            PaddingOneASPP,
            "case 'eval mode, batch 2, rates.*raised RuntimeError.*returns \\(B, C_out, H, W\\)",
        ),
        (FixedDropoutASPP, r"case 'train mode, dropout=0.1.*values differ.*\[0\.5\]"),
        (NoProjectASPP, r"case 'eval mode, batch 2.*expected shape \(2, 4, 9, 11\), got \(2, 20"),
        (ReversedASPP, r"case 'eval mode, batch 2, rates \(1, 2, 3\), 9x11'.*values differ"),
        (WidthConcatASPP, r"case 'eval mode, batch 2, rates.*raised RuntimeError.*which dimension"),
    ],
)
def test_check_aspp_fails_on_wrong_code(cls: type, match: str) -> None:
    """ASPP without pooling, a hard-coded projection width, the wrong padding,
    a fixed dropout, no projection, or branches out of order is caught."""
    with pytest.raises(CheckFailed, match=match):
        check_aspp(cls)


@pytest.mark.parametrize("cls", [GoodASPP, BiasASPP], ids=["no-bias", "bias-before-BN"])
def test_load_reference_weights_makes_an_accepted_aspp_equal_the_package(cls) -> None:
    """Notebook 02's last cell loads the package's ASPP weights into the learner's with
    load_reference_weights: a bias kept before BN (which the check accepts) is set to 0, so the
    outputs match in eval mode too, where BN's running statistics would not remove it."""
    from deeplab_utils import ASPP
    from deeplab_utils.checks import load_reference_weights

    reference = ASPP(16, 8, (1, 2, 3))
    x = torch.randn(2, 16, 9, 11)
    reference(x)  # update BN's running statistics, so BN is not the identity in eval mode
    mine = load_reference_weights(cls(16, 8, (1, 2, 3)).eval(), reference.eval())
    with torch.no_grad():
        torch.testing.assert_close(mine(x), reference(x))
