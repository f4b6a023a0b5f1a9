"""Tests for deeplab_utils.decoder: the DeepLabv3+ decoder."""

import pytest
import torch
import torch.nn.functional as F

from deeplab_utils import Decoder, SeparableConv2d


def _randomize_bn(module: torch.nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)


def _bn_relu(x: torch.Tensor, bn: torch.nn.BatchNorm2d) -> torch.Tensor:
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, eps=bn.eps).relu()


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize(
    ("low", "high"), [((16, 16), (4, 4)), ((25, 33), (7, 9)), ((13, 17), (13, 17))]
)
@pytest.mark.parametrize("separable", [False, True])
def test_output_has_low_level_size(batch: int, low: tuple, high: tuple, separable: bool) -> None:
    """Logits are (B, num_classes, h, w) at the low-level size, for any ASPP output size."""
    decoder = Decoder(5, separable=separable)
    out = decoder(torch.randn(batch, 256, *high), torch.randn(batch, 256, *low))
    assert out.shape == (batch, 5, *low)


def test_structure_follows_the_paper() -> None:
    """1x1 conv to 48 channels (Table 1), two 3x3 convs of 256 (Table 2), 1x1 to classes."""
    decoder = Decoder(3, low_level_channels=64, aspp_channels=128)
    convs = [m for m in decoder.modules() if isinstance(m, torch.nn.Conv2d)]
    shapes = [(m.in_channels, m.out_channels, m.kernel_size) for m in convs]
    assert shapes == [
        (64, 48, (1, 1)),
        (128 + 48, 256, (3, 3)),
        (256, 256, (3, 3)),
        (256, 3, (1, 1)),
    ]


def test_separable_decoder_uses_separable_3x3_convs() -> None:
    """separable=True replaces both 3x3 convs with SeparableConv2d and has fewer parameters."""
    plain, separable = Decoder(3), Decoder(3, separable=True)
    assert sum(isinstance(m, SeparableConv2d) for m in separable.modules()) == 2
    n_plain = sum(p.numel() for p in plain.parameters())
    n_separable = sum(p.numel() for p in separable.parameters())
    assert n_separable < n_plain / 4


def test_matches_a_functional_reference() -> None:
    """In eval mode the output equals reduce -> upsample -> concat -> 2x(conv, BN, ReLU) -> 1x1."""
    decoder = Decoder(4, low_level_channels=8, aspp_channels=16).eval()
    _randomize_bn(decoder)
    aspp_out, low_level = torch.randn(2, 16, 3, 4), torch.randn(2, 8, 11, 13)
    reduce_conv, reduce_bn = decoder.reduce[0], decoder.reduce[1]
    low = _bn_relu(F.conv2d(low_level, reduce_conv.weight), reduce_bn)
    up = F.interpolate(aspp_out, size=(11, 13), mode="bilinear", align_corners=False)
    x = torch.cat([up, low], dim=1)
    for block in decoder.refine:
        x = _bn_relu(F.conv2d(x, block[0].weight, padding=1), block[1])
    expected = F.conv2d(x, decoder.classifier.weight, decoder.classifier.bias)
    with torch.no_grad():
        torch.testing.assert_close(decoder(aspp_out, low_level), expected)


def test_gradient_reaches_every_parameter_with_one_image() -> None:
    """In train mode with one image, every parameter receives a finite gradient."""
    decoder = Decoder(2, separable=True).train()
    decoder(torch.randn(1, 256, 3, 3), torch.randn(1, 256, 9, 9)).sum().backward()
    for name, p in decoder.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
