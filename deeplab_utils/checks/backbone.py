"""Self-checks for notebook 03 (ResNet-50 backbone): the bottleneck and the stage dilations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ._common import (
    NOT_IMPLEMENTED,
    CheckFailed,
    _compare,
    _name_differences,
    _passed,
    _randomize_batch_norms,
    _run,
)


def _load_reference_weights(check: str, case: str, learner: Any, reference: Any) -> None:
    """Copy the reference's state dict into the learner's module, explaining name mismatches."""
    if not isinstance(learner, torch.nn.Module):
        raise CheckFailed(
            f"{check}: case '{case}': constructing your class gave a "
            f"{type(learner).__name__}, expected an nn.Module."
        )
    expected, got = reference.state_dict(), learner.state_dict()
    missing, unexpected = _name_differences(expected, got)
    if missing or unexpected:
        raise CheckFailed(
            f"{check}: case '{case}': your module's parameter names differ from the reference's: "
            f"missing {missing}, unexpected {unexpected}. Hint: use torchvision's names conv1, "
            "bn1, conv2, bn2, conv3, bn3 and store the shortcut module as self.downsample."
        )
    shapes = [
        f"{k}: {tuple(got[k].shape)} vs expected {tuple(v.shape)}"
        for k, v in expected.items()
        if tuple(got[k].shape) != tuple(v.shape)
    ]
    if shapes:
        raise CheckFailed(
            f"{check}: case '{case}': parameter shapes differ: {shapes}. Hint: conv1 is 1x1 "
            "in_channels -> planes, conv2 is 3x3 planes -> planes, conv3 is 1x1 planes -> "
            "4 * planes."
        )
    learner.load_state_dict(expected)


def check_bottleneck(cls: Any) -> None:
    """Check a ResNet bottleneck class against :class:`deeplab_utils.Bottleneck`.

    ``cls(in_channels, planes, stride=..., dilation=..., downsample=...)`` must build the block
    with torchvision's names (conv1, bn1, conv2, bn2, conv3, bn3, downsample); ``forward`` maps
    ``(B, in_channels, H, W)`` to ``(B, 4 * planes, ceil(H / stride), ceil(W / stride))``. The
    reference's weights (with random BatchNorm statistics) are loaded into the learner's block
    and the outputs compared, in eval and in train mode. Cases: identity shortcut, a 1x1
    projection shortcut (channels change), stride 2 with odd sizes, dilation 2 and 4, batch 1
    and 3. Taught in notebook 03.
    """
    from torch import nn

    from ..backbone import Bottleneck

    check = "check_bottleneck"
    if isinstance(cls, nn.Module):
        raise CheckFailed(
            f"{check}: pass the class itself, e.g. {check}(MyBottleneck), not an instance."
        )
    gen = torch.Generator().manual_seed(0)
    cases = [
        # (name, batch, in_channels, planes, stride, dilation, shortcut, (H, W))
        ("identity shortcut, 9x9", 2, 16, 4, 1, 1, False, (9, 9)),
        ("projection shortcut (channels 8 -> 16)", 2, 8, 4, 1, 1, True, (8, 10)),
        ("stride 2, odd size 13x11", 2, 8, 4, 2, 1, True, (13, 11)),
        ("stride 2, batch 1, odd size 7x9", 1, 16, 8, 2, 1, True, (7, 9)),
        ("dilation 2, identity shortcut, 11x12", 3, 16, 4, 1, 2, False, (11, 12)),
        ("dilation 4, projection shortcut, 15x15", 1, 8, 4, 1, 4, True, (15, 15)),
    ]
    for name, b, c_in, planes, stride, dilation, shortcut, size in cases:
        c_out = planes * Bottleneck.expansion
        # two separate shortcut modules: the learner's gets the reference's weights below
        shortcuts = [
            nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )
            if shortcut
            else None
            for _ in range(2)
        ]
        reference = Bottleneck(
            c_in, planes, stride=stride, dilation=dilation, downsample=shortcuts[0]
        )
        _randomize_batch_norms(reference, gen)
        learner = _run(
            check,
            name + " (constructing)",
            cls,
            c_in,
            planes,
            stride=stride,
            dilation=dilation,
            downsample=shortcuts[1],
        )
        _load_reference_weights(check, name, learner, reference)
        x = torch.randn(b, c_in, *size, generator=gen)
        for mode in ("eval", "train"):
            reference.train(mode == "train")
            learner.train(mode == "train")
            shape_hint = (
                "the output has 4 * planes channels and ceil(H / stride) rows: put the "
                "stride on conv2 (3x3) only, with padding = dilation, and add "
                "downsample(x) (not x) as the shortcut when downsample is not None."
            )
            with torch.no_grad():
                expected = reference(x.clone())
                try:
                    got = _run(check, f"{name}, {mode} mode", learner, x.clone())
                except CheckFailed as exc:
                    if NOT_IMPLEMENTED in str(exc):
                        raise
                    raise CheckFailed(f"{exc} Hint: {shape_hint}") from exc.__cause__
            if getattr(got, "shape", None) != expected.shape:
                hint = shape_hint
            else:
                hint = (
                    "out = relu(bn1(conv1(x))); out = relu(bn2(conv2(out))); "
                    "out = bn3(conv3(out)); then add the shortcut (x, or downsample(x)) "
                    "BEFORE the last ReLU: return relu(out + shortcut)."
                )
            _compare(check, f"{name}, {mode} mode", got, expected, hint=hint)
    _passed(check, len(cases), "your bottleneck equals deeplab_utils.Bottleneck.")


def _torchvision_stage_settings(output_stride: int) -> list[tuple[int, int]]:
    """(stride, dilation) of each stage of torchvision's dilated ResNet-50, read off its convs.

    Built on the meta device: only the layer settings are needed, not weights.
    """
    from torchvision.models import resnet50

    dilate = {32: [False, False, False], 16: [False, False, True], 8: [False, True, True]}
    with torch.device("meta"):
        net = resnet50(replace_stride_with_dilation=dilate[output_stride])
    stages = [net.layer1, net.layer2, net.layer3, net.layer4]
    # stride of the stage's first block; dilation of its last one (the first block keeps the
    # previous stage's rate, torchvision's `previous_dilation`)
    return [(stage[0].conv2.stride[0], stage[-1].conv2.dilation[0]) for stage in stages]


def check_stage_dilations(fn: Callable[[int], list[tuple[int, int]]]) -> None:
    """Check ``fn(output_stride) -> [(stride, dilation)] * 4`` for ResNet-50's four stages.

    ``stride`` is the stage's stride (1 or 2) and ``dilation`` the rate of its 3x3 convolutions
    (from its second block on). Compared with torchvision's ``resnet50`` built with
    ``replace_stride_with_dilation`` for output strides 32, 16 and 8. Taught in notebook 03.
    """
    check = "check_stage_dilations"
    hint = (
        "layer1 always has stride 1 (the stem already reached OS 4); each later stage halves "
        "the resolution (stride 2) until the output stride is reached; from then on a stage "
        "keeps stride 1 and multiplies the dilation by the 2 it did not use."
    )
    for output_stride in (32, 16, 8):
        name = f"output_stride={output_stride}"
        expected = _torchvision_stage_settings(output_stride)
        got = _run(check, name, fn, output_stride)
        try:
            got_list = [(int(s), int(d)) for s, d in got]
        except (TypeError, ValueError):
            raise CheckFailed(
                f"{check}: case '{name}': expected a list of 4 (stride, dilation) pairs, "
                f"got {got!r}."
            ) from None
        if got_list != expected:
            raise CheckFailed(
                f"{check}: case '{name}': expected {expected}, got {got_list}. Hint: {hint}"
            )
    _passed(check, 3, "your stage settings equal torchvision's replace_stride_with_dilation.")
