"""Self-checks for notebook 03 (ResNet-50 backbone): the bottleneck and every block's rates."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..backbone import Bottleneck, state_dict_differences
from ._common import (
    CheckFailed,
    Hint,
    _check,
    _compare,
    _fail,
    _outputs,
    _passed,
    _randomize_batch_norms,
    _run,
    exercise_check,
)

_NAMES_HINT = Hint(
    "use torchvision's names: conv1, bn1, conv2, bn2, conv3, bn3 (and relu), and keep the "
    "shortcut module you are given as self.downsample; convs followed by a BN have no bias.",
    "the block is 1x1 (in_channels to planes), 3x3 (planes to planes, with the stride and the "
    "dilation), 1x1 (planes to 4 * planes), each with its BN; compare your names with "
    "torchvision's Bottleneck, whose state dict these are.",
)


def _load_reference_weights(case: str, learner: Any, reference: Any) -> None:
    """Copy the reference's state dict into the learner's module, explaining name mismatches."""
    if not isinstance(learner, torch.nn.Module):
        raise CheckFailed(
            f"{_check()}: case '{case}': constructing your class gave a "
            f"{type(learner).__name__}, expected an nn.Module."
        )
    expected, got = reference.state_dict(), learner.state_dict()
    missing, unexpected, shapes = state_dict_differences(expected, got)
    if missing or unexpected:
        raise _fail(
            case,
            "your module's parameter names differ from the reference's: "
            f"missing {missing}, unexpected {unexpected}",
            _NAMES_HINT,
        )
    if shapes:
        raise _fail(
            case,
            f"parameter shapes differ: {shapes}",
            Hint(
                "the block reduces to `planes` channels, works at that width, and expands to "
                "4 * planes (the expansion).",
                _NAMES_HINT.full,
            ),
        )
    learner.load_state_dict(expected)


@exercise_check("backbone:Bottleneck")
def check_bottleneck(cls: Any) -> None:
    """Check a ResNet bottleneck class against :class:`deeplab_utils.Bottleneck`.

    ``cls(in_channels, planes, stride=..., dilation=..., downsample=...)`` must use torchvision's
    names (conv1, bn1, ..., downsample) and map ``(B, in_channels, H, W)`` to ``(B, 4 * planes,
    ceil(H / stride), ceil(W / stride))``. With the reference's weights loaded, outputs are compared
    in eval and train mode: identity and projection shortcuts, stride 2 on odd sizes, dilation 2
    and 4, batch 1 and 3. Taught in notebook 03.
    """
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
    shape_hint = Hint(
        "the output has 4 * planes channels and ceil(H / stride) rows: the 3x3 conv carries the "
        "stride, and its padding must keep a dilated kernel's output the size of its input; "
        "the shortcut is downsample(x) when there is one.",
        "a 3x3 kernel at rate d spans 2d + 1 pixels, so padding d keeps the size at stride 1 "
        "and gives ceil(H / stride) rows at stride 2; the shortcut must have the same shape.",
    )
    value_hint = Hint(
        "the order is conv -> BN -> ReLU for the first two convs, conv -> BN for the third; the "
        "shortcut is added before the last ReLU, not after it.",
        "the residual branch ends with bn3, without a ReLU; the block's one ReLU after the "
        "addition acts on the sum of that branch and the shortcut (x, or downsample(x)).",
    )
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
        settings = {"stride": stride, "dilation": dilation}
        reference = Bottleneck(c_in, planes, **settings, downsample=shortcuts[0])
        _randomize_batch_norms(reference, gen)
        learner = _run(
            name + " (constructing)", cls, c_in, planes, **settings, downsample=shortcuts[1]
        )
        _load_reference_weights(name, learner, reference)
        x = torch.randn(b, c_in, *size, generator=gen)
        for mode in ("eval", "train"):
            reference.train(mode == "train")
            learner.train(mode == "train")
            case = f"{name}, {mode} mode"
            got, expected = _outputs(case, learner, reference, x, hint=shape_hint)
            _compare(case, got, expected, hint=value_hint, shape_hint=shape_hint)
    _passed(len(cases), "your bottleneck equals deeplab_utils.Bottleneck.")


def _torchvision_block_settings(output_stride: int) -> list[list[tuple[int, int]]]:
    """(stride, dilation) of every bottleneck's 3x3 conv in torchvision's dilated ResNet-50
    (built on the meta device: no weights needed)."""
    from torchvision.models import resnet50

    dilate = {32: [False, False, False], 16: [False, False, True], 8: [False, True, True]}
    with torch.device("meta"):
        net = resnet50(replace_stride_with_dilation=dilate[output_stride])
    stages = [net.layer1, net.layer2, net.layer3, net.layer4]
    return [[(block.conv2.stride[0], block.conv2.dilation[0]) for block in s] for s in stages]


@exercise_check("backbone:block_settings")
def check_block_settings(fn: Callable[..., list[list[tuple[int, int]]]]) -> None:
    """Check ``fn(output_stride, multi_grid=None)``: every bottleneck's ``(stride, dilation)``.

    The result lists, for layer1..layer4, each block's pair (3, 4, 6 and 3 pairs). It must equal
    torchvision's ``resnet50`` with ``replace_stride_with_dilation`` for output strides 32, 16 and
    8; ``multi_grid = (r1, r2, r3)`` multiplies layer4's rate by ``r1, r2, r3`` block by block
    (DeepLabv3, Sec. 3.2). Taught in notebook 03.
    """
    cases = [
        ("output_stride=32", 32, None),
        ("output_stride=16", 16, None),
        ("output_stride=8", 8, None),
        ("output_stride=16, multi_grid=(1, 2, 4)", 16, (1, 2, 4)),
        ("output_stride=8, multi_grid=(1, 2, 4)", 8, (1, 2, 4)),
        ("output_stride=16, multi_grid=(1, 1, 1)", 16, (1, 1, 1)),
    ]
    hints = {
        "stride": Hint(
            "walk the stages' usual strides (1, 2, 2, 2) after the stem's 4x; only a stage's "
            "first block may have a stride; once a stride would take the output stride past "
            "the target, the stage keeps stride 1 and multiplies the rate by that stride.",
            "keep the output stride reached so far and the current rate as you go through the "
            "stages: a stride that would overshoot the target becomes a rate instead (stride 1, "
            "rate times that stride), and the stride reached stays where it is.",
        ),
        "first": Hint(
            "the first block of a stage keeps the previous stage's rate: it is the block that "
            "held the stride, and its input is still on the previous grid; the later blocks get "
            "the new rate.",
            "a stage's list is its first block (its stride, the rate before this stage) "
            "followed by the other blocks (stride 1, the stage's own rate).",
        ),
        "grid": Hint(
            "with multi_grid every block of layer4, the first one included, gets layer4's rate "
            "times its own unit rate; the other stages do not change.",
            "multi_grid holds one unit rate per block of layer4; at output stride 16 layer4's "
            "rate is 2, so (1, 2, 4) gives its three blocks the rates (2, 4, 8).",
        ),
    }
    for name, output_stride, multi_grid in cases:
        expected = _torchvision_block_settings(output_stride)
        if multi_grid is not None:
            rate = expected[-1][-1][1]  # layer4's rate: its last block's, in torchvision
            last = zip(expected[-1], multi_grid, strict=True)
            expected[-1] = [(s, rate * u) for (s, _), u in last]
        args = (output_stride,) if multi_grid is None else (output_stride, multi_grid)
        got = _run(name, fn, *args)
        try:
            got_list = [[(int(s), int(d)) for s, d in stage] for stage in got]
        except (TypeError, ValueError):
            raise _fail(
                name,
                "expected a list of 4 lists (one per stage) of (stride, dilation) pairs, one per "
                f"block, got {got!r}",
            ) from None
        padded = got_list + [[]] * (4 - len(got_list))
        for i, (want, have) in enumerate(zip(expected, padded, strict=False), start=1):
            if want != have:
                first_only = len(have) == len(want) and want[1:] == have[1:]
                kind = "grid" if multi_grid and i == 4 else "first" if first_only else "stride"
                raise _fail(name, f"layer{i}: expected {want}, got {have}", hints[kind])
        if len(got_list) != 4:
            raise _fail(name, f"expected 4 stages, got {len(got_list)}", hints["stride"])
    _passed(len(cases), "your block settings equal torchvision's (and multi-grid's).")
