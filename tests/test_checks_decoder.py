"""Tests for the notebook 04 self-checks: check_decoder and check_deeplabv3plus_forward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deeplab_utils.checks import CheckFailed, check_decoder, check_deeplabv3plus_forward


def _conv_bn_relu(c_in: int, c_out: int, padding: int = 1, bias: bool = False) -> nn.Sequential:
    conv = nn.Conv2d(c_in, c_out, 3, padding=padding, bias=bias)
    return nn.Sequential(conv, nn.BatchNorm2d(c_out), nn.ReLU())


class GoodDecoder(nn.Module):
    """Notebook 04's solution: reduce to 48, upsample to the low-level size, concat, refine."""

    def __init__(self, num_classes, *, low_level_channels=256, aspp_channels=256) -> None:
        super().__init__()
        self.reduce = nn.Sequential(
            nn.Conv2d(low_level_channels, 48, 1, bias=False), nn.BatchNorm2d(48), nn.ReLU()
        )
        self.refine = nn.Sequential(
            _conv_bn_relu(aspp_channels + 48, 256, self.padding), _conv_bn_relu(256, 256)
        )
        self.classifier = nn.Conv2d(256, num_classes, 1)

    padding = 1

    def forward(self, aspp_out, low_level):
        low = self.reduce(low_level)
        x = F.interpolate(aspp_out, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.classifier(self.refine(torch.cat([x, low], dim=1)))


def _decoder_with(forward):
    """A GoodDecoder subclass (same parameter names) whose forward is replaced by ``forward``."""
    return type("WrongDecoder", (GoodDecoder,), {"forward": forward})


def _fuse(self, x: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
    return self.classifier(self.refine(torch.cat([x, low], dim=1)))


def _scale_factor_4(self, aspp_out, low_level):
    low = self.reduce(low_level)
    x = F.interpolate(aspp_out, scale_factor=4, mode="bilinear", align_corners=False)
    return _fuse(self, x, low)


def _size_before_reduce(self, aspp_out, low_level):
    """Another valid decision: the size read from the low-level input before its reduction,
    the ASPP output resized first, the two joined along dimension -3."""
    h, w = low_level.shape[2], low_level.shape[3]
    x = F.interpolate(aspp_out, size=(h, w), mode="bilinear", align_corners=False)
    return self.classifier(self.refine(torch.cat((x, self.reduce(low_level)), dim=-3)))


def _low_level_resized_down(self, aspp_out, low_level):
    """Resizes the low-level features down to the ASPP size instead of the ASPP output up."""
    low = F.interpolate(self.reduce(low_level), size=aspp_out.shape[-2:], mode="bilinear")
    return _fuse(self, aspp_out, low)


def _swapped_concat(self, aspp_out, low_level):
    low = self.reduce(low_level)
    x = F.interpolate(aspp_out, size=low.shape[-2:], mode="bilinear", align_corners=False)
    return self.classifier(self.refine(torch.cat([low, x], dim=1)))


def _align_corners(self, aspp_out, low_level):
    low = self.reduce(low_level)
    x = F.interpolate(aspp_out, size=low.shape[-2:], mode="bilinear", align_corners=True)
    return _fuse(self, x, low)


class _OneConvDecoder(GoodDecoder):
    """The popular variant with a single 3x3 conv after the concatenation."""

    def __init__(self, num_classes: int, **kwargs) -> None:
        super().__init__(num_classes, **kwargs)
        self.refine = nn.Sequential(_conv_bn_relu(kwargs["aspp_channels"] + 48, 256))


class _NoReduction(GoodDecoder):
    """Concatenates all 256 low-level channels instead of reducing them to 48."""

    def __init__(self, num_classes, *, low_level_channels=256, aspp_channels=256) -> None:
        super().__init__(num_classes, low_level_channels=low_level_channels, aspp_channels=0)
        self.reduce = nn.Identity()
        self.refine[0] = _conv_bn_relu(aspp_channels + low_level_channels, 256)


class _NoPadding(GoodDecoder):
    """Leaves the first refining 3x3 conv without padding: the map shrinks by 2."""

    padding = 0


class _BiasBeforeBN(GoodDecoder):
    """Keeps a bias in every conv that BN follows (harmless: BN removes a constant shift)."""

    def __init__(self, num_classes, *, low_level_channels=256, aspp_channels=256) -> None:
        super().__init__(
            num_classes, low_level_channels=low_level_channels, aspp_channels=aspp_channels
        )
        self.reduce[0] = nn.Conv2d(low_level_channels, 48, 1, bias=True)
        self.refine = nn.Sequential(
            _conv_bn_relu(aspp_channels + 48, 256, bias=True), _conv_bn_relu(256, 256, bias=True)
        )


class _ClassifierWithoutBias(GoodDecoder):
    def __init__(self, num_classes, **kwargs) -> None:
        super().__init__(num_classes, **kwargs)
        self.classifier = nn.Conv2d(256, num_classes, 1, bias=False)


@pytest.mark.parametrize(
    "cls",
    [
        GoodDecoder,
        _decoder_with(_swapped_concat),
        _BiasBeforeBN,
        _decoder_with(_size_before_reduce),
    ],
    ids=["ASPP first", "low-level first", "biases before BN", "size before reduce"],
)
def test_check_decoder_passes_and_returns_the_class(cls, capsys) -> None:
    """A correct decoder passes every case, a success line is printed, the class comes back;
    the order of the concatenation and the biases before a BN are the learner's choice
    (VainF's decoder puts low-level first)."""
    assert check_decoder(cls) is cls
    assert "✓ check_decoder: all 5 cases" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("forward", "match"),
    [
        (_scale_factor_4, r"case '97x131 image.*raised RuntimeError.*exactly what size"),
        (
            _low_level_resized_down,
            r"case '97x131 image.*expected shape \(2, 3, 25, 33\), got \(2, 3, 7, 9",
        ),
        (_align_corners, r"case '97x131 image.*values differ.*align_corners=False"),
    ],
)
def test_check_decoder_catches_wrong_forward(forward, match: str) -> None:
    """Plausible wrong forwards fail with a message naming the case and giving a hint."""
    with pytest.raises(CheckFailed, match=match):
        check_decoder(_decoder_with(forward))


@pytest.mark.parametrize(
    ("cls", "match"),
    [
        (_OneConvDecoder, r"missing \['refine\.1\.0\.weight'.*two conv-BN-ReLU units"),
        (_NoReduction, r"missing \['reduce\.0\.weight'"),
        (_ClassifierWithoutBias, r"missing \['classifier\.bias'\].*with a bias"),
        (_NoPadding, r"case '97x131 image.*expected shape \(2, 3, 25, 33\), got \(2, 3, 23, 31"),
    ],
)
def test_check_decoder_catches_wrong_init(cls, match: str) -> None:
    """A decoder with one 3x3 conv (not the paper's two, Table 2), no 48-channel reduction, a
    classifier without bias, or an unpadded 3x3 conv fails."""
    with pytest.raises(CheckFailed, match=match):
        check_decoder(cls)


def test_check_decoder_rejects_instance() -> None:
    """Passing an instance instead of the class says to pass the class."""
    with pytest.raises(CheckFailed, match="pass the class itself"):
        check_decoder(GoodDecoder(3))


def _upsample(logits: torch.Tensor, x: torch.Tensor, **kwargs) -> torch.Tensor:
    return F.interpolate(logits, **kwargs, mode="bilinear", align_corners=False)


def _decoder_logits(model, x):
    features = model.backbone(x)
    return model.decoder(model.aspp(features["out"]), features["low_level"])  # (B, K, H/4, W/4)


def _forward_scale_factor(model, x):
    return _upsample(_decoder_logits(model, x), x, scale_factor=4)


def _forward_no_upsampling(model, x):
    return _decoder_logits(model, x)


def _forward_align_corners(model, x):
    logits = _decoder_logits(model, x)
    return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=True)


def _right_forward(self, x):
    return _upsample(_decoder_logits(self, x), x, size=x.shape[-2:])


def test_check_forward_passes_and_returns_what_it_was_given(capsys) -> None:
    """A correct forward, as a function or as a class's method, passes every case."""
    assert check_deeplabv3plus_forward(_right_forward) is _right_forward
    cls = type("MyDeepLabV3Plus", (nn.Module,), {"forward": _right_forward})
    assert check_deeplabv3plus_forward(cls) is cls
    assert capsys.readouterr().out.count("✓ check_deeplabv3plus_forward") == 2


@pytest.mark.parametrize(
    ("fn", "match"),
    [
        (_forward_scale_factor, r"case '97x131 image.*expected shape \(1, 3, 97, 131\).*exact"),
        (_forward_no_upsampling, r"case '97x131 image.*got \(1, 3, 25, 33\)"),
        (_forward_align_corners, r"case '97x131 image.*values differ.*align_corners=False"),
    ],
)
def test_check_forward_catches_wrong_forward(fn, match: str) -> None:
    """Plausible wrong forwards fail with a message naming the case and giving a hint."""
    with pytest.raises(CheckFailed, match=match):
        check_deeplabv3plus_forward(fn)


def test_check_forward_rejects_non_callable() -> None:
    """Passing something that is not a function or class says what to pass."""
    with pytest.raises(CheckFailed, match="pass your forward function, or your class"):
        check_deeplabv3plus_forward(42)


@pytest.mark.parametrize(
    "cls",
    [GoodDecoder, _BiasBeforeBN, type("LowFirst", (GoodDecoder,), {"forward": _swapped_concat})],
    ids=["reference-like", "bias-before-BN", "low-level-first"],
)
def test_load_reference_weights_makes_every_accepted_decoder_equal_the_package(cls) -> None:
    """The cell after the check (notebook 04) loads the package's weights with
    load_reference_weights: every decoder the check accepts then computes the package's
    output, in eval and train mode, so the notebook's comparison holds for each choice."""
    from deeplab_utils import Decoder
    from deeplab_utils.checks import load_reference_weights

    gen = torch.Generator().manual_seed(0)
    aspp_out, low = torch.randn(2, 256, 7, 9, generator=gen), torch.randn(2, 256, 25, 33)
    for train in (False, True):
        reference = Decoder(5).train(train)
        mine = load_reference_weights(cls(5).train(train), reference, aspp_out, low)
        with torch.no_grad():
            torch.testing.assert_close(mine(aspp_out, low), reference(aspp_out, low))
