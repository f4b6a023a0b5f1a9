"""Tests for deeplab_utils.model: DeepLabV3 (against torchvision) and DeepLabV3Plus."""

import dataclasses

import pytest
import torch
from torchvision.models.segmentation import deeplabv3_resnet50

from deeplab_utils import (
    DeepLabV3,
    DeepLabV3Plus,
    Deeplabv3Plus,
    ModelConfig,
    build_model,
)


def _torchvision_deeplabv3(num_classes: int, *, aux_loss: bool = False) -> torch.nn.Module:
    model = deeplabv3_resnet50(
        weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=aux_loss
    )
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):  # non-trivial statistics, so BN is tested too
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    return model.eval()


@pytest.mark.parametrize("aux_loss", [False, True])
def test_deeplabv3_from_torchvision_gives_the_same_output(aux_loss: bool) -> None:
    """A torchvision deeplabv3_resnet50 copied with from_torchvision gives the same logits."""
    reference = _torchvision_deeplabv3(5, aux_loss=aux_loss)
    ours = DeepLabV3.from_torchvision(reference).eval()
    assert ours.config == ModelConfig(5, output_stride=8, separable=False, decoder=False)
    x = torch.randn(1, 3, 65, 65)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x)["out"])


def test_deeplabv3_state_dict_matches_torchvision() -> None:
    """DeepLabV3(output_stride=8) has exactly torchvision's parameter names and shapes."""
    ours = DeepLabV3(3, output_stride=8).state_dict()
    reference = deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=3).state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in reference.items()}


def test_from_torchvision_reads_the_aspp_rates() -> None:
    """A DeepLabV3 with rates other than the paper's is copied with its rates and outputs."""
    reference = DeepLabV3(3, aspp_rates=(2, 4, 6)).eval()
    ours = DeepLabV3.from_torchvision(reference).eval()
    assert ours.config == reference.config == ModelConfig(3, decoder=False, aspp_rates=(2, 4, 6))
    x = torch.randn(1, 3, 33, 33)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x))


def test_from_torchvision_refuses_another_backbone() -> None:
    """A torchvision DeepLabV3 on ResNet-101 is refused, naming the keys ResNet-50 lacks."""
    from torchvision.models.segmentation import deeplabv3_resnet101

    other = deeplabv3_resnet101(weights=None, weights_backbone=None, num_classes=3)
    with pytest.raises(RuntimeError, match=r"Unexpected key\(s\).*backbone\.layer3\.6\."):
        DeepLabV3.from_torchvision(other)


@pytest.mark.parametrize("model_class", [DeepLabV3, DeepLabV3Plus])
@pytest.mark.parametrize("output_stride", [8, 16])
@pytest.mark.parametrize("batch", [1, 2])
def test_logits_have_the_input_size(model_class: type, output_stride: int, batch: int) -> None:
    """Both models return (B, num_classes, H, W) logits at output stride 8 and 16."""
    model = model_class(3, output_stride=output_stride).eval()
    with torch.no_grad():
        assert model(torch.randn(batch, 3, 65, 65)).shape == (batch, 3, 65, 65)


@pytest.mark.parametrize("separable", [False, True])
def test_odd_input_size_in_train_mode_with_one_image(separable: bool) -> None:
    """One 97x131 image in train mode gives 97x131 logits and a finite gradient on every weight."""
    model = DeepLabV3Plus(2, separable=separable).train()
    out = model(torch.randn(1, 3, 97, 131))
    assert out.shape == (1, 2, 97, 131)
    torch.nn.functional.cross_entropy(out, torch.randint(0, 2, (1, 97, 131))).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_separable_model_is_smaller() -> None:
    """separable=True has fewer parameters than the plain DeepLabV3Plus, with the same backbone."""
    plain, separable = DeepLabV3Plus(21), DeepLabV3Plus(21, separable=True)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(separable.backbone) == count(plain.backbone)
    assert count(separable) < count(plain)


def test_seed_name_still_works() -> None:
    """The first draft's name Deeplabv3Plus(num_classes=1) builds a DeepLabV3Plus."""
    model = Deeplabv3Plus(num_classes=1)
    assert isinstance(model, DeepLabV3Plus)
    assert model.config.num_classes == 1


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(4),
        ModelConfig(4, output_stride=8, separable=True),
        ModelConfig(4, decoder=False),
        ModelConfig(4, separable=True, aspp_rates=(1, 2, 3)),
        ModelConfig(4, decoder=False, aspp_rates=(2, 4)),
    ],
)
def test_build_model_round_trips_its_config(config: ModelConfig) -> None:
    """build_model gives the class the config names, and its config survives dataclasses.asdict."""
    model = build_model(config)
    assert isinstance(model, DeepLabV3Plus if config.decoder else DeepLabV3)
    assert model.config == config == ModelConfig(**dataclasses.asdict(model.config))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_classes": 0}, "num_classes must be a positive int, got 0"),
        ({"num_classes": 2.0}, "num_classes must be a positive int, got 2.0"),
        ({"num_classes": 2, "output_stride": 12}, "output_stride must be 8 or 16, got 12"),
        ({"num_classes": 2, "separable": "no"}, "separable must be True or False, got 'no'"),
        ({"num_classes": 2, "decoder": None}, "decoder must be True or False, got None"),
        (
            {"num_classes": 2, "separable": True, "decoder": False},
            "separable=True needs decoder=True",
        ),
        ({"num_classes": 2, "aspp_rates": ()}, r"aspp_rates must be None or .*got \(\)"),
        ({"num_classes": 2, "aspp_rates": (1, 0)}, r"positive ints, got \(1, 0\)"),
        ({"num_classes": 2, "aspp_rates": 3}, "got 3"),
    ],
)
def test_bad_config_raises(kwargs: dict, match: str) -> None:
    """Invalid ModelConfig fields raise a ValueError naming the field and value."""
    with pytest.raises(ValueError, match=match):
        ModelConfig(**kwargs)


@pytest.mark.parametrize("model_class", [DeepLabV3, DeepLabV3Plus])
def test_bad_constructor_arguments_raise(model_class: type) -> None:
    """Both models reject num_classes=0 and output_stride=12 with a ValueError naming the value."""
    with pytest.raises(ValueError, match="num_classes must be a positive int, got 0"):
        model_class(0)
    with pytest.raises(ValueError, match="output_stride must be 8 or 16, got 12"):
        model_class(2, output_stride=12)


@pytest.mark.parametrize("model_class", [DeepLabV3, DeepLabV3Plus])
@pytest.mark.parametrize(
    ("shape", "shown"),
    [((3, 64, 64), r"\(3, 64, 64\)"), ((1, 4, 64, 64), r"\(1, 4, 64, 64\)")],
)
def test_bad_input_shape_raises(model_class: type, shape: tuple, shown: str) -> None:
    """A 3-D input or a 4-channel image raises a ValueError showing the shape received."""
    model = model_class(2)
    with pytest.raises(ValueError, match=rf"expected input of shape \(B, 3, H, W\), got {shown}"):
        model(torch.randn(*shape))


def test_aspp_dropout_follows_torchvision_for_v3_and_the_official_code_for_v3plus() -> None:
    """DeepLabV3 keeps torchvision's 0.5 (its weights load here); V3+ uses the paper code's 0.1."""
    theirs = _torchvision_deeplabv3(3)
    their_p = [m.p for m in theirs.modules() if isinstance(m, torch.nn.Dropout)]
    ours_v3 = [m.p for m in DeepLabV3(3).modules() if isinstance(m, torch.nn.Dropout)]
    ours_plus = [m.p for m in DeepLabV3Plus(3).modules() if isinstance(m, torch.nn.Dropout)]
    assert ours_v3 == their_p == [0.5]
    assert ours_plus == [0.1]


@pytest.mark.parametrize("config", [ModelConfig(3), ModelConfig(3, decoder=False)])
def test_build_model_passes_zero_init_residual(config: ModelConfig) -> None:
    """build_model(..., zero_init_residual=True) zeroes every bottleneck's last BN weight only."""
    model = build_model(config, zero_init_residual=True)
    bn3 = [m.bn3.weight for m in model.backbone.modules() if hasattr(m, "bn3")]
    assert len(bn3) == 16 and all(not w.any() for w in bn3)
    fresh = build_model(config)
    assert all(m.bn3.weight.all() for m in fresh.backbone.modules() if hasattr(m, "bn3"))


@pytest.mark.parametrize("decoder", [True, False])
def test_aspp_rates_set_the_dilations(decoder: bool) -> None:
    """ModelConfig.aspp_rates reaches the ASPP's convolutions; a list (JSON) becomes a tuple."""
    config = ModelConfig(3, decoder=decoder, aspp_rates=[1, 2, 3])
    assert config.aspp_rates == (1, 2, 3)
    model = build_model(config)
    aspp = model.aspp if decoder else model.classifier[0]
    assert [branch[0].dilation for branch in aspp.convs[1:-1]] == [(1, 1), (2, 2), (3, 3)]
    assert [branch[0].padding for branch in aspp.convs[1:-1]] == [(1, 1), (2, 2), (3, 3)]
    paper = build_model(ModelConfig(3, decoder=decoder))  # None: the paper's rates
    aspp = paper.aspp if decoder else paper.classifier[0]
    assert [branch[0].dilation[0] for branch in aspp.convs[1:-1]] == [6, 12, 18]


@pytest.mark.parametrize("decoder", [True, False])
@pytest.mark.parametrize(("output_stride", "rates"), [(16, [2, 4, 8]), (8, [4, 8, 16])])
def test_multi_grid_reaches_layer4(decoder: bool, output_stride: int, rates: list) -> None:
    """ModelConfig.multi_grid = (1, 2, 4) gives layer4's 3x3 convs the paper's rates
    (DeepLabv3, Sec. 3.2: 2 x (1, 2, 4) at output stride 16); a list (JSON) becomes a tuple."""
    config = ModelConfig(3, output_stride=output_stride, decoder=decoder, multi_grid=[1, 2, 4])
    assert config.multi_grid == (1, 2, 4)
    model = build_model(config)
    assert [block.conv2.dilation[0] for block in model.backbone.layer4] == rates
    assert model.config == ModelConfig(**dataclasses.asdict(model.config))


@pytest.mark.parametrize("multi_grid", [(1, 2), (1, 2, 4, 8), (0, 1, 2), (1, 2.0, 4), "124", 3])
def test_bad_multi_grid_config_raises(multi_grid) -> None:
    """A ModelConfig.multi_grid that is not three positive ints raises a ValueError."""
    with pytest.raises(ValueError, match="multi_grid must be None or 3 positive ints"):
        ModelConfig(2, multi_grid=multi_grid)
