"""Self-checks for notebook 04 (decoder and full model): the decoder and the model's forward."""

from __future__ import annotations

from functools import partial
from typing import Any

import torch

from ..backbone import state_dict_differences
from ..decoder import Decoder
from ..model import DeepLabV3Plus
from ._common import (
    CheckFailed,
    Hint,
    _compare,
    _fail,
    _outputs,
    _passed,
    _randomize_batch_norms,
    _run,
    exercise_check,
)
from .aspp import _bias_before_bn

_DECODER_NAMES_HINT = Hint(
    "three submodules: reduce (a 1x1 conv down to LOW_LEVEL_CHANNELS, BN, ReLU), refine (an "
    "nn.Sequential of two conv-BN-ReLU units, DECODER_CHANNELS wide; the first one takes the "
    "concatenation) and classifier (a 1x1 conv with a bias, as no BN follows it).",
    "the names follow the positions: reduce.0 is reduce's conv, refine.0.0 the first refining "
    "conv (it takes aspp_channels + LOW_LEVEL_CHANNELS inputs), refine.1.0 the second; the "
    "classifier is a bare nn.Conv2d to num_classes.",
)


@exercise_check("decoder:Decoder")
def check_decoder(cls: Any) -> None:
    """Check a learner's DeepLabv3+ decoder class against :class:`deeplab_utils.Decoder`.

    ``cls(num_classes, low_level_channels=..., aspp_channels=...)`` must have the submodules
    ``reduce``, ``refine`` and ``classifier``; ``forward(aspp_out, low_level)`` maps
    ``(B, aspp_channels, h, w)`` and ``(B, low_level_channels, H/4, W/4)`` to ``(B, num_classes,
    H/4, W/4)``. With the reference's weights loaded (the first refining conv's input channels in
    either order of the concatenation), outputs are compared on odd sizes (where
    ``scale_factor=4`` is wrong), output strides 16 and 8, in eval and train mode. Taught in
    notebook 04.
    """
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
    hint_shape = Hint(
        "the logits come out at the low-level features' size, whatever the image size: "
        "upsample the ASPP output to exactly that size (scale_factor=4 is wrong for odd sizes), "
        "and keep every 3x3 conv's output the size of its input.",
        "F.interpolate takes a target size= as well as a scale_factor=: ask for the reduced "
        "low-level features' own (H/4, W/4), then concatenate, refine and classify.",
    )
    hint_values = Hint(
        "the shapes are right but not the values: reduce the low-level features (not the ASPP "
        "output), upsample bilinearly with align_corners=False, and concatenate the upsampled "
        "ASPP output and the reduced low-level features along the channels (either order).",
        hint_shape.full,
    )
    for name, b, c_low, c_aspp, k, aspp_size, low_size, train in cases:
        kwargs = {"low_level_channels": c_low, "aspp_channels": c_aspp}
        ref = Decoder(k, **kwargs)
        _randomize_batch_norms(ref, gen)
        learner = _run(f"constructing ({k}, **{kwargs})", cls, k, **kwargs)
        if not isinstance(learner, torch.nn.Module):
            raise CheckFailed(f"{check}: {cls!r}(...) did not build an nn.Module.")
        missing, unexpected, mismatched = state_dict_differences(
            ref.state_dict(), learner.state_dict()
        )
        harmless = [key for key in unexpected if _bias_before_bn(key, ref.state_dict())]
        unexpected = [key for key in unexpected if key not in harmless]
        if missing or unexpected or mismatched:
            raise _fail(
                "parameter names and shapes",
                f"your module's parameters are named or shaped differently from "
                f"{type(ref).__name__}'s: missing {missing[:6]}, unexpected {unexpected[:6]}, "
                f"shape mismatches {mismatched[:4]}",
                _DECODER_NAMES_HINT,
            )
        with torch.no_grad():  # set to 0, they give the reference's function (see check_aspp)
            for key in harmless:
                learner.get_parameter(key).zero_()
        ref.train(bool(train))
        learner.train(bool(train))
        aspp_out = torch.randn(b, c_aspp, *aspp_size, generator=gen)  # (B, C_aspp, h, w)
        low_level = torch.randn(b, c_low, *low_size, generator=gen)  # (B, C_low, H/4, W/4)
        weights = {k: v.clone() for k, v in ref.state_dict().items()}
        w = weights["refine.0.0.weight"]  # (256, C_aspp + 48, 3, 3): ASPP channels first
        swapped = {**weights, "refine.0.0.weight": torch.cat([w[:, c_aspp:], w[:, :c_aspp]], 1)}
        results = []
        for state in (weights, swapped):  # either order of the concatenation is right
            learner.load_state_dict(state, strict=False)
            got, expected = _outputs(name, learner, ref, aspp_out, low_level, hint=hint_shape)
            results.append((got, expected))
            if getattr(got, "shape", None) == expected.shape and torch.allclose(
                got.double(), expected.double(), atol=1e-5, rtol=1e-4
            ):
                break
        else:
            got, expected = results[0]
        _compare(name, got, expected, hint=hint_values, shape_hint=hint_shape)
    _passed(len(cases), "your decoder equals deeplab_utils.Decoder.")


@exercise_check("model:DeepLabV3Plus")
def check_deeplabv3plus_forward(fn: Any) -> None:
    """Check a learner's DeepLabv3+ ``forward(self, x)`` against :class:`DeepLabV3Plus`'s.

    ``fn`` (a forward function, or a class whose ``forward`` is checked) is called as ``fn(model,
    x)`` with ``model`` a :class:`deeplab_utils.DeepLabV3Plus` and ``x`` ``(B, 3, H, W)``, and must
    return ``model(x)``, ``(B, num_classes, H, W)``. Cases: odd sizes, output strides 16 and 8,
    eval and train mode. Returns what it was given when it passes. Taught in notebook 04.
    """
    check = "check_deeplabv3plus_forward"
    if isinstance(fn, type):
        fn = getattr(fn, "forward", None)
    if isinstance(fn, torch.nn.Module):
        raise CheckFailed(f"{check}: pass the class itself, e.g. {check}(MyDeepLabV3Plus).")
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
    full = (
        "the features go image -> backbone -> ASPP (the 'out' features) -> decoder (with the "
        "'low_level' features) -> logits at H/4 x W/4, which are resized to the input's own size."
    )
    shape_hint = Hint(
        "the logits must come back at the input's exact size (scale_factor=4 is wrong for odd "
        "sizes).",
        full,
    )
    value_hint = Hint(
        "the backbone returns a dict: ASPP takes its deepest features, the decoder the ASPP "
        "output and the low-level features; upsample bilinearly, align_corners=False.",
        full,
    )
    for name, os_, b, size, train in cases:
        model = models[os_].train(train)
        x = torch.randn(b, 3, *size, generator=gen)  # (B, 3, H, W)
        # the same seed for both calls: ASPP's dropout draws random masks in train mode
        got, expected = _outputs(name, partial(fn, model), model, x, hint=value_hint, seed=0)
        _compare(name, got, expected, hint=value_hint, shape_hint=shape_hint)
    _passed(len(cases), "backbone -> ASPP -> decoder -> upsample, as in the package.")
