"""Self-checks for notebook 03 (ResNet-50 backbone): the bottleneck and every block's rates."""

from collections.abc import Callable

import torch
from torch import nn

from ..backbone import Bottleneck, ResNet50Backbone, block_settings
from . import pieces
from ._common import Hint, compare, exercise_check, fail, outputs, passed, run, twins

pieces.register("backbone", ResNet50Backbone, "03")  # assembled from the two pieces below

_NAMES_HINT = Hint(
    "the names, kernels and widths are the conventions stated before the exercise: "
    "torchvision's, whose state dict this block must load strictly; compare the keys listed "
    "with them (the shortcut you are given is kept as self.downsample).",
    "the block reduces to `planes` channels, works at that width, and expands by the "
    "expansion; a conv followed by a BN has no bias in torchvision's weights.",
)
_SHAPE_HINT = Hint(
    "count the rows after each conv: which conv should carry the stride so that no pixel is "
    "skipped unread, and which padding keeps a dilated 3x3's output the size of its input "
    "(notebook 01)?",
    "how many pixels does a 3x3 kernel at rate d span, and how many rows does that remove "
    "without padding? The shortcut (x, or downsample(x)) must end with the branch's shape.",
)
_VALUE_HINT = Hint(
    "compare your forward with the formula ReLU(F(x) + x) of section 1: which operations belong "
    "to F, and what acts on the sum? And in a strided block: which conv carries the stride in "
    "torchvision's v1.5 block, the one this check compares with?",
    "does F end with a BN or with a ReLU? Can the block's output be negative? The shortcut "
    "is x itself when there is no downsample module.",
)
_STRIDE_HINT = Hint(
    "your conv2 has no stride: that is the original ResNet's block (He et al.), same shapes, "
    "other values. This check compares with torchvision's v1.5 block, whose weights section 7 "
    "loads; section 1 says why v1.5 moved the stride.",
    "a strided 1x1 conv reads one pixel in four and never looks at the other three: which of "
    "the block's convs can subsample without leaving an input pixel unread?",
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
        conv2_stride = getattr(getattr(learner, "conv2", None), "stride", None)
        moved = stride != 1 and conv2_stride in (1, (1, 1))  # He et al.'s place for it
        hint = _STRIDE_HINT if moved else _VALUE_HINT
        for mode in ("eval", "train"):
            case = f"{name}, {mode} mode"
            ref.train(mode == "train")
            learner.train(mode == "train")
            got, expected = outputs(case, learner, ref, x, hint=_SHAPE_HINT)
            compare(case, got, expected, hint=hint, shape_hint=_SHAPE_HINT)
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
        "the first block of a stage is the one that held the stride: which grid is its input "
        "on, and so which rate do its taps need? The later blocks read the new grid.",
        "in an undilated ResNet the block with the stride reads the finer grid of the stage "
        "before; a stage that trades its stride for a rate keeps that block reading as before.",
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
