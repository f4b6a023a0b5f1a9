"""Tests for the ImageNet weights of deeplab_utils.backbone: "imagenet" or a path, offline.

Every test runs with TORCH_HOME in a temporary folder and torch.hub's downloader replaced by
one that fails, so a test that tried to reach the network would fail instead.
"""

import os
import urllib.error
from pathlib import Path

import pytest
import torch
from fake_datasets import write_fake_imagenet_weights
from torchvision.models import ResNet50_Weights, resnet50

from deeplab_utils import DeepLabV3Plus
from deeplab_utils.backbone import (
    ResNet50Backbone,
    WeightsNotFoundError,
    backbone_state_dict,
    imagenet_cache_path,
    load_backbone_weights,
)

V1_URL = "https://download.pytorch.org/models/resnet50-0676ba61.pth"  # torchvision's resnet.py


@pytest.fixture(autouse=True)
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """TORCH_HOME in tmp_path; torch.hub's download raises URLError and records the URL."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    attempts: list[str] = []

    def no_network(url: str, dst: str, *args: object, **kwargs: object) -> None:
        attempts.append(url)
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return attempts


@pytest.fixture(scope="module")
def fake_weights(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A torchvision resnet50 state dict with random values, written once for the module."""
    path = write_fake_imagenet_weights(tmp_path_factory.mktemp("torch_home"))
    return {"path": path, "state": torch.load(path, weights_only=True)}


def _place(fake_weights: dict, tmp_path: Path) -> Path:
    """Copy the fake weights to where torchvision caches them under this test's TORCH_HOME."""
    target = tmp_path / "torch" / "hub" / "checkpoints" / os.path.basename(V1_URL)
    target.parent.mkdir(parents=True)
    target.write_bytes(fake_weights["path"].read_bytes())
    return target


def test_imagenet_means_torchvisions_v1_weights_in_torch_hubs_cache(tmp_path):
    """'imagenet' is IMAGENET1K_V1, the default backbone of torchvision's deeplabv3_resnet50,
    cached at TORCH_HOME/hub/checkpoints/<file of the URL>."""
    assert ResNet50_Weights.IMAGENET1K_V1.url == V1_URL
    expected = tmp_path / "torch" / "hub" / "checkpoints" / "resnet50-0676ba61.pth"
    assert imagenet_cache_path() == expected


def test_imagenet_loads_a_cached_file_without_downloading(tmp_path, offline, fake_weights):
    """With the file in torchvision's cache, 'imagenet' loads every tensor of it, no download."""
    _place(fake_weights, tmp_path)
    model = DeepLabV3Plus(21)
    load_backbone_weights(model, "imagenet")
    assert offline == []
    for name, tensor in model.backbone.state_dict().items():
        assert torch.equal(tensor, fake_weights["state"][name]), name


def test_offline_raises_one_line_saying_what_was_tried_and_how_to_fix(tmp_path, offline):
    """No cached file and no network: WeightsNotFoundError (a FileNotFoundError) naming the URL,
    the cache file and both remedies, on one line; nothing is left in the cache."""
    cache = tmp_path / "torch" / "hub" / "checkpoints" / "resnet50-0676ba61.pth"
    with pytest.raises(WeightsNotFoundError) as info:
        backbone_state_dict("imagenet", progress=False)
    message = str(info.value)
    assert offline == [V1_URL]
    assert "\n" not in message
    for part in (V1_URL, str(cache), "no network in tests", "place the file at", ".pth"):
        assert part in message, part
    assert isinstance(info.value, FileNotFoundError)
    assert not cache.exists()


def test_unreadable_cached_file_says_delete_it(tmp_path, offline):
    """A corrupt file in the cache is not re-downloaded silently: the error names it."""
    cache = tmp_path / "torch" / "hub" / "checkpoints" / "resnet50-0676ba61.pth"
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsNotFoundError, match=r"could not be read.*delete that file"):
        backbone_state_dict("imagenet")
    assert offline == []


def test_a_path_loads_that_file(tmp_path, offline, fake_weights):
    """A .pth path loads exactly that state dict (the backbone at output stride 8 too)."""
    backbone = ResNet50Backbone(output_stride=8)
    load_backbone_weights(backbone, fake_weights["path"])
    for name, tensor in backbone.state_dict().items():
        assert torch.equal(tensor, fake_weights["state"][name]), name
    assert offline == []


def test_a_missing_path_names_it_and_the_choices(tmp_path):
    """A path with no file (or a misspelt 'imagenet') names the value and what is allowed."""
    with pytest.raises(WeightsNotFoundError, match=r"'imagenet' or the path.*got 'imagnet'"):
        backbone_state_dict("imagnet")


def test_a_file_that_is_not_a_state_dict_raises_value_error(tmp_path):
    """A file that torch.load cannot read raises a ValueError naming it."""
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00" * 10)
    with pytest.raises(ValueError, match="garbage.pth is not a readable PyTorch file"):
        backbone_state_dict(garbage)


def test_wrong_model_weights_are_rejected(tmp_path):
    """A resnet18 state dict is refused by the backbone's key/shape check."""
    from torchvision.models import resnet18

    path = tmp_path / "resnet18.pth"
    torch.save(resnet18().state_dict(), path)
    with pytest.raises(ValueError, match="not a torchvision resnet50 state dict"):
        load_backbone_weights(ResNet50Backbone(), path)


def test_model_without_backbone_raises_type_error():
    """A model without a ResNet50Backbone is named in a TypeError."""
    with pytest.raises(TypeError, match="got Linear"):
        load_backbone_weights(torch.nn.Linear(2, 2), "imagenet")


def test_load_imagenet_weights_goes_through_the_same_cache(tmp_path, offline, fake_weights):
    """ResNet50Backbone.load_imagenet_weights() without a path reads torchvision's cache."""
    _place(fake_weights, tmp_path)
    backbone = ResNet50Backbone()
    backbone.load_imagenet_weights()
    assert offline == []
    assert torch.equal(backbone.conv1.weight, fake_weights["state"]["conv1.weight"])


def test_reference_resnet50_matches_our_backbone_after_loading(tmp_path, fake_weights):
    """Loaded weights compute what torchvision's resnet50 computes (OS 32, up to layer4)."""
    reference = resnet50()
    reference.load_state_dict(fake_weights["state"])
    reference.eval()
    backbone = ResNet50Backbone(output_stride=32).eval()
    load_backbone_weights(backbone, fake_weights["path"])
    x = torch.randn(1, 3, 64, 64)
    expected = torch.nn.Sequential(*list(reference.children())[:-2])(x)
    torch.testing.assert_close(backbone(x)["out"], expected)
