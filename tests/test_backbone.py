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
    with pytest.raises(ValueError, match=r"1 unexpected keys \['head\.weight'\]"):
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


# Every conv of layer4, written out by hand: (stride, dilation, padding) for conv1, conv2, conv3
# of each block, and the first block's shortcut (downsample.0). DeepLabv3, Sec. 3.2: with
# Multi_Grid = (1, 2, 4) the three blocks get rates 2 * (1, 2, 4) at output stride 16.
_ONE = ((1, 1), (1, 1), (0, 0))  # a 1x1 conv: stride 1, dilation 1, no padding
_LAYER4_BY_HAND = {
    (16, (1, 2, 4)): {
        "0.conv2": ((1, 1), (2, 2), (2, 2)),
        "1.conv2": ((1, 1), (4, 4), (4, 4)),
        "2.conv2": ((1, 1), (8, 8), (8, 8)),
        "0.downsample.0": _ONE,
    },
    (8, (1, 2, 4)): {
        "0.conv2": ((1, 1), (4, 4), (4, 4)),
        "1.conv2": ((1, 1), (8, 8), (8, 8)),
        "2.conv2": ((1, 1), (16, 16), (16, 16)),
        "0.downsample.0": _ONE,
    },
    (16, (1, 1, 1)): {  # multi-grid (1, 1, 1): rate 2 in every block, the first one included
        "0.conv2": ((1, 1), (2, 2), (2, 2)),
        "1.conv2": ((1, 1), (2, 2), (2, 2)),
        "2.conv2": ((1, 1), (2, 2), (2, 2)),
        "0.downsample.0": _ONE,
    },
    (32, (1, 2, 4)): {  # layer4 keeps its stride (rate 1): unit rates 1, 2, 4 as they are
        "0.conv2": ((2, 2), (1, 1), (1, 1)),
        "1.conv2": ((1, 1), (2, 2), (2, 2)),
        "2.conv2": ((1, 1), (4, 4), (4, 4)),
        "0.downsample.0": ((2, 2), (1, 1), (0, 0)),
    },
    (16, None): {  # torchvision: the first block keeps the previous rate
        "0.conv2": ((1, 1), (1, 1), (1, 1)),
        "1.conv2": ((1, 1), (2, 2), (2, 2)),
        "2.conv2": ((1, 1), (2, 2), (2, 2)),
        "0.downsample.0": _ONE,
    },
}


@pytest.mark.parametrize(("output_stride", "multi_grid"), list(_LAYER4_BY_HAND))
def test_layer4_convs_have_the_hand_computed_settings(output_stride, multi_grid) -> None:
    """Every conv of layer4 has the stride, dilation and padding computed by hand above."""
    layer4 = ResNet50Backbone(output_stride=output_stride, multi_grid=multi_grid).layer4
    convs = {n: m for n, m in layer4.named_modules() if isinstance(m, torch.nn.Conv2d)}
    expected = {f"{b}.conv{i}": _ONE for b in range(3) for i in (1, 3)}
    expected.update(_LAYER4_BY_HAND[(output_stride, multi_grid)])
    assert {n: (m.stride, m.dilation, m.padding) for n, m in convs.items()} == expected


@pytest.mark.parametrize("output_stride", [8, 16])
def test_multi_grid_leaves_layers_1_to_3_and_every_shape_alone(output_stride: int) -> None:
    """Multi-grid changes only layer4's rates: same names and shapes, same earlier convs,
    same feature sizes."""
    plain = ResNet50Backbone(output_stride=output_stride)
    grid = ResNet50Backbone(output_stride=output_stride, multi_grid=(1, 2, 4))
    assert {k: v.shape for k, v in plain.state_dict().items()} == {
        k: v.shape for k, v in grid.state_dict().items()
    }
    before = dict(plain.named_modules())
    for name, m in grid.named_modules():
        if isinstance(m, torch.nn.Conv2d) and not name.startswith("layer4"):
            assert m.dilation == before[name].dilation and m.stride == before[name].stride, name
    x = torch.randn(1, 3, 65, 65)
    with torch.no_grad():
        assert grid.eval()(x)["out"].shape == plain.eval()(x)["out"].shape


@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_block_settings_match_torchvision_block_by_block(output_stride: int) -> None:
    """block_settings lists each bottleneck's (stride, dilation) as torchvision builds them."""
    from deeplab_utils.backbone import block_settings

    reference = _torchvision_resnet50(output_stride)
    expected = [
        [(b.conv2.stride[0], b.conv2.dilation[0]) for b in stage]
        for stage in (reference.layer1, reference.layer2, reference.layer3, reference.layer4)
    ]
    assert block_settings(output_stride) == expected
