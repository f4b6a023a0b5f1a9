"""Self-checks for notebook 02 (ASPP): the image-pooling branch and the whole module."""

import torch

from ..aspp import ASPP, ASPPPooling
from ..separable import SeparableConv2d
from . import pieces
from ._common import Hint, compare, exercise_check, fail, outputs, passed, twins

pieces.register("separable", SeparableConv2d, "02")  # proved equal in its own cell, no exercise

_POOLING_HINT = Hint(
    "remember the size (H, W) first; then pool to 1x1, conv, BN, ReLU, and bilinearly "
    "upsample back to exactly (H, W) (align_corners=False).",
    "the output is (B, C_out, H, W) for the input's own H and W, even when they differ: the "
    "1x1 map that leaves the ReLU is resized bilinearly to the size you kept.",
)
_BN_HINT = Hint(
    "in train mode a batch of one gives the BN one value per channel: normalise it with the "
    "running statistics, left unchanged, and any other batch with the BN module itself (which "
    "updates them); do not switch a module to eval mode inside forward: the mode stays set.",
    "F.batch_norm takes the statistics as arguments: in train mode with one image, hand it the "
    "BN's running mean and variance, weight, bias and eps, with training=False; any other "
    "batch goes through the BN module itself.",
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
            after_one = b == 1 or call > 1  # a later call is wrong because of the batch of one
            hint = _BN_HINT if train and after_one else _POOLING_HINT
            got, expected = outputs(case, learner, ref, torch.randn(b, c_in, *size), hint=hint)
            compare(case, got, expected, hint=hint)
            for stat in ("running_mean", "running_var"):
                ours, theirs = getattr(learner[2], stat), getattr(ref[2], stat)
                compare(f"{case} (BN {stat} after the forward)", ours, theirs, hint=_BN_HINT)
            module, bn = ("train" if m.training else "eval" for m in (learner, learner[2]))
            if module != mode or bn != mode:
                message = f"after the forward the module is in {module} mode and its BN in {bn}"
                raise fail(case, f"{message} mode; both must stay in {mode} mode", _BN_HINT)
    passed(len(cases), "your pooling branch equals deeplab_utils.ASPPPooling.")


_ASPP_NAMES_HINT = Hint(
    "self.convs is an nn.ModuleList of the branches in the order 1x1, one MyASPPConv per "
    "rate, MyASPPPooling; self.project an nn.Sequential of a 1x1 conv, BN, ReLU and "
    "dropout. The projection's input is every branch's channels together, however many "
    "rates there are.",
    "every branch maps C_in to C_out channels, so the projection's 1x1 conv takes "
    "len(self.convs) * C_out of them; names come from positions (convs.0 the 1x1 branch, "
    "convs.1 the first rate, ..., the pooling branch last; project.0 to project.3).",
)
_ASPP_HINT = Hint(
    "every branch sees the same input and must return (B, C_out, H, W) (a 3x3 conv at "
    "rate r keeps the size with padding r); concatenate them along the channels, in the "
    "order of self.convs, then project.",
    "the projection's input is the outputs of all the branches of self.convs, run on the "
    "same x and concatenated along the channels (dimension 1) in their order.",
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
