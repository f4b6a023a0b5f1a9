"""Tests for the notebook 04 self-checks: check_decoder and check_deeplabv3plus_forward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deeplab_utils import Decoder, DeepLabV3Plus
from deeplab_utils.checks import CheckFailed, check_decoder, check_deeplabv3plus_forward


def _decoder_with(forward):
    """A Decoder subclass (same parameter names) whose forward is replaced by ``forward``."""
    return type("WrongDecoder", (Decoder,), {"forward": forward})


def _fuse(self, x: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
    return self.classifier(self.refine(torch.cat([x, low], dim=1)))


def _scale_factor_4(self, aspp_out, low_level):
    low = self.reduce(low_level)
    x = F.interpolate(aspp_out, scale_factor=4, mode="bilinear", align_corners=False)
    return _fuse(self, x, low)


def _swapped_concat(self, aspp_out, low_level):
    low = self.reduce(low_level)
    x = F.interpolate(aspp_out, size=low.shape[-2:], mode="bilinear", align_corners=False)
    return self.classifier(self.refine(torch.cat([low, x], dim=1)))


def _align_corners(self, aspp_out, low_level):
    low = self.reduce(low_level)
    x = F.interpolate(aspp_out, size=low.shape[-2:], mode="bilinear", align_corners=True)
    return _fuse(self, x, low)


def _not_implemented(self, *args):
    raise NotImplementedError("Exercise: write this part, then run the check below.")


class _OneConvDecoder(Decoder):
    """The popular variant with a single 3x3 conv after the concatenation."""

    def __init__(self, num_classes: int, **kwargs) -> None:
        super().__init__(num_classes, **kwargs)
        conv = nn.Conv2d(kwargs["aspp_channels"] + 48, 256, 3, padding=1, bias=False)
        self.refine = nn.Sequential(nn.Sequential(conv, nn.BatchNorm2d(256), nn.ReLU()))


def test_check_decoder_passes_on_reference(capsys) -> None:
    """The package's own Decoder passes every case and a success line is printed."""
    check_decoder(Decoder)
    assert "✓ check_decoder" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("forward", "match"),
    [
        (_scale_factor_4, r"case '97x131 image.*raised RuntimeError.*not scale_factor=4"),
        (_swapped_concat, r"case '97x131 image.*values differ.*in that order"),
        (_align_corners, r"case '97x131 image.*values differ.*align_corners=False"),
    ],
)
def test_check_decoder_catches_wrong_forward(forward, match: str) -> None:
    """Plausible wrong forwards fail with a message naming the case and giving a hint."""
    with pytest.raises(CheckFailed, match=match):
        check_decoder(_decoder_with(forward))


def test_check_decoder_catches_one_conv_decoder() -> None:
    """A decoder with one 3x3 conv (not the paper's two, Table 2) fails, listing the names."""
    with pytest.raises(CheckFailed, match=r"missing \['refine\.1\.0\.weight'.*two 3x3 convs"):
        check_decoder(_OneConvDecoder)


def test_check_decoder_reports_not_implemented() -> None:
    """A decoder whose forward still raises NotImplementedError is reported as not written."""
    with pytest.raises(CheckFailed, match="not implemented yet"):
        check_decoder(_decoder_with(_not_implemented))


def test_check_decoder_rejects_instance() -> None:
    """Passing an instance instead of the class says to pass the class."""
    with pytest.raises(CheckFailed, match="pass the class itself"):
        check_decoder(Decoder(3))


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


def test_check_forward_passes_on_reference(capsys) -> None:
    """DeepLabV3Plus's own forward (as a class or function) passes every case."""
    check_deeplabv3plus_forward(DeepLabV3Plus)
    check_deeplabv3plus_forward(DeepLabV3Plus.forward)
    assert capsys.readouterr().out.count("✓ check_deeplabv3plus_forward") == 2


@pytest.mark.parametrize(
    ("fn", "match"),
    [
        (_forward_scale_factor, r"case '97x131 image.*expected shape \(1, 3, 97, 131\).*size="),
        (_forward_no_upsampling, r"case '97x131 image.*got \(1, 3, 25, 33\)"),
        (_forward_align_corners, r"case '97x131 image.*values differ.*align_corners=False"),
    ],
)
def test_check_forward_catches_wrong_forward(fn, match: str) -> None:
    """Plausible wrong forwards fail with a message naming the case and giving a hint."""
    with pytest.raises(CheckFailed, match=match):
        check_deeplabv3plus_forward(fn)


def test_check_forward_reports_not_implemented() -> None:
    """A forward that still raises NotImplementedError is reported as not written."""
    with pytest.raises(CheckFailed, match="not implemented yet"):
        check_deeplabv3plus_forward(_not_implemented)


def test_check_forward_rejects_non_callable() -> None:
    """Passing something that is not a function or class says what to pass."""
    with pytest.raises(CheckFailed, match="pass your forward function or class"):
        check_deeplabv3plus_forward(42)
