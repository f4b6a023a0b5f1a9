"""Self-checks for notebook 02 (ASPP): the image-pooling branch and the whole module."""

import torch

from ..aspp import ASPP, ASPPPooling
from ..separable import SeparableConv2d
from . import pieces
from ._common import Hint, compare, exercise_check, fail, outputs, passed, twins

pieces.register("separable", SeparableConv2d, "02")  # proved equal in its own cell, no exercise

_POOLING_HINT = Hint(
    "follow the shapes: after the pooling the map is 1x1, and the output must have the "
    "input's own H and W; where can you still read them when you upsample?",
    "the output is (B, C_out, H, W) for the input's own H and W, even when they differ (the "
    "check tries 7x12 and 11x5): read them before the pooling throws them away.",
)
_POOLING_VALUE_HINT = Hint(
    "the shapes are right but not the values: does every path through your forward (eval "
    "mode, train mode, a batch of one) apply pool -> conv -> BN -> ReLU, in order, once each?",
    "after the ReLU no value is negative, and each image's output is one vector repeated over "
    "H x W; compare your output after each stage with the four modules called one by one.",
)
_BN_HINT = Hint(
    "in train mode with a batch of one: what would eval mode compute here? Get that and leave "
    "every attribute of the module and its BN as it was (a mode set inside forward stays set).",
    "the functional form of batch norm in torch.nn.functional takes the statistics and the "
    "affine weights as arguments, and whether to use the batch's own; any other batch goes "
    "through the BN module as usual.",
)
_POOLING_NAMES_HINT = Hint(
    "subclass nn.Sequential and pass the four modules to super().__init__ in order.",
    "nn.Sequential names its modules 0 to 3 in the order given: the average pool to 1x1, "
    "the 1x1 conv from C_in to C_out channels, the BN of C_out channels, the ReLU.",
)


@exercise_check(ASPPPooling)
def check_aspp_pooling(cls: type) -> None:
    """``cls(in_channels, out_channels)``: in train mode a batch of one uses BN's running stats."""
    cases = [
        # (name: "train mode" or "eval mode" first, [batch of each call], c_in, c_out, (H, W))
        ("eval mode, batch 2, 9x9", [2], 8, 4, (9, 9)),
        ("eval mode, batch 1, non-square 7x12", [1], 6, 5, (7, 12)),
        ("train mode, batch 3, odd size 11x5", [3], 8, 4, (11, 5)),
        ("train mode, batch 1, 13x9", [1], 8, 4, (13, 9)),
        ("train mode, one module: batch 1, then batch 3", [1, 3], 8, 4, (6, 10)),
    ]
    for name, batches, c_in, c_out, size in cases:
        mode = name.split()[0]  # "train" or "eval"
        train = mode == "train"
        ref, learner = twins(name, cls, ASPPPooling, _POOLING_NAMES_HINT, c_in, c_out, train=train)
        for call, b in enumerate(batches, start=1):
            case = name if len(batches) == 1 else f"{name} (call {call}, batch {b})"
            # a batch of one in train mode, or a later call (wrong because of it): BN's case
            after_one = train and (b == 1 or call > 1)
            raised = _BN_HINT if after_one else _POOLING_HINT
            differ = _BN_HINT if after_one else _POOLING_VALUE_HINT
            got, expected = outputs(case, learner, ref, torch.randn(b, c_in, *size), hint=raised)
            compare(case, got, expected, hint=differ, shape_hint=_POOLING_HINT)
            for stat in ("running_mean", "running_var"):
                ours, theirs = getattr(learner[2], stat), getattr(ref[2], stat)
                compare(f"{case} (BN {stat} after the forward)", ours, theirs, hint=_BN_HINT)
            module, bn = ("train" if m.training else "eval" for m in (learner, learner[2]))
            if module != mode or bn != mode:
                message = f"after the forward the module is in {module} mode and its BN in {bn}"
                raise fail(case, f"{message} mode; both must stay in {mode} mode", _BN_HINT)
    passed(len(cases), "your pooling branch equals deeplab_utils.ASPPPooling.")


_ASPP_NAMES_HINT = Hint(
    "compare the keys listed with the conventions stated before the exercise: self.convs, an "
    "nn.ModuleList of the branches (1x1, one MyASPPConv per rate, MyASPPPooling), and "
    "self.project, an nn.Sequential of a 1x1 conv, BN, ReLU and dropout.",
    "names come from positions (convs.0 the 1x1 branch, convs.1 the first rate, ..., the "
    "pooling branch last; project.0 to project.3). If project.0's shape differs: how many "
    "channels does the concatenation hand it, for any number of rates?",
)
_ASPP_HINT = Hint(
    "every branch sees the same input and returns (B, C_out, H, W): along which dimension must "
    "their outputs be joined, in the order of self.convs, for the projection to read them all?",
    "print each branch's output shape on a small input, then the joined one: it keeps the "
    "input's batch, height and width, and has as many channels as project.0 expects.",
)


@exercise_check(ASPP)
def check_aspp(cls: type) -> None:
    """``cls(in_channels, out_channels, rates, dropout=0.5)``, with the reference's names."""
    cases = [
        # (name: "train mode" or "eval mode" first, batch, c_in, c_out, rates, (H, W), dropout)
        ("eval mode, batch 2, rates (1, 2, 3), 9x11", 2, 8, 4, (1, 2, 3), (9, 11), 0.5),
        ("eval mode, batch 1, rates (6, 12, 18), 13x13", 1, 6, 4, (6, 12, 18), (13, 13), 0.5),
        ("eval mode, two rates (2, 4), 8x7", 2, 8, 3, (2, 4), (8, 7), 0.5),
        ("eval mode, four rates (1, 2, 3, 5), 9x9", 2, 6, 3, (1, 2, 3, 5), (9, 9), 0.5),
        ("train mode, batch 2, rates (1, 3, 5), 10x9", 2, 8, 4, (1, 3, 5), (10, 9), 0.5),
        ("train mode, dropout=0.1, rates (2, 3), 7x8", 2, 6, 4, (2, 3), (7, 8), 0.1),
    ]
    for name, b, c_in, c_out, rates, size, dropout in cases:
        train = name.startswith("train mode")
        args = (c_in, c_out, rates)
        ref, learner = twins(name, cls, ASPP, _ASPP_NAMES_HINT, *args, dropout=dropout, train=train)
        x = torch.randn(b, c_in, *size)  # the same seed for both: the same dropout mask
        got, expected = outputs(name, learner, ref, x, hint=_ASPP_HINT, seed=1)
        hint = _ASPP_HINT
        dropouts = [m.p for m in learner.modules() if isinstance(m, torch.nn.Dropout)]
        if train and getattr(got, "shape", None) == expected.shape and dropouts != [dropout]:
            hint = f"use the dropout probability you are given ({dropout}), once, at the end "
            hint += f"of the projection; your module has {dropouts}."
        compare(name, got, expected, hint=hint)
    passed(len(cases), "your ASPP equals deeplab_utils.ASPP.")
