"""Self-checks for notebook 03 (ResNet-50 backbone): the bottleneck and every block's rates."""

from collections.abc import Callable

import torch
from torch import nn

from ..backbone import Bottleneck, ResNet50Backbone, block_settings
from . import pieces
from ._common import Hint, compare, exercise_check, fail, outputs, passed, run, twins

pieces.register("backbone", ResNet50Backbone, "03")  # assembled from the two pieces below

_NAMES_HINT = Hint(
    "use torchvision's names and widths: conv1 (in_channels to planes), conv2 (3x3, planes to "
    "planes), conv3 (planes to 4 * planes), each followed by its BN (bn1 to bn3), and the "
    "shortcut module you are given kept as self.downsample; convs followed by a BN have no bias.",
    "compare your names with torchvision's Bottleneck, whose state dict these are: the block "
    "reduces to `planes` channels, works at that width (with the stride and the dilation), and "
    "expands to 4 * planes (the expansion).",
)
_SHAPE_HINT = Hint(
    "the output has 4 * planes channels and ceil(H / stride) rows: the 3x3 conv carries the "
    "stride, and its padding must keep a dilated kernel's output the size of its input; the "
    "shortcut is downsample(x) when there is one.",
    "a 3x3 kernel at rate d spans 2d + 1 pixels, so padding d keeps the size at stride 1 and "
    "gives ceil(H / stride) rows at stride 2; the shortcut must have the same shape.",
)
_VALUE_HINT = Hint(
    "the order is conv -> BN -> ReLU for the first two convs, conv -> BN for the third; the "
    "shortcut is added before the last ReLU, not after it.",
    "the residual branch ends with bn3, without a ReLU; the block's one ReLU after the addition "
    "acts on the sum of that branch and the shortcut (x, or downsample(x)).",
)


@exercise_check(Bottleneck)
def check_bottleneck(cls: type) -> None:
    """``cls(in_channels, planes, *, stride, dilation, downsample)``, torchvision's names."""
    cases = [
        # (name, batch, in_channels, planes, stride, dilation, projection shortcut, (H, W))
        ("identity shortcut, 9x9", 2, 16, 4, 1, 1, False, (9, 9)),
        ("projection shortcut (channels 8 -> 16)", 2, 8, 4, 1, 1, True, (8, 10)),
        ("stride 2, odd size 13x11", 2, 8, 4, 2, 1, True, (13, 11)),
        ("stride 2, batch 1, odd size 7x9", 1, 16, 8, 2, 1, True, (7, 9)),
        ("dilation 2, identity shortcut, 11x12", 3, 16, 4, 1, 2, False, (11, 12)),
        ("dilation 4, projection shortcut, 15x15", 1, 8, 4, 1, 4, True, (15, 15)),
    ]
    for name, b, c_in, planes, stride, dilation, projection, size in cases:
        c_out = planes * Bottleneck.expansion
        conv = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
        shortcut = nn.Sequential(conv, nn.BatchNorm2d(c_out)) if projection else None
        ref, learner = twins(
            name, cls, Bottleneck, _NAMES_HINT, c_in, planes, stride=stride, dilation=dilation,
            downsample=shortcut,
            biases_before_bn=False,  # notebook 03 loads torchvision's state dict, strictly
        )  # fmt: skip
        x = torch.randn(b, c_in, *size)
        for mode in ("eval", "train"):
            case = f"{name}, {mode} mode"
            ref.train(mode == "train")
            learner.train(mode == "train")
            got, expected = outputs(case, learner, ref, x, hint=_SHAPE_HINT)
            compare(case, got, expected, hint=_VALUE_HINT, shape_hint=_SHAPE_HINT)
    passed(len(cases), "your bottleneck equals deeplab_utils.Bottleneck.")


_STAGE_HINTS = {
    "stride": Hint(
        "walk the stages' usual strides (1, 2, 2, 2) after the stem's 4x; only a stage's first "
        "block may have a stride; once a stride would take the output stride past the target, "
        "the stage keeps stride 1 and multiplies the rate by that stride.",
        "keep the output stride reached so far and the current rate as you go through the "
        "stages: a stride that would overshoot the target becomes a rate instead (stride 1, "
        "rate times that stride), and the stride reached stays where it is.",
    ),
    "first": Hint(
        "the first block of a stage keeps the previous stage's rate: it is the block that held "
        "the stride, and its input is still on the previous grid; the later blocks get the new "
        "rate.",
        "a stage's list is its first block (its stride, the rate before this stage) followed by "
        "the other blocks (stride 1, the stage's own rate).",
    ),
    "grid": Hint(
        "with multi_grid every block of layer4, the first one included, gets layer4's rate "
        "times its own unit rate; the other stages do not change.",
        "multi_grid holds one unit rate per block of layer4; at output stride 16 layer4's rate "
        "is 2, so (1, 2, 4) gives its three blocks the rates (2, 4, 8).",
    ),
}


@exercise_check(block_settings)
def check_block_settings(fn: Callable[..., list[list[tuple[int, int]]]]) -> None:
    """``fn(output_stride, multi_grid=None)``: (stride, dilation) per block, DeepLabv3 Sec. 3.2."""
    cases = [
        ("output_stride=32", 32, None),
        ("output_stride=16", 16, None),
        ("output_stride=8", 8, None),
        ("output_stride=16, multi_grid=(1, 2, 4)", 16, (1, 2, 4)),
        ("output_stride=8, multi_grid=(1, 2, 4)", 8, (1, 2, 4)),
        ("output_stride=16, multi_grid=(1, 1, 1)", 16, (1, 1, 1)),
    ]
    for name, output_stride, multi_grid in cases:
        expected = block_settings(output_stride, multi_grid)
        got = run(name, fn, output_stride, *([multi_grid] if multi_grid else []))
        try:
            got = [[(int(s), int(d)) for s, d in stage] for stage in got]
        except (TypeError, ValueError):
            shape = "a list of 4 lists (one per stage) of (stride, dilation) pairs, one per block"
            raise fail(name, f"expected {shape}, got {got!r}") from None
        if len(got) != 4:
            raise fail(name, f"expected 4 stages, got {len(got)}", _STAGE_HINTS["stride"])
        for i, (want, have) in enumerate(zip(expected, got, strict=True), start=1):
            if want != have:
                first_only = len(have) == len(want) and want[1:] == have[1:]
                kind = "grid" if multi_grid and i == 4 else "first" if first_only else "stride"
                raise fail(name, f"layer{i}: expected {want}, got {have}", _STAGE_HINTS[kind])
    passed(len(cases), "your block settings equal torchvision's (and multi-grid's).")
