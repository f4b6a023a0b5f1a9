"""Tests for deeplab_utils.separable: the atrous separable convolution."""

import pytest
import torch
import torch.nn.functional as F

from deeplab_utils import SeparableConv2d


def _randomize_bn(module: torch.nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)


@pytest.mark.parametrize("kernel_size", [1, 3, 5])
@pytest.mark.parametrize("dilation", [1, 2, 6])
@pytest.mark.parametrize("batch", [1, 2])
def test_shape_is_preserved(kernel_size: int, dilation: int, batch: int) -> None:
    """The output keeps the input's height and width for every kernel size and atrous rate."""
    conv = SeparableConv2d(4, 7, kernel_size, dilation=dilation)
    assert conv(torch.randn(batch, 4, 9, 11)).shape == (batch, 7, 9, 11)


@pytest.mark.parametrize("dilation", [1, 3])
def test_matches_functional_depthwise_then_pointwise(dilation: int) -> None:
    """In eval mode it equals F.conv2d(groups=C) -> batch_norm -> relu -> 1x1 F.conv2d."""
    conv = SeparableConv2d(4, 6, 3, dilation=dilation).eval()
    _randomize_bn(conv)
    x = torch.randn(2, 4, 10, 9)
    bn = conv.bn
    expected = F.conv2d(x, conv.depthwise.weight, padding=dilation, dilation=dilation, groups=4)
    expected = F.batch_norm(
        expected, bn.running_mean, bn.running_var, bn.weight, bn.bias, eps=bn.eps
    ).relu()
    expected = F.conv2d(expected, conv.pointwise.weight)
    torch.testing.assert_close(conv(x), expected)


def test_parameter_count_is_depthwise_plus_bn_plus_pointwise() -> None:
    """Parameters are C_in*k*k (depthwise) + 2*C_in (BN) + C_in*C_out (pointwise), no biases."""
    conv = SeparableConv2d(256, 256, 3)
    assert sum(p.numel() for p in conv.parameters()) == 256 * 9 + 2 * 256 + 256 * 256


def test_even_kernel_raises() -> None:
    """An even kernel, which has no 'same' padding, raises a ValueError naming it (it would
    shrink the output by a pixel, silently)."""
    with pytest.raises(ValueError, match="kernel_size must be odd .* got 4"):
        SeparableConv2d(4, 4, 4)
