"""Self-checks for notebook 02 (ASPP): the image-pooling branch and the whole module."""

from __future__ import annotations

from typing import Any

import torch

from ._common import (
    CheckFailed,
    _compare,
    _name_differences,
    _passed,
    _randomize_batch_norms,
    _run,
    _run_with_hint,
)


def _build_module(check: str, cls: Any, *args: Any) -> torch.nn.Module:
    """Instantiate the learner's module class (not an instance) with ``args``."""
    if isinstance(cls, torch.nn.Module):
        raise CheckFailed(
            f"{check}: pass the class itself, e.g. {check}(MyThing), not an instance MyThing(...)."
        )
    module = _run(check, f"constructing with arguments {args}", cls, *args)
    if not isinstance(module, torch.nn.Module):
        raise CheckFailed(
            f"{check}: the class must build an nn.Module, got {type(module).__name__}"
        )
    return module


def _load_into_learner(
    check: str, learner: torch.nn.Module, reference: torch.nn.Module, names_hint: str
) -> None:
    """Copy the reference's weights into the learner's module, or say which names differ."""
    ours, theirs = learner.state_dict(), reference.state_dict()
    missing, unexpected = _name_differences(theirs, ours)
    if missing or unexpected:
        raise CheckFailed(
            f"{check}: your module's parameter names differ from the reference's. "
            f"Missing: {missing[:6] or 'none'}{' ...' if len(missing) > 6 else ''}; "
            f"unexpected: {unexpected[:6] or 'none'}{' ...' if len(unexpected) > 6 else ''}. "
            f"Hint: {names_hint}"
        )
    for key, value in theirs.items():
        if ours[key].shape != value.shape:
            raise CheckFailed(
                f"{check}: parameter '{key}' has shape {tuple(ours[key].shape)}, the reference's "
                f"is {tuple(value.shape)}. Hint: {names_hint}"
            )
    learner.load_state_dict(theirs)


def check_aspp_pooling(cls: Any) -> None:
    """Check an image-pooling branch class against :class:`deeplab_utils.ASPPPooling`.

    ``cls(in_channels, out_channels)`` must have the reference's submodules (pool, 1x1 conv,
    BN, ReLU, as ``nn.Sequential`` items 0-3); its forward maps ``(B, C_in, H, W)`` to
    ``(B, C_out, H, W)``. Compared in eval mode, in train mode with a batch of 3 (output and
    the BN's updated running statistics), and in train mode with a batch of one (the BN must
    use its running statistics and leave them unchanged), on odd and non-square sizes.
    Taught in notebook 02.
    """
    from ..aspp import ASPPPooling

    check = "check_aspp_pooling"
    gen = torch.Generator().manual_seed(0)
    cases = [
        # (name, batch, c_in, c_out, (H, W), train)
        ("eval mode, batch 2, 9x9", 2, 8, 4, (9, 9), False),
        ("eval mode, batch 1, non-square 7x12", 1, 6, 5, (7, 12), False),
        ("train mode, batch 3, odd size 11x5", 3, 8, 4, (11, 5), True),
        ("train mode, batch 1, 13x9", 1, 8, 4, (13, 9), True),
    ]
    hint = (
        "remember the size (H, W) first; then pool to 1x1, conv, BN, ReLU, and bilinearly "
        "upsample back to exactly (H, W)."
    )
    batch_one_hint = (
        "with a batch of one in train mode, the BN sees one value per channel: normalise "
        "with F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, "
        "training=False, eps=bn.eps) instead of calling bn(y)."
    )
    for name, b, c_in, c_out, size, train in cases:
        ref = ASPPPooling(c_in, c_out)
        _randomize_batch_norms(ref, gen)
        learner = _build_module(check, cls, c_in, c_out)
        _load_into_learner(
            check,
            learner,
            ref,
            "subclass nn.Sequential and pass AdaptiveAvgPool2d(1), Conv2d(C_in, C_out, 1, "
            "bias=False), BatchNorm2d(C_out), ReLU() to super().__init__ in this order.",
        )
        ref.train(train)
        learner.train(train)
        x = torch.randn(b, c_in, *size, generator=gen)
        case_hint = batch_one_hint if train and b == 1 else hint
        with torch.no_grad():
            expected = ref(x.clone())
            got = _run_with_hint(check, name, case_hint, learner, x.clone())
        _compare(check, name, got, expected, hint=case_hint)
        bn_ref, bn_learner = ref[2], learner[2]
        for stat in ("running_mean", "running_var"):
            _compare(
                check,
                f"{name} (BN {stat} after the forward)",
                getattr(bn_learner, stat),
                getattr(bn_ref, stat),
                hint=batch_one_hint
                if b == 1
                else "in train mode with a batch of several images, call the BN module itself "
                "so it updates its running statistics.",
            )
    _passed(check, len(cases), "your pooling branch equals deeplab_utils.ASPPPooling.")


def check_aspp(cls: Any) -> None:
    """Check an ASPP class against :class:`deeplab_utils.ASPP` (regular convolutions).

    ``cls(in_channels, out_channels, rates)`` must have the reference's submodule names
    (``convs``: 1x1 branch, one atrous branch per rate, image pooling; ``project``) so that the
    reference's state dict loads into it; its forward maps ``(B, C_in, H, W)`` to
    ``(B, C_out, H, W)``. Compared in eval mode on odd sizes, batch 1 and 2, with 2 or 3 rates
    (one larger than the map), and in train mode with the same dropout mask.
    Taught in notebook 02.
    """
    from ..aspp import ASPP

    check = "check_aspp"
    gen = torch.Generator().manual_seed(0)
    cases = [
        # (name, batch, c_in, c_out, rates, (H, W), train)
        ("eval mode, batch 2, rates (1, 2, 3), 9x11", 2, 8, 4, (1, 2, 3), (9, 11), False),
        ("eval mode, batch 1, rates (6, 12, 18), 13x13", 1, 6, 4, (6, 12, 18), (13, 13), False),
        ("eval mode, two rates (2, 4), 8x7", 2, 8, 3, (2, 4), (8, 7), False),
        ("train mode, batch 2, rates (1, 3, 5), 10x9", 2, 8, 4, (1, 3, 5), (10, 9), True),
    ]
    hint = (
        "run every branch in self.convs on the same input x, concatenate their outputs along "
        "the channel dimension (dim=1) in order, then apply self.project."
    )
    names_hint = (
        "use the names of deeplab_utils.ASPP: self.convs = nn.ModuleList([1x1 branch, "
        "one MyASPPConv per rate, MyASPPPooling]) and self.project = nn.Sequential(Conv2d("
        "len(self.convs) * out_channels, out_channels, 1, bias=False), BatchNorm2d, ReLU, "
        "Dropout(0.5))."
    )
    for name, b, c_in, c_out, rates, size, train in cases:
        ref = ASPP(c_in, c_out, rates)
        _randomize_batch_norms(ref, gen)
        learner = _build_module(check, cls, c_in, c_out, rates)
        _load_into_learner(check, learner, ref, names_hint)
        ref.train(train)
        learner.train(train)
        x = torch.randn(b, c_in, *size, generator=gen)
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            # the same seed before each forward gives both the same dropout mask
            torch.manual_seed(1)
            expected = ref(x.clone())
            torch.manual_seed(1)
            got = _run_with_hint(check, name, hint, learner, x.clone())
        _compare(check, name, got, expected, hint=hint)
    _passed(check, len(cases), "your ASPP equals deeplab_utils.ASPP.")
