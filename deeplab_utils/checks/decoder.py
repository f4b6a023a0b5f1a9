"""Self-checks for notebook 04 (decoder and full model), and the loader of reference weights."""

import contextlib
from collections.abc import Callable
from functools import partial

import torch

from ..decoder import Decoder
from ..model import DeepLabV3Plus
from ._common import Hint, compare, exercise_check, fail, load_weights, outputs, passed, twins


def load_reference_weights(
    module: torch.nn.Module, reference: torch.nn.Module, *inputs: torch.Tensor
) -> torch.nn.Module:
    """Load ``reference``'s weights (a decoder's or a whole network's) into ``module`` as the checks
    compare them: biases before a BN set to 0, the decoder's concatenation in the order (the ASPP
    output or the low-level features first) giving ``reference(*inputs)``. Notebooks 02-04, 07."""
    weights = reference.state_dict()
    swapped = _low_level_first(weights) if inputs else None
    for order in [weights] if swapped is None else [swapped, weights]:  # the reference's last:
        load_weights(module, order)  # it stays when neither gives the reference's output
        with torch.no_grad():
            if inputs and torch.allclose(module(*inputs), reference(*inputs), atol=1e-5):
                break
    return module


def _low_level_first(
    weights: dict[str, torch.Tensor], back: bool = False
) -> dict[str, torch.Tensor] | None:
    """``weights`` with the decoder's first refining unit (regular or separable) reading the
    low-level features' channels first, then the ASPP output's (``back``: the other way, from
    such weights to the package's order); None without a decoder."""
    for prefix in ("refine.0.0.", "decoder.refine.0.0."):
        reduce = weights.get(prefix.replace("refine.0.0.", "reduce.0.weight"))  # (48, 256, 1, 1)
        first = weights.get(f"{prefix}weight", weights.get(f"{prefix}pointwise.weight"))
        if reduce is None or first is None:
            continue
        low, total = reduce.shape[0], first.shape[1]  # 48 of the 256 + 48 input channels
        order = torch.cat([torch.arange(total - low, total), torch.arange(total - low)])
        order = order.argsort() if back else order
        swapped = dict(weights)
        for key, value in weights.items():
            if key.startswith(prefix) and value.ndim > 0:  # convs' inputs, BN's channels
                inputs = key in (f"{prefix}weight", f"{prefix}pointwise.weight")
                swapped[key] = value.index_select(1 if inputs else 0, order)
        return swapped
    return None


_NAMES_HINT = Hint(
    "the names are the conventions stated before the exercise: reduce (conv, BN, ReLU), "
    "refine (an nn.Sequential of two conv-BN-ReLU units) and classifier (a 1x1 conv with a "
    "bias, as no BN follows it); compare the keys listed with them.",
    "the names follow the positions: reduce.0 is reduce's conv, refine.0.0 the first refining "
    "conv, refine.1.0 the second. If refine.0.0's shape differs: how many channels does the "
    "concatenation hand it?",
)
_DECODER_SHAPE_HINT = Hint(
    "the logits come out at the low-level features' size, whatever the image size: which input "
    "must be resized, and to exactly what size (a fixed factor misses it for odd sizes)? Does "
    "every 3x3 conv keep its input's size?",
    "the resizing function takes a target size as well as a factor: which tensor's own height "
    "and width must the ASPP output match before the two meet?",
)
_DECODER_HINT = Hint(
    "the shapes are right but not the values: which input goes through reduce, how is the "
    "other resized (bilinear, align_corners=False, the course's convention), and along which "
    "dimension do the two meet?",
    _DECODER_SHAPE_HINT.full,
)


@exercise_check(Decoder)
def check_decoder(cls: type) -> None:
    """``cls(num_classes, low_level_channels=..., aspp_channels=...)``: logits at H/4 x W/4."""
    cases = [
        # (name, batch, low_level_channels, aspp_channels, num_classes, aspp size, low size, train)
        ("97x131 image at OS 16: ASPP 7x9, low-level 25x33", 2, 256, 256, 3, (7, 9), (25, 33), 0),
        ("batch 1, OS 16, 49x65 image: 4x5 -> 13x17", 1, 24, 40, 5, (4, 5), (13, 17), 0),
        ("OS 8, 49x65 image: 7x9 -> 13x17", 2, 24, 40, 2, (7, 9), (13, 17), 0),
        ("train mode (BN uses batch statistics), 5x6 -> 17x21", 2, 16, 32, 4, (5, 6), (17, 21), 1),
        ("a 1x1 ASPP map (image smaller than 16x16) -> 3x4", 1, 16, 32, 3, (1, 1), (3, 4), 0),
    ]
    for name, b, c_low, c_aspp, k, aspp_size, low_size, train in cases:
        channels = {"low_level_channels": c_low, "aspp_channels": c_aspp}
        ref, learner = twins(name, cls, Decoder, _NAMES_HINT, k, **channels, train=bool(train))
        # the ASPP output (B, C_aspp, h, w) and the low-level features (B, C_low, H/4, W/4)
        inputs = torch.randn(b, c_aspp, *aspp_size), torch.randn(b, c_low, *low_size)
        with contextlib.suppress(Exception):  # code that fails, fails in outputs() below
            load_reference_weights(learner, ref, *inputs)  # either order of the concatenation
        got, expected = outputs(name, learner, ref, *inputs, hint=_DECODER_SHAPE_HINT)
        compare(name, got, expected, hint=_DECODER_HINT, shape_hint=_DECODER_SHAPE_HINT)
    passed(len(cases), "your decoder equals deeplab_utils.Decoder.")


_FORWARD_FULL = (
    "print the keys and shapes of the backbone's dict on a small image: one entry is at stride "
    "4, the other at the output stride; the figure of section 1 shows which module reads which, "
    "and the logits leave at the input's own size."
)
_FORWARD_SHAPE_HINT = Hint(
    "the logits must come back at the input's exact size (scale_factor=4 is wrong for odd sizes).",
    _FORWARD_FULL,
)
_FORWARD_HINT = Hint(
    "follow the figure of section 1: which of the backbone's two outputs does each module read? "
    "Resize the course's way (bilinear, align_corners=False).",
    _FORWARD_FULL,
)


@exercise_check(DeepLabV3Plus)
def check_deeplabv3plus_forward(fn: Callable) -> None:
    """``fn(model, x)``, a DeepLabV3+ forward (or a class with one): logits at the input's size."""
    fn = getattr(fn, "forward", None) if isinstance(fn, type) else fn
    if isinstance(fn, torch.nn.Module) or not callable(fn):
        raise fail(None, "pass your forward function, or your class (e.g. MyDeepLabV3Plus).")
    models = {os: DeepLabV3Plus(3, output_stride=os) for os in (16, 8)}
    cases = [
        # (name, output stride, batch, (H, W), train)
        ("97x131 image, OS 16, batch 1", 16, 1, (97, 131), False),
        ("49x65 images, OS 8, batch 2", 8, 2, (49, 65), False),
        ("train mode, 33x47 images, OS 16, batch 2", 16, 2, (33, 47), True),
    ]
    for name, os_, b, size, train in cases:
        model = models[os_].train(train)
        x = torch.randn(b, 3, *size)  # (B, 3, H, W)
        got, expected = outputs(name, partial(fn, model), model, x, hint=_FORWARD_HINT)
        compare(name, got, expected, hint=_FORWARD_HINT, shape_hint=_FORWARD_SHAPE_HINT)
    passed(len(cases), "backbone -> ASPP -> decoder -> upsample, as in the package.")
