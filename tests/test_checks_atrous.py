"""Tests for the notebook-01 self-checks: check_atrous_conv2d and check_receptive_fields."""

import pytest
import torch
import torch.nn.functional as F

from deeplab_utils.checks import CheckFailed, check_atrous_conv2d, check_receptive_fields


def shifted_slices(x, weight, bias=None, dilation=1, padding=0):
    """A correct atrous convolution as a sum of shifted slices (like notebook 01)."""
    x = F.pad(x, (padding,) * 4)
    k_h, k_w = weight.shape[2:]
    h_out, w_out = x.shape[2] - dilation * (k_h - 1), x.shape[3] - dilation * (k_w - 1)
    out = 0
    for m in range(k_h):
        for n in range(k_w):
            patch = x[
                :, :, dilation * m : dilation * m + h_out, dilation * n : dilation * n + w_out
            ]
            out = out + torch.einsum("bchw,oc->bohw", patch, weight[:, :, m, n])
    return out if bias is None else out + bias.view(1, -1, 1, 1)


def square_kernels_only(x, weight, bias=None, dilation=1, padding=0):
    """Takes the kernel size from the last dimension for both directions."""
    k = weight.shape[-1]
    x = F.pad(x, (padding,) * 4)
    h_out, w_out = x.shape[2] - dilation * (k - 1), x.shape[3] - dilation * (k - 1)
    out = 0
    for m in range(k):
        for n in range(k):
            patch = x[
                :, :, dilation * m : dilation * m + h_out, dilation * n : dilation * n + w_out
            ]
            out = out + torch.einsum("bchw,oc->bohw", patch, weight[:, :, m, n])
    return out if bias is None else out + bias.view(1, -1, 1, 1)


def unfolded(x, weight, bias=None, dilation=1, padding=0):
    """A correct atrous convolution with unfold (im2col) and one matrix product."""
    k_h, k_w = weight.shape[2:]
    h_out = x.shape[2] + 2 * padding - dilation * (k_h - 1)
    w_out = x.shape[3] + 2 * padding - dilation * (k_w - 1)
    cols = F.unfold(x, (k_h, k_w), dilation=dilation, padding=padding)  # (B, C_in*kH*kW, L)
    out = (weight.flatten(1) @ cols).view(x.shape[0], -1, h_out, w_out)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


def one_by_one_per_tap(x, weight, bias=None, dilation=1, padding=0):
    """Shifted slices, each tap's channel mixing written as a 1x1 F.conv2d (notebook 01 calls
    it a 1x1 convolution)."""
    x = F.pad(x, (padding,) * 4)
    k_h, k_w = weight.shape[2:]
    h_out, w_out = x.shape[2] - dilation * (k_h - 1), x.shape[3] - dilation * (k_w - 1)
    out = 0
    for m in range(k_h):
        for n in range(k_w):
            top, left = dilation * m, dilation * n
            patch = x[:, :, top : top + h_out, left : left + w_out]
            out = out + F.conv2d(patch, weight[:, :, m : m + 1, n : n + 1])
    return out if bias is None else out + bias.view(1, -1, 1, 1)


def strided_windows(x, weight, bias=None, dilation=1, padding=0):
    """Another valid decision: every dilated window at once by Tensor.unfold (a view, not a
    convolution), the padding by a zero tensor, the bias first, one einsum for all the taps."""
    b, c_in, h, w = x.shape
    k_h, k_w = weight.shape[2:]
    padded = x.new_zeros(b, c_in, h + 2 * padding, w + 2 * padding)
    padded[:, :, padding : padding + h, padding : padding + w] = x
    span_h, span_w = dilation * (k_h - 1) + 1, dilation * (k_w - 1) + 1
    windows = padded.unfold(2, span_h, 1).unfold(3, span_w, 1)  # (B, C, H', W', span_h, span_w)
    taps = windows[..., ::dilation, ::dilation]  # (B, C, H', W', kH, kW)
    out = 0 if bias is None else bias.view(1, -1, 1, 1)
    return out + torch.einsum("bchwmn,ocmn->bohw", taps, weight)


def ignores_dilation(x, weight, bias=None, dilation=1, padding=0):
    return shifted_slices(x, weight, bias, 1, padding)


def forgets_bias(x, weight, bias=None, dilation=1, padding=0):
    return shifted_slices(x, weight, None, dilation, padding)


def always_same_padding(x, weight, bias=None, dilation=1, padding=0):
    """Pads dilation * (k - 1) // 2 whatever `padding` says."""
    return shifted_slices(x, weight, bias, dilation, dilation * (weight.shape[-1] - 1) // 2)


def one_line_conv2d(x, weight, bias=None, dilation=1, padding=0):
    """Delegates to PyTorch's own dilated convolution."""
    return F.conv2d(x, weight, bias, padding=padding, dilation=dilation)


def through_nn_conv2d(x, weight, bias=None, dilation=1, padding=0):
    """Delegates through a module: nn.Conv2d with the given weights."""
    c_out, c_in, k_h, k_w = weight.shape
    conv = torch.nn.Conv2d(c_in, c_out, (k_h, k_w), padding=padding, dilation=dilation)
    with torch.no_grad():
        conv.weight.copy_(weight)
        conv.bias.copy_(bias if bias is not None else torch.zeros(c_out))
    return conv(x)


def spread_kernel_conv2d(x, weight, bias=None, dilation=1, padding=0):
    """Spreads the kernel with zeros, then calls the builtin convolution (no dilation)."""
    c_out, c_in, k_h, k_w = weight.shape
    spread = weight.new_zeros(c_out, c_in, dilation * (k_h - 1) + 1, dilation * (k_w - 1) + 1)
    spread[:, :, ::dilation, ::dilation] = weight
    return torch.nn.functional.conv2d(x, spread, bias, padding=padding)


def good_receptive_fields(layers):
    field, jump, fields = 1, 1, []
    for kernel, stride, rate in layers:
        field += rate * (kernel - 1) * jump
        jump *= stride
        fields.append(field)
    return fields


def jump_includes_own_stride(layers):
    field, jump, fields = 1, 1, []
    for kernel, stride, rate in layers:
        jump *= stride
        field += rate * (kernel - 1) * jump
        fields.append(field)
    return fields


def forgets_rate(layers):
    return good_receptive_fields([(k, s, 1) for k, s, _ in layers])


def last_field_only(layers):
    return good_receptive_fields(layers)[-1]


@pytest.mark.parametrize("fn", [shifted_slices, one_by_one_per_tap, strided_windows])
def test_atrous_check_passes_on_correct_versions(fn, capsys):
    """The shifted-slices version (its channel mixing by einsum or by a 1x1 convolution) and
    all the windows at once by Tensor.unfold pass with one ✓ line and come back."""
    assert check_atrous_conv2d(fn) is fn
    assert capsys.readouterr().out.startswith("✓ check_atrous_conv2d: all 7 cases")


@pytest.mark.parametrize(
    ("fn", "case"),
    [
        (ignores_dilation, "rate 2, same padding"),
        (forgets_bias, "plain 3x3"),
        (always_same_padding, "rate 3, no padding"),
        (square_kernels_only, "non-square 3x5 kernel"),
    ],
)
def test_atrous_check_catches_wrong_versions(fn, case):
    """Ignoring the rate, forgetting the bias, ignoring `padding` and assuming square kernels
    each fail on the case that targets them."""
    with pytest.raises(CheckFailed, match=case):
        check_atrous_conv2d(fn)


def test_atrous_check_asks_before_it_points() -> None:
    """A wrong output size first gets a question about which rows keep every tap inside; the
    second hint points harder (the kernel's reach), still without the size formula."""
    with pytest.raises(CheckFailed) as first:
        check_atrous_conv2d(always_same_padding)
    assert "Hint: which output rows i keep every tap inside" in str(first.value)
    assert "More:" not in str(first.value)
    with pytest.raises(CheckFailed) as second:
        check_atrous_conv2d(always_same_padding)
    assert "More: a dilated kernel reaches dilation*(k - 1) pixels" in str(second.value)


@pytest.mark.parametrize(
    "fn",
    [F.conv2d, torch.conv2d, one_line_conv2d, through_nn_conv2d, spread_kernel_conv2d, unfolded],
)
def test_atrous_check_refuses_torch_convolution(fn):
    """An exercise "from scratch" refuses PyTorch's own convolution, however it is reached
    (F.conv2d, torch.conv2d, nn.Conv2d, the builtin on a zero-spread kernel), and F.unfold with
    dilation (it places the dilated taps, the exercise's point), naming the case."""
    with pytest.raises(CheckFailed, match=r"case 'plain 3x3.*PyTorch's own convolution"):
        check_atrous_conv2d(fn)


def test_receptive_fields_check_passes_and_matches_hand_values(capsys):
    """The recurrence gives hand-computed fields ([3, 5, 7] for three 3x3; [3, 7, 15] for
    rates 1, 2, 4) and passes."""
    assert good_receptive_fields([(3, 1, 1)] * 3) == [3, 5, 7]
    assert good_receptive_fields([(3, 1, 1), (3, 1, 2), (3, 1, 4)]) == [3, 7, 15]
    assert check_receptive_fields(good_receptive_fields) is good_receptive_fields
    assert capsys.readouterr().out.startswith("✓ check_receptive_fields: all 7 cases")


@pytest.mark.parametrize(
    ("fn", "case"),
    [
        (jump_includes_own_stride, r"a stride-2 layer first.*expected \[3, 7\], got \[5, 9\]"),
        (forgets_rate, "rates 1, 2, 4"),
        (last_field_only, "expected a list of 1 ints"),
    ],
)
def test_receptive_fields_check_catches_wrong_recurrences(fn, case):
    """Multiplying in a layer's own stride too early, forgetting the rate, or returning only
    the last field fails."""
    with pytest.raises(CheckFailed, match=case):
        check_receptive_fields(fn)


def _transposed(x, weight, bias=None, dilation=1, padding=0):
    """A dilated convolution as a transposed one: kernel flipped, channels swapped."""
    k_h, k_w = weight.shape[2:]
    pad_h, pad_w = dilation * (k_h - 1) - padding, dilation * (k_w - 1) - padding
    x = F.pad(x, (max(-pad_w, 0),) * 2 + (max(-pad_h, 0),) * 2)
    flipped = weight.flip(2, 3).transpose(0, 1)  # (C_in, C_out, kH, kW)
    return F.conv_transpose2d(
        x, flipped, bias, padding=(max(pad_h, 0), max(pad_w, 0)), dilation=dilation
    )


def _private(x, weight, bias=None, dilation=1, padding=0):
    """torch._convolution, what F.conv2d itself calls."""
    pad, rate = [padding, padding], [dilation, dilation]
    args = ([1, 1], pad, rate, False, [0, 0], 1, False, False, True, True)
    return torch._convolution(x, weight, bias, *args)


def _aten(x, weight, bias=None, dilation=1, padding=0):
    """The ATen operator, called through torch.ops."""
    pad, rate = [padding, padding], [dilation, dilation]
    return torch.ops.aten.convolution(x, weight, bias, [1, 1], pad, rate, False, [0, 0], 1)


def _im2col(x, weight, bias=None, dilation=1, padding=0):
    """F.unfold's own kernel, im2col, which places the dilated taps."""
    k_h, k_w = weight.shape[2:]
    cols = torch._C._nn.im2col(x, (k_h, k_w), (dilation,) * 2, (padding,) * 2, (1, 1))
    h = x.shape[2] + 2 * padding - dilation * (k_h - 1)
    out = (weight.flatten(1) @ cols).unflatten(2, (h, -1))
    return out if bias is None else out + bias.view(1, -1, 1, 1)


@pytest.mark.parametrize("fn", [_transposed, _private, _aten, _im2col])
def test_check_atrous_refuses_every_convolution_operator_of_torch(fn) -> None:
    """'From scratch' refuses torch's own convolution under any of its names (a transposed one,
    the private and ATen operators, im2col), not only F.conv2d and the package's version; each
    of these computes the right values, so only the refusal fails it."""
    assert torch.allclose(
        fn(torch.ones(1, 2, 9, 9), torch.ones(3, 2, 3, 3), dilation=2, padding=1),
        F.conv2d(torch.ones(1, 2, 9, 9), torch.ones(3, 2, 3, 3), dilation=2, padding=1),
    )
    with pytest.raises(CheckFailed, match="PyTorch's own convolution"):
        check_atrous_conv2d(fn)
