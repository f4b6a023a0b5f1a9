"""Tests for deeplab_utils.atrous: atrous convolution and receptive fields."""

import pytest
import torch
import torch.nn.functional as F

from deeplab_utils.atrous import atrous_conv2d, receptive_field, receptive_fields


@pytest.mark.parametrize("dilation", [1, 2, 3, (2, 3)])
@pytest.mark.parametrize("kernel", [1, 3, (3, 5)])
@pytest.mark.parametrize("batch", [1, 2])
def test_matches_f_conv2d(dilation, kernel, batch):
    """atrous_conv2d equals F.conv2d with the same dilation on odd-sized inputs."""
    k_h, k_w = (kernel, kernel) if isinstance(kernel, int) else kernel
    x = torch.randn(batch, 3, 13, 17, dtype=torch.float64)
    w = torch.randn(4, 3, k_h, k_w, dtype=torch.float64)
    b = torch.randn(4, dtype=torch.float64)
    d_h, d_w = (dilation, dilation) if isinstance(dilation, int) else dilation
    padding = (d_h * (k_h - 1) // 2, d_w * (k_w - 1) // 2)
    ours = atrous_conv2d(x, w, b, dilation=dilation, padding=padding)
    ref = F.conv2d(x, w, b, padding=padding, dilation=dilation)
    torch.testing.assert_close(ours, ref)


def test_no_padding_shrinks_by_dilated_extent():
    """Without padding, a 3x3 kernel at rate 2 removes 2 * 2 pixels from each dimension."""
    x = torch.randn(1, 2, 11, 9)
    w = torch.randn(5, 2, 3, 3)
    out = atrous_conv2d(x, w, dilation=2)
    assert out.shape == (1, 5, 7, 5)
    torch.testing.assert_close(out, F.conv2d(x, w, dilation=2))


def test_hand_computed_example():
    """A single 2x1 kernel at rate 2 adds each pixel to the one two rows below it."""
    x = torch.arange(12.0).view(1, 1, 4, 3)
    w = torch.ones(1, 1, 2, 1)
    out = atrous_conv2d(x, w, dilation=2)
    expected = torch.tensor([[[[0.0 + 6, 1 + 7, 2 + 8], [3 + 9, 4 + 10, 5 + 11]]]])
    torch.testing.assert_close(out, expected)


def test_gradients_match_f_conv2d():
    """Gradients with respect to input and weight equal those of F.conv2d."""
    x = torch.randn(2, 3, 9, 10, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    atrous_conv2d(x, w, dilation=3, padding=3).square().sum().backward()
    gx, gw = x.grad.clone(), w.grad.clone()
    x.grad = w.grad = None
    F.conv2d(x, w, dilation=3, padding=3).square().sum().backward()
    torch.testing.assert_close(gx, x.grad)
    torch.testing.assert_close(gw, w.grad)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"x": torch.zeros(3, 8, 8)}, r"\(3, 8, 8\)"),
        ({"weight": torch.zeros(2, 3, 3)}, r"\(2, 3, 3\)"),
        ({"weight": torch.zeros(2, 4, 3, 3)}, r"\(1, 3, 8, 8\) and \(2, 4, 3, 3\)"),
        ({"dilation": 5}, r"rate \(5, 5\) spans more than the padded input \(8, 8\)"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    """Bad shapes and a kernel wider than the input raise ValueError naming the shapes."""
    args = {"x": torch.zeros(1, 3, 8, 8), "weight": torch.zeros(2, 3, 3, 3)} | kwargs
    with pytest.raises(ValueError, match=match):
        atrous_conv2d(**args)


def test_receptive_field_of_dilated_stack():
    """Three 3x3 convs with rates 1, 2, 4 see 3, 7 and 15 pixels (hand-computed)."""
    assert receptive_fields([(3, 1, 1), (3, 1, 2), (3, 1, 4)]) == [3, 7, 15]


def test_receptive_field_of_resnet_stem():
    """ResNet's 7x7/2 conv then 3x3/2 max-pool see 7 and then 7 + 2 * 2 = 11 pixels."""
    assert receptive_field([(7, 2, 1), (3, 2, 1)]) == 11


def test_receptive_field_matches_gradient_support():
    """The receptive field equals the support of an output pixel's gradient in the input."""
    layers = [(3, 1, 1), (3, 2, 1), (3, 1, 2), (1, 1, 1)]
    x = torch.zeros(1, 1, 64, 64, requires_grad=True)
    y = x
    for kernel, stride, dilation in layers:
        y = F.conv2d(y, torch.ones(1, 1, kernel, kernel), stride=stride, dilation=dilation)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    rows = x.grad[0, 0].abs().sum(dim=1).nonzero()
    assert rows.max() - rows.min() + 1 == receptive_field(layers)


def test_empty_stack_sees_one_pixel():
    """No layers: each output is its own input pixel."""
    assert receptive_field([]) == 1
