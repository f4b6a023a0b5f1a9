"""Tests for deeplab_utils.aspp: ASPP against torchvision's implementation."""

import re

import pytest
import torch
from torchvision.models.segmentation.deeplabv3 import ASPP as TorchvisionASPP

from deeplab_utils import ASPP, ASPPPooling, aspp_rates, scaled_aspp_rates
from deeplab_utils.aspp import check_rates

IN_CHANNELS, OUT_CHANNELS = 16, 8


def _randomize_bn(module: torch.nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)


def _pair(rates: tuple[int, ...]) -> tuple[ASPP, TorchvisionASPP]:
    reference = TorchvisionASPP(IN_CHANNELS, list(rates), OUT_CHANNELS)
    _randomize_bn(reference)
    ours = ASPP(IN_CHANNELS, OUT_CHANNELS, rates)
    ours.load_state_dict(reference.state_dict())
    return ours, reference


def test_rates_follow_the_paper() -> None:
    """Rates are (6, 12, 18) at output stride 16 and doubled at 8 (paper, Sec. 4.1)."""
    assert aspp_rates(16) == (6, 12, 18)
    assert aspp_rates(8) == (12, 24, 36)


@pytest.mark.parametrize("output_stride", [4, 12, 32, True])
def test_bad_output_stride_raises(output_stride: int) -> None:
    """Output strides other than 8 and 16 raise a ValueError naming the value."""
    with pytest.raises(ValueError, match=f"output_stride must be 8 or 16, got {output_stride}"):
        aspp_rates(output_stride)


@pytest.mark.parametrize("rates", [(6, 12, 18), (12, 24, 36), (2, 4)])
def test_state_dict_matches_torchvision(rates: tuple[int, ...]) -> None:
    """Parameter and buffer names and shapes are exactly torchvision's, for any number of rates."""
    ours = ASPP(IN_CHANNELS, OUT_CHANNELS, rates).state_dict()
    reference = TorchvisionASPP(IN_CHANNELS, list(rates), OUT_CHANNELS).state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in reference.items()}


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("rates", [(6, 12, 18), (12, 24, 36)])
def test_eval_mode_equals_torchvision(batch: int, rates: tuple[int, ...]) -> None:
    """With the same weights, eval-mode outputs equal torchvision's ASPP bit for bit."""
    ours, reference = _pair(rates)
    x = torch.randn(batch, IN_CHANNELS, 9, 7)
    assert torch.equal(ours.eval()(x), reference.eval()(x))


def test_train_mode_equals_torchvision_for_batches_above_one() -> None:
    """In train mode with B > 1, outputs and updated running statistics equal torchvision's."""
    ours, reference = _pair((6, 12, 18))
    x = torch.randn(3, IN_CHANNELS, 6, 5)
    torch.manual_seed(1)  # the same dropout mask for both
    out = ours.train()(x)
    torch.manual_seed(1)
    expected = reference.train()(x)
    assert torch.equal(out, expected)
    for (name, a), b in zip(
        ours.state_dict().items(), reference.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("size", [(2, 3), (5, 5), (9, 7)])
def test_train_mode_works_with_one_image(size: tuple[int, int]) -> None:
    """Train mode with one image works (torchvision raises) and gradients reach every parameter."""
    aspp = ASPP(IN_CHANNELS, OUT_CHANNELS).train()
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        TorchvisionASPP(IN_CHANNELS, [6, 12, 18], OUT_CHANNELS).train()(torch.randn(1, 16, *size))
    out = aspp(torch.randn(1, IN_CHANNELS, *size))
    assert out.shape == (1, OUT_CHANNELS, *size)
    out.square().mean().backward()
    for name, p in aspp.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_pooling_with_one_image_uses_running_statistics_without_updating_them() -> None:
    """With B == 1 in train mode the pooling branch equals torchvision's eval-mode branch."""
    from torchvision.models.segmentation.deeplabv3 import ASPPPooling as TorchvisionPooling

    reference = TorchvisionPooling(IN_CHANNELS, OUT_CHANNELS)
    _randomize_bn(reference)
    ours = ASPPPooling(IN_CHANNELS, OUT_CHANNELS)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(1, IN_CHANNELS, 6, 4)
    out = ours.train()(x)
    torch.testing.assert_close(out, reference.eval()(x))
    for (name, a), b in zip(
        ours.state_dict().items(), reference.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name  # running statistics untouched


def test_separable_aspp_is_smaller_with_the_same_shapes() -> None:
    """separable=True keeps the output shape and has fewer parameters than the plain ASPP."""
    plain = ASPP(64, 32, (6, 12, 18))
    separable = ASPP(64, 32, (6, 12, 18), separable=True)
    x = torch.randn(2, 64, 9, 9)
    assert separable(x).shape == plain(x).shape == (2, 32, 9, 9)
    n_plain = sum(p.numel() for p in plain.parameters())
    n_separable = sum(p.numel() for p in separable.parameters())
    # Each 3x3 branch: 64*32*9 weights become 64*9 + 2*64 + 64*32.
    assert n_plain - n_separable == 3 * (64 * 32 * 9 - (64 * 9 + 2 * 64 + 64 * 32))


@pytest.mark.parametrize(
    ("output_stride", "image_size", "expected"),
    [
        # Hand-computed: round(r * image_size / 513), at least 1, at most the paper's r.
        (16, 96, (1, 2, 3)),  # 6 * 0.187 = 1.12, 12 * 0.187 = 2.25, 18 * 0.187 = 3.37
        (16, 256, (3, 6, 9)),  # 2.99, 5.99, 8.98
        (8, 96, (2, 4, 7)),  # 2.25, 4.49, 6.74
        (16, 32, (1, 1, 1)),  # 0.37, 0.75, 1.12: never below 1
        (16, 512, (6, 12, 18)),  # 5.99, 11.98, 17.96: the paper's crop size, rounded
        (16, 1024, (6, 12, 18)),  # larger images keep the paper's rates
        (8, 2000, (12, 24, 36)),
    ],
)
def test_scaled_aspp_rates(output_stride, image_size, expected):
    """The paper's rates in proportion to the image, never above the paper's, never below 1."""
    assert scaled_aspp_rates(output_stride, image_size) == expected


def test_scaled_aspp_rates_rejects_a_bad_output_stride():
    """An output stride other than 8 or 16 raises the ValueError of aspp_rates."""
    with pytest.raises(ValueError, match="output_stride must be 8 or 16, got 4"):
        scaled_aspp_rates(4, 96)


@pytest.mark.parametrize(
    ("rates", "length", "ok"),
    [
        ((1, 2), None, True),
        ([3], None, True),
        ((1, 2, 4), 3, True),
        ((1, 2), 3, False),
        ((), None, False),
        ((1, 0), None, False),
        ((1, True), None, False),
        ("12", None, False),
        (3, None, False),
    ],
)
def test_check_rates(rates, length, ok):
    """check_rates returns a tuple of positive ints (of the given length), else a ValueError
    naming the field, what it allows and the value."""
    if ok:
        assert check_rates(rates, length=length) == tuple(rates)
    else:
        with pytest.raises(
            ValueError, match=rf"^my_rates must be allowed, got {re.escape(repr(rates))}$"
        ):
            check_rates(rates, "my_rates", "allowed", length)
