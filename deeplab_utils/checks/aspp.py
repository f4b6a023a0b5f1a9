"""Self-checks for notebook 02 (ASPP): the image-pooling branch and the whole module."""

from __future__ import annotations

from typing import Any

import torch

from ..backbone import state_dict_differences
from ._common import (
    CheckFailed,
    Hint,
    _compare,
    _fail,
    _passed,
    _randomize_batch_norms,
    _run,
    _run_with_hint,
    exercise_check,
)


def _build_module(check: str, cls: Any, *args: Any, **kwargs: Any) -> torch.nn.Module:
    """Instantiate the learner's module class (not an instance) with ``args``."""
    if isinstance(cls, torch.nn.Module):
        raise CheckFailed(
            f"{check}: pass the class itself, e.g. {check}(MyThing), not an instance MyThing(...)."
        )
    shown = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
    module = _run(check, f"constructing with ({shown})", cls, *args, **kwargs)
    if not isinstance(module, torch.nn.Module):
        raise CheckFailed(
            f"{check}: the class must build an nn.Module, got {type(module).__name__}"
        )
    return module


def _load_into_learner(
    check: str, learner: torch.nn.Module, reference: torch.nn.Module, names_hint: str | Hint
) -> None:
    """Copy the reference's weights into the learner's module, or say which names differ."""
    ours, theirs = learner.state_dict(), reference.state_dict()
    missing, unexpected, _ = state_dict_differences(theirs, ours)
    case = "parameter names"
    if missing or unexpected:
        raise _fail(
            check,
            case,
            "your module's parameter names differ from the reference's. "
            f"Missing: {missing[:6] or 'none'}{' ...' if len(missing) > 6 else ''}; "
            f"unexpected: {unexpected[:6] or 'none'}{' ...' if len(unexpected) > 6 else ''}",
            names_hint,
        )
    for key, value in theirs.items():
        if ours[key].shape != value.shape:
            raise _fail(
                check,
                f"shape of {key}",
                f"parameter '{key}' has shape {tuple(ours[key].shape)}, the reference's is "
                f"{tuple(value.shape)}",
                names_hint,
            )
    learner.load_state_dict(theirs)


_POOLING_HINT = Hint(
    "remember the size (H, W) first; then pool to 1x1, conv, BN, ReLU, and bilinearly "
    "upsample back to exactly (H, W) (align_corners=False).",
    "size = x.shape[-2:]; y = relu(bn(conv(pool(x)))); "
    "return F.interpolate(y, size=size, mode='bilinear', align_corners=False).",
)
_BATCH_ONE_HINT = Hint(
    "with a batch of one in train mode the BN sees one value per channel: normalise with its "
    "running statistics and leave them unchanged, and do not switch the module to eval mode "
    "(the next call may have a batch of several images).",
    "if self.training and y.shape[0] == 1: y = F.batch_norm(y, bn.running_mean, "
    "bn.running_var, bn.weight, bn.bias, training=False, eps=bn.eps); else: y = bn(y).",
)
_BATCH_MANY_HINT = Hint(
    "in train mode with a batch of several images, call the BN module itself, in train mode, "
    "so it normalises with the batch's statistics and updates its running ones.",
    "y = bn(y) whenever the batch has more than one image; never call bn.eval() or self.eval().",
)


@exercise_check("aspp:ASPPPooling")
def check_aspp_pooling(cls: Any) -> None:
    """Check an image-pooling branch class against :class:`deeplab_utils.ASPPPooling`.

    ``cls(in_channels, out_channels)`` must have the reference's submodules (pool, 1x1 conv,
    BN, ReLU, as ``nn.Sequential`` items 0-3); its forward maps ``(B, C_in, H, W)`` to
    ``(B, C_out, H, W)``. Compared in eval mode, in train mode with a batch of 3 (output and
    the BN's updated running statistics), in train mode with a batch of one (the BN must use its
    running statistics and leave them unchanged), and with one module called with a batch of
    one and then a batch of 3 in train mode (a batch of one must not leave the BN, or the
    module, in eval mode), on odd and non-square sizes. Returns the class to use from then on.
    Taught in notebook 02.
    """
    from ..aspp import ASPPPooling

    check = "check_aspp_pooling"
    gen = torch.Generator().manual_seed(0)
    names_hint = Hint(
        "subclass nn.Sequential and pass the four modules to super().__init__ in order.",
        "super().__init__(nn.AdaptiveAvgPool2d(1), nn.Conv2d(C_in, C_out, 1, bias=False), "
        "nn.BatchNorm2d(C_out), nn.ReLU()).",
    )
    cases = [
        # (name, [batch of each call], c_in, c_out, (H, W), train)
        ("eval mode, batch 2, 9x9", [2], 8, 4, (9, 9), False),
        ("eval mode, batch 1, non-square 7x12", [1], 6, 5, (7, 12), False),
        ("train mode, batch 3, odd size 11x5", [3], 8, 4, (11, 5), True),
        ("train mode, batch 1, 13x9", [1], 8, 4, (13, 9), True),
        ("train mode, one module: batch 1, then batch 3", [1, 3], 8, 4, (6, 10), True),
    ]
    for name, batches, c_in, c_out, size, train in cases:
        ref = ASPPPooling(c_in, c_out)
        _randomize_batch_norms(ref, gen)
        learner = _build_module(check, cls, c_in, c_out)
        _load_into_learner(check, learner, ref, names_hint)
        ref.train(train)
        learner.train(train)
        for call, b in enumerate(batches, start=1):
            case = name if len(batches) == 1 else f"{name} (call {call}, batch {b})"
            hint = _BATCH_ONE_HINT if train and b == 1 else _POOLING_HINT
            if train and call > 1:
                hint = _BATCH_ONE_HINT  # a later call is wrong because of the batch of one
            x = torch.randn(b, c_in, *size, generator=gen)
            with torch.no_grad():
                expected = ref(x.clone())
                got = _run_with_hint(check, case, hint, learner, x.clone())
            _compare(check, case, got, expected, hint=hint)
            bn_ref, bn_learner = ref[2], learner[2]
            for stat in ("running_mean", "running_var"):
                _compare(
                    check,
                    f"{case} (BN {stat} after the forward)",
                    getattr(bn_learner, stat),
                    getattr(bn_ref, stat),
                    hint=_BATCH_ONE_HINT if b == 1 or call > 1 else _BATCH_MANY_HINT,
                )
            if learner.training != train or bn_learner.training != train:
                raise _fail(
                    check,
                    case,
                    f"after the forward the module is in {'train' if learner.training else 'eval'}"
                    f" mode and its BN in {'train' if bn_learner.training else 'eval'} mode; "
                    f"both must stay in {'train' if train else 'eval'} mode",
                    _BATCH_ONE_HINT,
                )
    _passed(check, len(cases), "your pooling branch equals deeplab_utils.ASPPPooling.")


@exercise_check("aspp:ASPP")
def check_aspp(cls: Any) -> None:
    """Check an ASPP class against :class:`deeplab_utils.ASPP` (regular convolutions).

    ``cls(in_channels, out_channels, rates, dropout=0.5)`` must build the reference's submodules
    (``convs``: the 1x1 branch, one atrous branch per rate, image pooling; ``project``: 1x1
    conv, BN, ReLU, dropout) with the same names and shapes, so that the reference's state dict
    loads into it; its forward maps ``(B, C_in, H, W)`` to ``(B, C_out, H, W)``. Compared in
    eval mode on odd sizes, batch 1 and 2, with 2, 3 or 4 rates (one larger than the map), and
    in train mode with the same dropout mask, at dropout 0.5 and 0.1. Returns the class to use
    from then on. Taught in notebook 02.
    """
    from ..aspp import ASPP

    check = "check_aspp"
    gen = torch.Generator().manual_seed(0)
    cases = [
        # (name, batch, c_in, c_out, rates, (H, W), train, dropout)
        ("eval mode, batch 2, rates (1, 2, 3), 9x11", 2, 8, 4, (1, 2, 3), (9, 11), False, 0.5),
        (
            "eval mode, batch 1, rates (6, 12, 18), 13x13",
            1,
            6,
            4,
            (6, 12, 18),
            (13, 13),
            False,
            0.5,
        ),
        ("eval mode, two rates (2, 4), 8x7", 2, 8, 3, (2, 4), (8, 7), False, 0.5),
        ("eval mode, four rates (1, 2, 3, 5), 9x9", 2, 6, 3, (1, 2, 3, 5), (9, 9), False, 0.5),
        ("train mode, batch 2, rates (1, 3, 5), 10x9", 2, 8, 4, (1, 3, 5), (10, 9), True, 0.5),
        ("train mode, dropout=0.1, rates (2, 3), 7x8", 2, 6, 4, (2, 3), (7, 8), True, 0.1),
    ]
    names_hint = Hint(
        "self.convs is an nn.ModuleList of the branches in the order 1x1, one MyASPPConv per "
        "rate, MyASPPPooling; self.project an nn.Sequential of a 1x1 conv, BN, ReLU and "
        "dropout. Convs followed by a BN have no bias; the projection's input is every "
        "branch's channels together, however many rates there are.",
        "self.convs = nn.ModuleList([nn.Sequential(nn.Conv2d(C_in, C_out, 1, bias=False), "
        "nn.BatchNorm2d(C_out), nn.ReLU()), *[MyASPPConv(C_in, C_out, r) for r in rates], "
        "MyASPPPooling(C_in, C_out)]); self.project = nn.Sequential(nn.Conv2d(len(self.convs) "
        "* C_out, C_out, 1, bias=False), nn.BatchNorm2d(C_out), nn.ReLU(), nn.Dropout(dropout)).",
    )
    forward_hint = Hint(
        "every branch sees the same input and must return (B, C_out, H, W) (a 3x3 conv at "
        "rate r keeps the size with padding r); concatenate them along the channels, in the "
        "order of self.convs, then project.",
        "return self.project(torch.cat([conv(x) for conv in self.convs], dim=1)).",
    )
    for name, b, c_in, c_out, rates, size, train, dropout in cases:
        ref = ASPP(c_in, c_out, rates, dropout=dropout)
        _randomize_batch_norms(ref, gen)
        learner = _build_module(check, cls, c_in, c_out, rates, dropout=dropout)
        _load_into_learner(check, learner, ref, names_hint)
        ref.train(bool(train))
        learner.train(bool(train))
        x = torch.randn(b, c_in, *size, generator=gen)
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            # the same seed before each forward gives both the same dropout mask
            torch.manual_seed(1)
            expected = ref(x.clone())
            torch.manual_seed(1)
            got = _run_with_hint(check, name, forward_hint, learner, x.clone())
        hint = forward_hint
        if train and getattr(got, "shape", None) == expected.shape:
            learner_p = [m.p for m in learner.modules() if isinstance(m, torch.nn.Dropout)]
            if learner_p != [dropout]:
                hint = Hint(
                    f"use the dropout probability you are given ({dropout}), once, "
                    f"at the end of the projection; your module has {learner_p}."
                )
        _compare(check, name, got, expected, hint=hint)
    _passed(check, len(cases), "your ASPP equals deeplab_utils.ASPP.")
