"""Tests for deeplab_utils.backbone: our ResNet-50 against torchvision's."""

import math
from pathlib import Path

import pytest
import torch
from torchvision.models import resnet18, resnet50
from torchvision.models._utils import IntermediateLayerGetter

from deeplab_utils import ResNet50Backbone

# torchvision's replace_stride_with_dilation per output stride (its segmentation models' usage).
DILATION = {32: [False, False, False], 16: [False, False, True], 8: [False, True, True]}


def _torchvision_resnet50(output_stride: int) -> torch.nn.Module:
    model = resnet50(replace_stride_with_dilation=DILATION[output_stride])
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):  # non-trivial statistics, so BN is tested too
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    return model.eval()


@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_names_and_shapes_match_torchvision(output_stride: int) -> None:
    """Every parameter and buffer has torchvision's name and shape (its fc layer aside)."""
    ours = ResNet50Backbone(output_stride=output_stride).state_dict()
    reference = {k: v for k, v in resnet50().state_dict().items() if not k.startswith("fc.")}
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in reference.items()}


@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_strides_and_dilations_match_torchvision(output_stride: int) -> None:
    """Every conv has the stride, dilation and padding of torchvision's dilated ResNet-50."""
    reference = dict(_torchvision_resnet50(output_stride).named_modules())
    for name, m in ResNet50Backbone(output_stride=output_stride).named_modules():
        if isinstance(m, torch.nn.Conv2d):
            ref = reference[name]
            assert (m.stride, m.dilation, m.padding) == (ref.stride, ref.dilation, ref.padding), (
                name
            )


@pytest.mark.parametrize("output_stride", [8, 16])
def test_features_equal_torchvision_bit_for_bit(output_stride: int) -> None:
    """With torchvision's weights, layer1 and layer4 outputs equal torchvision's exactly."""
    reference = _torchvision_resnet50(output_stride)
    ours = ResNet50Backbone(output_stride=output_stride).eval()
    ours.load_torchvision_state_dict(reference.state_dict())
    getter = IntermediateLayerGetter(reference, {"layer1": "low_level", "layer4": "out"})
    x = torch.randn(1, 3, 65, 65)
    with torch.no_grad():
        features, expected = ours(x), getter(x)
    assert torch.equal(features["low_level"], expected["low_level"])
    assert torch.equal(features["out"], expected["out"])


@pytest.mark.parametrize("output_stride", [8, 16, 32])
@pytest.mark.parametrize(("batch", "height", "width"), [(1, 64, 64), (2, 97, 131)])
def test_feature_shapes(output_stride: int, batch: int, height: int, width: int) -> None:
    """Features are (B, 256, ceil(H/4), ceil(W/4)) and (B, 2048, ceil(H/OS), ceil(W/OS))."""
    backbone = ResNet50Backbone(output_stride=output_stride).eval()
    with torch.no_grad():
        features = backbone(torch.randn(batch, 3, height, width))
    assert features["low_level"].shape == (batch, 256, math.ceil(height / 4), math.ceil(width / 4))
    assert features["out"].shape == (
        batch,
        2048,
        math.ceil(height / output_stride),
        math.ceil(width / output_stride),
    )


def test_loading_a_resnet18_state_dict_lists_the_problem() -> None:
    """A resnet18 state dict raises a ValueError listing missing keys and shape mismatches."""
    with pytest.raises(ValueError, match=r"missing keys \[.*layer1\.0\.conv3\.weight") as info:
        ResNet50Backbone().load_torchvision_state_dict(resnet18().state_dict())
    assert "shape mismatches" in str(info.value)


def test_unexpected_keys_are_listed() -> None:
    """An extra tensor that is not part of ResNet-50 raises a ValueError naming it."""
    state = {k: v for k, v in resnet50().state_dict().items()}
    state["head.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"1 unexpected keys \[head\.weight\]"):
        ResNet50Backbone().load_torchvision_state_dict(state)


def test_load_imagenet_weights_from_a_file(tmp_path: Path) -> None:
    """load_imagenet_weights(path=...) loads every tensor of a saved torchvision resnet50."""
    reference = resnet50()
    path = tmp_path / "resnet50.pth"
    torch.save(reference.state_dict(), path)
    backbone = ResNet50Backbone(output_stride=8)
    backbone.load_imagenet_weights(path=path)
    expected = reference.state_dict()
    for name, tensor in backbone.state_dict().items():
        assert torch.equal(tensor, expected[name]), name


def test_load_imagenet_weights_missing_file_raises(tmp_path: Path) -> None:
    """A path that does not exist raises FileNotFoundError naming it, and downloads nothing."""
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        ResNet50Backbone().load_imagenet_weights(path=tmp_path / "nope.pth")


@pytest.mark.parametrize("output_stride", [4, 12, 64])
def test_bad_output_stride_raises(output_stride: int) -> None:
    """Output strides other than 8, 16 and 32 raise a ValueError naming the value."""
    with pytest.raises(ValueError, match=f"output_stride must be 8, 16 or 32, got {output_stride}"):
        ResNet50Backbone(output_stride=output_stride)


def test_zero_init_residual_zeroes_the_same_weights_as_torchvision() -> None:
    """zero_init_residual=True zeroes exactly the BN weights torchvision's option zeroes."""
    torch.manual_seed(0)
    theirs = resnet50(zero_init_residual=True).state_dict()
    ours = ResNet50Backbone(zero_init_residual=True).state_dict()
    zero_theirs = {k for k, v in theirs.items() if k.endswith(".weight") and not v.any()}
    zero_ours = {k for k, v in ours.items() if k.endswith(".weight") and not v.any()}
    assert zero_ours == zero_theirs
    assert len(zero_ours) == 16  # one per bottleneck: 3 + 4 + 6 + 3


def test_zero_init_residual_blocks_start_as_the_identity() -> None:
    """With the last BN at zero, a block without downsampling returns relu(x) = x for x >= 0."""
    block = ResNet50Backbone(zero_init_residual=True).layer1[1].eval()
    x = torch.rand(2, 256, 9, 11)
    torch.testing.assert_close(block(x), x, rtol=0, atol=0)


def test_bad_zero_init_residual_raises() -> None:
    """A non-bool zero_init_residual raises a ValueError naming the value."""
    with pytest.raises(ValueError, match="zero_init_residual must be True or False, got 1"):
        ResNet50Backbone(zero_init_residual=1)
