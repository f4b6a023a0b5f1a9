"""Self-checks for notebook 04 (decoder and full model): the decoder and the model's forward."""

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


def _load_reference_state(check: str, learner: torch.nn.Module, ref: torch.nn.Module) -> None:
    """Copy ``ref``'s weights into ``learner``; a :class:`CheckFailed` lists any name mismatch."""
    own = learner.state_dict()
    theirs = ref.state_dict()
    missing, unexpected = _name_differences(theirs, own)
    mismatched = [
        f"{k}: {tuple(own[k].shape)} vs expected {tuple(v.shape)}"
        for k, v in theirs.items()
        if k in own and own[k].shape != v.shape
    ]
    if missing or unexpected or mismatched:
        raise CheckFailed(
            f"{check}: your module's parameters are named or shaped differently from "
            f"{type(ref).__name__}'s: missing {missing[:6]}, unexpected {unexpected[:6]}, "
            f"shape mismatches {mismatched[:4]}. Hint: keep the submodule names of the given "
            "__init__ (reduce, refine, classifier) and the paper's layer sizes (48-channel "
            "projection, two 3x3 convs of 256)."
        )
    learner.load_state_dict(theirs)


def check_decoder(cls: Any) -> None:
    """Check a learner's DeepLabv3+ decoder class against :class:`deeplab_utils.Decoder`.

    ``cls(num_classes, low_level_channels=..., aspp_channels=...)`` must build a module with the
    package's submodule names (``reduce``, ``refine``, ``classifier``) whose
    ``forward(aspp_out, low_level)`` maps ``(B, aspp_channels, h, w)`` and
    ``(B, low_level_channels, H/4, W/4)`` to logits ``(B, num_classes, H/4, W/4)``. The
    reference's weights (with random BN statistics) are loaded into the learner's module, and
    outputs are compared on odd sizes (where ``scale_factor=4`` is wrong), output strides 16
    and 8, batch 1 and 2, in eval and train mode. Separable convolutions are not used.
    Taught in notebook 04.
    """
    from ..decoder import Decoder

    check = "check_decoder"
    if isinstance(cls, torch.nn.Module):
        raise CheckFailed(
            f"{check}: pass the class itself, e.g. {check}(MyDecoder), not an instance "
            "MyDecoder(...)."
        )
    gen = torch.Generator().manual_seed(0)
    cases = [
        # (name, batch, low_level_channels, aspp_channels, num_classes, aspp size, low size, train)
        ("97x131 image at OS 16: ASPP 7x9, low-level 25x33", 2, 256, 256, 3, (7, 9), (25, 33), 0),
        ("batch 1, OS 16, 49x65 image: 4x5 -> 13x17", 1, 24, 40, 5, (4, 5), (13, 17), 0),
        ("OS 8, 49x65 image: 7x9 -> 13x17", 2, 24, 40, 2, (7, 9), (13, 17), 0),
        ("train mode (BN uses batch statistics), 5x6 -> 17x21", 2, 16, 32, 4, (5, 6), (17, 21), 1),
        ("a 1x1 ASPP map (image smaller than 16x16) -> 3x4", 1, 16, 32, 3, (1, 1), (3, 4), 0),
    ]
    hint_shape = (
        "project the low-level features (reduce), upsample the ASPP output with "
        "F.interpolate(..., size=low_level.shape[-2:]) -- not scale_factor=4, which is wrong for "
        "odd sizes --, concatenate, refine, classify. The output stays at the low-level size."
    )
    hint_values = (
        "the shapes are right but not the values: concatenate [upsampled ASPP output, projected "
        "low-level features] in that order along dim=1, upsample bilinearly with "
        "align_corners=False, and apply reduce to the low-level features (not to the ASPP output)."
    )
    for name, b, c_low, c_aspp, k, aspp_size, low_size, train in cases:
        kwargs = {"low_level_channels": c_low, "aspp_channels": c_aspp}
        ref = Decoder(k, **kwargs)
        _randomize_batch_norms(ref, gen)
        learner = _run(check, f"constructing {cls.__name__}({k}, **{kwargs})", cls, k, **kwargs)
        if not isinstance(learner, torch.nn.Module):
            raise CheckFailed(f"{check}: {cls!r}(...) did not build an nn.Module.")
        _load_reference_state(check, learner, ref)
        ref.train(bool(train))
        learner.train(bool(train))
        aspp_out = torch.randn(b, c_aspp, *aspp_size, generator=gen)  # (B, C_aspp, h, w)
        low_level = torch.randn(b, c_low, *low_size, generator=gen)  # (B, C_low, H/4, W/4)
        with torch.no_grad():
            expected = ref(aspp_out.clone(), low_level.clone())  # (B, k, H/4, W/4)
            got = _run_with_hint(
                check, name, hint_shape, learner, aspp_out.clone(), low_level.clone()
            )
        shape_ok = getattr(got, "shape", None) == expected.shape
        _compare(check, name, got, expected, hint=hint_values if shape_ok else hint_shape)
    _passed(check, len(cases), "your decoder equals deeplab_utils.Decoder.")


def check_deeplabv3plus_forward(fn: Any) -> None:
    """Check a learner's DeepLabv3+ ``forward(self, x)`` against :class:`DeepLabV3Plus`'s.

    ``fn`` is the forward function (or a class whose ``forward`` is checked). It is called as
    ``fn(model, x)`` with ``model`` a :class:`deeplab_utils.DeepLabV3Plus` (submodules
    ``backbone``, ``aspp``, ``decoder``) and ``x`` of shape ``(B, 3, H, W)``, and must return
    logits ``(B, num_classes, H, W)`` equal to ``model(x)``. Cases: odd sizes at output strides
    16 and 8, batch 1 and 2, eval and train mode. Taught in notebook 04.
    """
    from ..model import DeepLabV3Plus

    check = "check_deeplabv3plus_forward"
    if isinstance(fn, type):
        fn = getattr(fn, "forward", None)
    if not callable(fn):
        raise CheckFailed(
            f"{check}: pass your forward function or class, e.g. {check}(MyDeepLabV3Plus)."
        )
    gen = torch.Generator().manual_seed(0)
    models = {os: DeepLabV3Plus(3, output_stride=os) for os in (16, 8)}
    for model in models.values():
        _randomize_batch_norms(model, gen)
    cases = [
        # (name, output stride, batch, (H, W), train)
        ("97x131 image, OS 16, batch 1", 16, 1, (97, 131), False),
        ("49x65 images, OS 8, batch 2", 8, 2, (49, 65), False),
        ("train mode, 33x47 images, OS 16, batch 2", 16, 2, (33, 47), True),
    ]
    hints = {
        "shape": "the logits must come back at the input's size: F.interpolate(logits, "
        "size=x.shape[-2:], ...), not scale_factor=4 (wrong for odd sizes).",
        "values": "backbone(x) returns a dict: ASPP takes features['out'], the decoder takes "
        "(aspp_out, features['low_level']); upsample bilinearly with align_corners=False.",
    }
    for name, os_, b, size, train in cases:
        model = models[os_].train(train)
        x = torch.randn(b, 3, *size, generator=gen)  # (B, 3, H, W)
        # Same seed for both calls: ASPP's dropout draws random masks in train mode.
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            expected = model(x.clone())  # (B, 3, H, W)
            torch.manual_seed(0)
            got = _run_with_hint(check, name, hints["values"], fn, model, x.clone())
        shape_ok = getattr(got, "shape", None) == expected.shape
        _compare(check, name, got, expected, hint=hints["values" if shape_ok else "shape"])
    _passed(check, len(cases), "backbone -> ASPP -> decoder -> upsample, as in the package.")
