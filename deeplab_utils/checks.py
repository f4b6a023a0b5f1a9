"""Self-checks for the exercises: compare a learner's code with the reference on several cases.

Teaching-aid layer. A notebook calls e.g. ``check_atrous_conv2d(my_atrous_conv2d)`` right after
the cell the learner wrote. On success the check prints one friendly line; on failure it raises
:class:`CheckFailed` whose message names the case, what was expected and what came back, and a
hint -- never a bare assertion from deep inside torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


class CheckFailed(AssertionError):
    """The learner's code disagrees with the reference (or is not written yet)."""


NOT_IMPLEMENTED = "not implemented yet"


def _run(check: str, case: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call the learner's ``fn``, turning any exception into a :class:`CheckFailed`."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise CheckFailed(
            f"{check}: {NOT_IMPLEMENTED} -- replace the `raise NotImplementedError` "
            "under `# YOUR CODE HERE` with your code, run that cell, then run this check again."
        ) from None
    except Exception as exc:  # any error in learner code becomes one clear line
        raise CheckFailed(f"{check}: case '{case}' raised {type(exc).__name__}: {exc}") from exc


def _compare(
    check: str,
    case: str,
    got: Any,
    expected: torch.Tensor,
    *,
    hint: str = "",
    atol: float = 1e-5,
    rtol: float = 1e-4,
) -> None:
    """Raise :class:`CheckFailed` unless ``got`` is a tensor close to ``expected``."""
    hint = f" Hint: {hint}" if hint else ""
    if not isinstance(got, torch.Tensor):
        got = torch.as_tensor(got) if isinstance(got, (int, float)) else got
    if not isinstance(got, torch.Tensor):
        raise CheckFailed(
            f"{check}: case '{case}': expected a tensor, got {type(got).__name__}.{hint}"
        )
    if tuple(got.shape) != tuple(expected.shape):
        raise CheckFailed(
            f"{check}: case '{case}': expected shape {tuple(expected.shape)}, "
            f"got {tuple(got.shape)}.{hint}"
        )
    got64, exp64 = got.detach().double().cpu(), expected.detach().double().cpu()
    if not torch.allclose(got64, exp64, atol=atol, rtol=rtol, equal_nan=True):
        diff = (got64 - exp64).abs().nan_to_num(float("inf")).max().item()
        raise CheckFailed(
            f"{check}: case '{case}': values differ from the reference "
            f"(max abs difference {diff:.3g}, allowed {atol:g} + {rtol:g}*|expected|).{hint}"
        )


def _passed(check: str, cases: int, what: str) -> None:
    print(f"✓ {check}: all {cases} cases match the reference -- {what}")


# --- notebook 01: atrous convolution ---


def check_atrous_conv2d(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``fn(x, weight, bias=None, dilation=1, padding=0)`` against ``F.conv2d``.

    Cases: rates 1, 2 and 3, odd spatial sizes, batch 1 and 2, 1x1 and 3x3 kernels,
    with and without bias, with "same" padding and with none.
    """
    import torch.nn.functional as F

    check = "check_atrous_conv2d"
    gen = torch.Generator().manual_seed(0)
    cases = [
        # (name, batch, c_in, c_out, size, kernel, dilation, padding, bias)
        ("plain 3x3, rate 1, same padding", 2, 3, 4, (9, 9), 3, 1, 1, True),
        ("rate 2, same padding, odd size 13x17", 2, 3, 4, (13, 17), 3, 2, 2, True),
        ("rate 3, no padding, batch 1", 1, 2, 5, (15, 11), 3, 3, 0, False),
        ("rate 2, padding 1 (not 'same')", 1, 3, 2, (10, 12), 3, 2, 1, True),
        ("1x1 kernel, rate 3", 2, 4, 3, (7, 8), 1, 3, 0, True),
    ]
    hints = {
        "shape": "output size is H + 2*padding - dilation*(k - 1); did you pad, and space the "
        "taps `dilation` pixels apart?",
        "values": "each tap (m, n) should read the input at (i + m*dilation, j + n*dilation) of "
        "the padded input.",
    }
    for name, b, c_in, c_out, size, k, d, p, use_bias in cases:
        x = torch.randn(b, c_in, *size, generator=gen)
        w = torch.randn(c_out, c_in, k, k, generator=gen)
        bias = torch.randn(c_out, generator=gen) if use_bias else None
        expected = F.conv2d(x, w, bias, padding=p, dilation=d)
        got = _run(check, name, fn, x, w, bias, dilation=d, padding=p)
        hint = hints["shape"] if getattr(got, "shape", None) != expected.shape else hints["values"]
        _compare(check, name, got, expected, hint=hint, atol=1e-4)
    _passed(check, len(cases), "your atrous convolution equals F.conv2d(..., dilation=r).")


def check_receptive_field(fn: Callable[[list[tuple[int, int, int]]], int]) -> None:
    """Check ``fn(layers) -> int`` (layers = [(kernel, stride, dilation), ...]).

    The expected values come from back-propagating one output pixel through convolutions of
    ones and measuring which input pixels get a gradient: an independent oracle.
    """
    import torch.nn.functional as F

    check = "check_receptive_field"
    cases = [
        ("one 3x3 conv", [(3, 1, 1)]),
        ("three 3x3 convs, rate 1", [(3, 1, 1)] * 3),
        ("rates 1, 2, 4", [(3, 1, 1), (3, 1, 2), (3, 1, 4)]),
        ("a stride-2 layer first", [(3, 2, 1), (3, 1, 1)]),
        ("ResNet stem: 7x7/2 then 3x3/2 pool", [(7, 2, 1), (3, 2, 1)]),
        ("stride then dilation", [(3, 2, 1), (3, 1, 2), (1, 1, 1)]),
    ]
    for name, layers in cases:
        x = torch.zeros(1, 1, 96, 96, requires_grad=True)
        y = x
        for k, s, d in layers:
            y = F.conv2d(y, torch.ones(1, 1, k, k), stride=s, dilation=d)
        y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
        rows = x.grad[0, 0].abs().sum(dim=1).nonzero()
        expected = int(rows.max() - rows.min() + 1)
        got = _run(check, name, fn, layers)
        if got != expected:
            raise CheckFailed(
                f"{check}: case '{name}' {layers}: expected {expected}, got {got!r}. Hint: a "
                "layer adds dilation*(kernel - 1)*J, where J is the product of the strides "
                "of the layers before it (not including its own)."
            )
    _passed(check, len(cases), "your recurrence matches the measured receptive fields.")


# --- notebook 02: ASPP ---


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


def _randomize_batch_norms(module: torch.nn.Module, gen: torch.Generator) -> None:
    """Give every BN non-trivial statistics and affine weights, so that a missing BN shows."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.5)


def _load_into_learner(
    check: str, learner: torch.nn.Module, reference: torch.nn.Module, names_hint: str
) -> None:
    """Copy the reference's weights into the learner's module, or say which names differ."""
    ours, theirs = learner.state_dict(), reference.state_dict()
    missing = [k for k in theirs if k not in ours]
    unexpected = [k for k in ours if k not in theirs]
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


def _run_with_hint(check: str, case: str, hint: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Like :func:`_run`, with a hint appended when the learner's code raises."""
    try:
        return _run(check, case, fn, *args)
    except CheckFailed as exc:
        if NOT_IMPLEMENTED in str(exc):
            raise
        raise CheckFailed(f"{str(exc).rstrip('.')}. Hint: {hint}") from exc.__cause__


def check_aspp_pooling(cls: Any) -> None:
    """Check an image-pooling branch class against :class:`deeplab_utils.ASPPPooling`.

    ``cls(in_channels, out_channels)`` must have the reference's submodules (pool, 1x1 conv,
    BN, ReLU, as ``nn.Sequential`` items 0-3); its forward maps ``(B, C_in, H, W)`` to
    ``(B, C_out, H, W)``. Compared in eval mode, in train mode with a batch of 3 (output and
    the BN's updated running statistics), and in train mode with a batch of one (the BN must
    use its running statistics and leave them unchanged), on odd and non-square sizes.
    Taught in notebook 02.
    """
    from .aspp import ASPPPooling

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
    from .aspp import ASPP

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


# --- notebook 03: ResNet-50 backbone ---


def _load_reference_weights(check: str, case: str, learner: Any, reference: Any) -> None:
    """Copy the reference's state dict into the learner's module, explaining name mismatches."""
    if not isinstance(learner, torch.nn.Module):
        raise CheckFailed(
            f"{check}: case '{case}': constructing your class gave a "
            f"{type(learner).__name__}, expected an nn.Module."
        )
    expected, got = reference.state_dict(), learner.state_dict()
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    if missing or unexpected:
        raise CheckFailed(
            f"{check}: case '{case}': your module's parameter names differ from the reference's: "
            f"missing {missing}, unexpected {unexpected}. Hint: use torchvision's names conv1, "
            "bn1, conv2, bn2, conv3, bn3 and store the shortcut module as self.downsample."
        )
    shapes = [
        f"{k}: {tuple(got[k].shape)} vs expected {tuple(v.shape)}"
        for k, v in expected.items()
        if tuple(got[k].shape) != tuple(v.shape)
    ]
    if shapes:
        raise CheckFailed(
            f"{check}: case '{case}': parameter shapes differ: {shapes}. Hint: conv1 is 1x1 "
            "in_channels -> planes, conv2 is 3x3 planes -> planes, conv3 is 1x1 planes -> "
            "4 * planes."
        )
    learner.load_state_dict(expected)


def check_bottleneck(cls: Any) -> None:
    """Check a ResNet bottleneck class against :class:`deeplab_utils.Bottleneck`.

    ``cls(in_channels, planes, stride=..., dilation=..., downsample=...)`` must build the block
    with torchvision's names (conv1, bn1, conv2, bn2, conv3, bn3, downsample); ``forward`` maps
    ``(B, in_channels, H, W)`` to ``(B, 4 * planes, ceil(H / stride), ceil(W / stride))``. The
    reference's weights (with random BatchNorm statistics) are loaded into the learner's block
    and the outputs compared, in eval and in train mode. Cases: identity shortcut, a 1x1
    projection shortcut (channels change), stride 2 with odd sizes, dilation 2 and 4, batch 1
    and 3. Taught in notebook 03.
    """
    from torch import nn

    from .backbone import Bottleneck

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
        reference = Bottleneck(
            c_in, planes, stride=stride, dilation=dilation, downsample=shortcuts[0]
        )
        _randomize_batch_norms(reference, gen)
        learner = _run(
            check,
            name + " (constructing)",
            cls,
            c_in,
            planes,
            stride=stride,
            dilation=dilation,
            downsample=shortcuts[1],
        )
        _load_reference_weights(check, name, learner, reference)
        x = torch.randn(b, c_in, *size, generator=gen)
        for mode in ("eval", "train"):
            reference.train(mode == "train")
            learner.train(mode == "train")
            shape_hint = (
                "the output has 4 * planes channels and ceil(H / stride) rows: put the "
                "stride on conv2 (3x3) only, with padding = dilation, and add "
                "downsample(x) (not x) as the shortcut when downsample is not None."
            )
            with torch.no_grad():
                expected = reference(x.clone())
                try:
                    got = _run(check, f"{name}, {mode} mode", learner, x.clone())
                except CheckFailed as exc:
                    if NOT_IMPLEMENTED in str(exc):
                        raise
                    raise CheckFailed(f"{exc} Hint: {shape_hint}") from exc.__cause__
            if getattr(got, "shape", None) != expected.shape:
                hint = shape_hint
            else:
                hint = (
                    "out = relu(bn1(conv1(x))); out = relu(bn2(conv2(out))); "
                    "out = bn3(conv3(out)); then add the shortcut (x, or downsample(x)) "
                    "BEFORE the last ReLU: return relu(out + shortcut)."
                )
            _compare(check, f"{name}, {mode} mode", got, expected, hint=hint)
    _passed(check, len(cases), "your bottleneck equals deeplab_utils.Bottleneck.")


def _torchvision_stage_settings(output_stride: int) -> list[tuple[int, int]]:
    """(stride, dilation) of each stage of torchvision's dilated ResNet-50, read off its convs.

    Built on the meta device: only the layer settings are needed, not weights.
    """
    from torchvision.models import resnet50

    dilate = {32: [False, False, False], 16: [False, False, True], 8: [False, True, True]}
    with torch.device("meta"):
        net = resnet50(replace_stride_with_dilation=dilate[output_stride])
    stages = [net.layer1, net.layer2, net.layer3, net.layer4]
    # stride of the stage's first block; dilation of its last one (the first block keeps the
    # previous stage's rate, torchvision's `previous_dilation`)
    return [(stage[0].conv2.stride[0], stage[-1].conv2.dilation[0]) for stage in stages]


def check_stage_dilations(fn: Callable[[int], list[tuple[int, int]]]) -> None:
    """Check ``fn(output_stride) -> [(stride, dilation)] * 4`` for ResNet-50's four stages.

    ``stride`` is the stage's stride (1 or 2) and ``dilation`` the rate of its 3x3 convolutions
    (from its second block on). Compared with torchvision's ``resnet50`` built with
    ``replace_stride_with_dilation`` for output strides 32, 16 and 8. Taught in notebook 03.
    """
    check = "check_stage_dilations"
    hint = (
        "layer1 always has stride 1 (the stem already reached OS 4); each later stage halves "
        "the resolution (stride 2) until the output stride is reached; from then on a stage "
        "keeps stride 1 and multiplies the dilation by the 2 it did not use."
    )
    for output_stride in (32, 16, 8):
        name = f"output_stride={output_stride}"
        expected = _torchvision_stage_settings(output_stride)
        got = _run(check, name, fn, output_stride)
        try:
            got_list = [(int(s), int(d)) for s, d in got]
        except (TypeError, ValueError):
            raise CheckFailed(
                f"{check}: case '{name}': expected a list of 4 (stride, dilation) pairs, "
                f"got {got!r}."
            ) from None
        if got_list != expected:
            raise CheckFailed(
                f"{check}: case '{name}': expected {expected}, got {got_list}. Hint: {hint}"
            )
    _passed(check, 3, "your stage settings equal torchvision's replace_stride_with_dilation.")


# --- notebook 04: decoder and full model ---


def _load_reference_state(check: str, learner: torch.nn.Module, ref: torch.nn.Module) -> None:
    """Copy ``ref``'s weights into ``learner``; a :class:`CheckFailed` lists any name mismatch."""
    own = learner.state_dict()
    theirs = ref.state_dict()
    missing = [k for k in theirs if k not in own]
    unexpected = [k for k in own if k not in theirs]
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
    from .decoder import Decoder

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
    from .model import DeepLabV3Plus

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


# --- notebook 05: losses and metrics ---


def _build_loss(check: str, cls: Any, **kwargs: Any) -> torch.nn.Module:
    """Instantiate the learner's loss class (not an instance) with ``kwargs``."""
    if isinstance(cls, torch.nn.Module):
        raise CheckFailed(
            f"{check}: pass the class itself, e.g. {check}(MyLoss), not an instance MyLoss()."
        )
    return _run(check, f"constructing with {kwargs or 'no arguments'}", cls, **kwargs)


def _loss_and_grad(
    loss_fn: torch.nn.Module, logits: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss value and its gradient with respect to the logits."""
    x = logits.detach().clone().requires_grad_()
    loss = loss_fn(x, target.clone())
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise TypeError(f"the loss must be a scalar tensor, got {loss!r}")
    if not loss.requires_grad:
        raise TypeError(
            "the loss has no gradient path to the logits (did you use a hard threshold, "
            "`.item()` or `.detach()`?)"
        )
    (grad,) = torch.autograd.grad(loss.reshape(()), x)
    return loss.detach().reshape(()), grad


def _binary_loss_cases(ignore: bool) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """``(name, logits (B, 1, H, W), float 0/1 target (B, 1, H, W))`` cases for a binary loss."""
    gen = torch.Generator().manual_seed(0)

    def blob(b: int, h: int, w: int) -> torch.Tensor:
        return (torch.rand(b, 1, h, w, generator=gen) > 0.6).float()

    target = blob(2, 8, 8)
    cases = [
        ("random logits, batch 2, 8x8", torch.randn(2, 1, 8, 8, generator=gen) * 2, target),
        ("perfect prediction (logits +-10)", (target * 2 - 1) * 10.0, target),
        ("empty target mask", torch.randn(2, 1, 6, 6, generator=gen), torch.zeros(2, 1, 6, 6)),
        ("batch 1, odd size 7x11", torch.randn(1, 1, 7, 11, generator=gen), blob(1, 7, 11)),
        ("batch 3, odd size 5x9", torch.randn(3, 1, 5, 9, generator=gen) * 3, blob(3, 5, 9)),
    ]
    if ignore:
        target = blob(2, 9, 7)
        target[:, :, 0] = 255.0  # an ignored row
        target[1, 0, :, -2:] = 255.0
        cases.append(("ignored pixels (255)", torch.randn(2, 1, 9, 7, generator=gen), target))
    return cases


_IGNORE_HINT = (
    "pixels whose target is ignore_index (255) must count nowhere in the loss: multiply them "
    "out of the soft sums (probabilities and target) and, for BCE, average over the valid "
    "pixels only."
)


def _check_binary_loss(
    check: str, cls: Any, reference: type[torch.nn.Module], what: str, hint: str
) -> None:
    """Compare value and gradient of ``cls()`` with ``reference()`` on the binary cases.

    Ignored pixels are tested only if the learner's ``__init__`` accepts ``ignore_index``.
    """
    import inspect

    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        params = {}
    cases = _binary_loss_cases(ignore="ignore_index" in params)
    learner, ref = _build_loss(check, cls), reference()
    for name, logits, target in cases:
        exp_value, exp_grad = _loss_and_grad(ref, logits, target)
        value, grad = _run(check, name, _loss_and_grad, learner, logits, target)
        value_hint = _IGNORE_HINT if name.startswith("ignored") else hint
        _compare(check, name + " (loss value)", value, exp_value, hint=value_hint)
        _compare(
            check,
            name + " (gradient w.r.t. the logits)",
            grad,
            exp_grad,
            hint="the value matches but not its gradient: compute everything from the logits "
            "with differentiable torch operations (sigmoid, sums), no `.item()` or thresholds.",
        )
    _passed(check, len(cases), what)


def check_dice_bce_loss(cls: Any) -> None:
    """Check a binary DiceBCE loss class against :class:`deeplab_utils.DiceBCELoss`.

    ``cls()`` must build the loss with the default ``smooth=1``; ``loss(logits, target)`` takes
    logits ``(B, 1, H, W)`` and a float 0/1 target ``(B, 1, H, W)`` and returns a scalar. Its
    value and its gradient with respect to the logits are compared on random logits, a perfect
    prediction, an empty mask, batch 1 and odd sizes, and -- only if ``cls`` accepts an
    ``ignore_index`` argument -- a target with ignored (255) pixels. Taught in notebook 05.
    """
    from .losses import DiceBCELoss

    _check_binary_loss(
        "check_dice_bce_loss",
        cls,
        DiceBCELoss,
        "your loss equals deeplab_utils.DiceBCELoss (value and gradient).",
        "loss = mean BCE-with-logits over valid pixels + 1 - (2*sum(p*g) + s) / (sum(p) + "
        "sum(g) + s), p = sigmoid(logits), sums over the whole batch. Mind the factor 2.",
    )


def check_iou_loss(cls: Any) -> None:
    """Check a binary soft-IoU loss class against :class:`deeplab_utils.IoULoss`.

    Same cases and conventions as :func:`check_dice_bce_loss` (value and gradient, ignored
    pixels only if ``cls`` accepts ``ignore_index``). Taught in notebook 05.
    """
    from .losses import IoULoss

    _check_binary_loss(
        "check_iou_loss",
        cls,
        IoULoss,
        "your loss equals deeplab_utils.IoULoss (value and gradient).",
        "loss = 1 - (sum(p*g) + s) / (sum(p) + sum(g) - sum(p*g) + s), p = sigmoid(logits), "
        "sums over the whole batch; the union subtracts the intersection once.",
    )


def check_miou(fn: Callable[..., float]) -> None:
    """Check ``fn(pred, target, num_classes, ignore_index=255) -> float`` (mean IoU).

    ``pred`` and ``target`` are int64 label masks ``(B, H, W)``. The expected value comes from
    :class:`deeplab_utils.SegmentationMetrics`. Cases: the 4x4 example of notebook 05, ignored
    pixels (which must not be counted), a class absent from both masks (left out of the mean),
    a class in the target that is never predicted (IoU 0, counted), a class predicted but
    absent from the target (IoU 0, counted), and a batch of several masks (one confusion
    matrix for the batch, not a mean of per-image scores). Taught in notebook 05.
    """
    from .metrics import SegmentationMetrics

    check = "check_miou"
    gen = torch.Generator().manual_seed(0)

    def labels(*shape: int, classes: int = 3) -> torch.Tensor:
        return torch.randint(0, classes, shape, generator=gen)

    def mostly_right(target: torch.Tensor, classes: int = 3) -> torch.Tensor:
        wrong = torch.rand(target.shape, generator=gen) < 0.3
        return torch.where(wrong, (target + 1) % classes, target)

    one_t = labels(1, 5, 6)
    batch_t = labels(3, 7, 9)
    batch_t[0] = 0  # an all-background image, so per-image means differ from the batch's
    ignore_t = labels(2, 6, 7)
    ignore_p = labels(2, 6, 7)  # ignored pixels get every possible prediction
    ignore_t[:, :2] = 255
    never_t = labels(2, 5, 6, classes=4)
    never_p = mostly_right(never_t, 4)
    never_p[never_p == 3] = 0  # class 3 is never predicted
    extra_t = labels(1, 4, 7)
    extra_p = mostly_right(extra_t)
    extra_p[0, 0, :3] = 3  # class 3 predicted, but in no target
    example_t = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [0, 2, 2, 255], [0, 2, 2, 2]])
    example_p = torch.tensor([[0, 0, 1, 0], [0, 1, 1, 1], [0, 2, 1, 2], [0, 0, 2, 2]])
    cases = [
        # (name, pred (B, H, W), target (B, H, W), num_classes, hint)
        ("one 5x6 mask, nothing ignored", mostly_right(one_t), one_t, 3, ""),
        (
            "a batch of 3 masks, 7x9",
            mostly_right(batch_t),
            batch_t,
            3,
            "count one confusion matrix over the whole batch; do not average per-image mIoUs.",
        ),
        (
            "ignored pixels (target 255)",
            ignore_p,
            ignore_t,
            3,
            "skip every pixel whose target is ignore_index before counting.",
        ),
        (
            "classes 3 and 4 absent from both masks",
            mostly_right(one_t),
            one_t,
            5,
            "a class absent from both target and prediction has IoU 0/0: leave it out of "
            "the mean (do not count it as 0 or 1).",
        ),
        (
            "class 3 in the target but never predicted",
            never_p,
            never_t,
            4,
            "a class that is in the target but never predicted has IoU 0 and is counted.",
        ),
        (
            "class 3 predicted but in no target",
            extra_p,
            extra_t,
            4,
            "a class that is predicted but absent from the target has IoU 0 and is counted.",
        ),
        ("the 4x4 example of section 7", example_p[None], example_t[None], 3, ""),
    ]
    for name, pred, target, num_classes, hint in cases:
        metrics = SegmentationMetrics(num_classes)
        metrics.update(pred, target)
        expected = torch.tensor(metrics.compute()["miou"], dtype=torch.float64)
        got = _run(check, name, fn, pred.clone(), target.clone(), num_classes, ignore_index=255)
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.reshape(())
        hint = hint or "IoU_c = TP / (TP + FP + FN) from the confusion matrix (rows = target)."
        _compare(check, name, got, expected, hint=hint, atol=1e-6, rtol=1e-6)
    _passed(check, len(cases), "your mIoU equals deeplab_utils.SegmentationMetrics'.")


# --- notebook 06: data pipeline ---


def _reference_pad_and_crop(
    image: torch.Tensor, mask: torch.Tensor, size: int, top: int, left: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The package's padding (``PadToSize``: image 0, mask 255) then torchvision's crop."""
    from torchvision import tv_tensors
    from torchvision.transforms.v2 import functional as TF

    from .data.transforms import PadToSize

    padded_image, padded_mask = PadToSize(size, image_fill=(0,), ignore_index=255)(
        tv_tensors.Image(image), tv_tensors.Mask(mask)
    )
    crop_image = TF.crop(padded_image, top, left, size, size).as_subclass(torch.Tensor)
    crop_mask = TF.crop(padded_mask, top, left, size, size).as_subclass(torch.Tensor)
    return crop_image, crop_mask


def check_pad_and_crop(fn: Callable[..., tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Check ``fn(image, mask, size, top, left) -> (image_crop, mask_crop)``.

    ``image`` is ``(C, H, W)`` (float or uint8), ``mask`` ``(H, W)`` int64. ``fn`` pads both at
    the bottom and right up to at least ``size`` x ``size`` (image with 0, mask with 255 =
    ignore), then cuts the same window, rows ``top:top+size`` and columns ``left:left+size``,
    out of both: ``(C, size, size)`` and ``(size, size)``. Compared with the package's
    ``PadToSize`` followed by torchvision's crop on odd sizes, with padding on no, one or both
    axes, a uint8 image; the dtypes must be kept (the mask stays int64). Taught in notebook 06.
    """
    check = "check_pad_and_crop"
    gen = torch.Generator().manual_seed(0)
    cases = [
        # (name, image (C, H, W), size, top, left)
        ("no padding needed, 13x17 -> 9 at (2, 5)", torch.rand(3, 13, 17, generator=gen), 9, 2, 5),
        ("padding on both axes, 7x5 -> 9", torch.rand(3, 7, 5, generator=gen), 9, 0, 0),
        (
            "padding the rows only, 6x15 -> 8 at (0, 4)",
            torch.rand(3, 6, 15, generator=gen),
            8,
            0,
            4,
        ),
        (
            "padding the columns only, 11x4 -> 7 at (3, 0)",
            torch.rand(1, 11, 4, generator=gen),
            7,
            3,
            0,
        ),
        ("exact fit, 9x9 -> 9", torch.rand(3, 9, 9, generator=gen), 9, 0, 0),
        (
            "uint8 image, 5x8 -> 6 at (0, 1)",
            torch.randint(1, 256, (3, 5, 8), generator=gen, dtype=torch.uint8),
            6,
            0,
            1,
        ),
    ]
    for name, image, size, top, left in cases:
        h, w = image.shape[-2:]
        mask = torch.randint(0, 5, (h, w), generator=gen)  # (H, W) int64
        exp_image, exp_mask = _reference_pad_and_crop(image, mask, size, top, left)
        got = _run(check, name, fn, image.clone(), mask.clone(), size, top, left)
        if not (isinstance(got, (tuple, list)) and len(got) == 2):
            raise CheckFailed(
                f"{check}: case '{name}': expected a pair (image_crop, mask_crop), "
                f"got {type(got).__name__}."
            )
        got_image, got_mask = got
        for part, value, expected in (
            ("image", got_image, exp_image),
            ("mask", got_mask, exp_mask),
        ):
            if isinstance(value, torch.Tensor) and value.dtype != expected.dtype:
                raise CheckFailed(
                    f"{check}: case '{name}': the {part} came back as {value.dtype}, expected "
                    f"{expected.dtype}. Hint: padding and cropping must keep the dtype (a mask "
                    "holds class indices: int64)."
                )
        pad_hint = (
            "pad only at the bottom and right, up to size (nothing where the side is already "
            "long enough), then take rows top:top+size and columns left:left+size."
        )
        _compare(check, name + " (image)", got_image, exp_image, hint=pad_hint + " Image fill: 0.")
        mask_hint = pad_hint + " Mask fill: 255 (ignore), so padding never counts as a class."
        if isinstance(got_mask, torch.Tensor) and got_mask.shape == exp_mask.shape:
            pad = exp_mask == 255
            if bool(pad.any()) and not bool((got_mask[pad] == 255).all()):
                mask_hint = (
                    "the padded mask pixels must be 255 (ignore), so that padding counts "
                    "neither in the loss nor in the metrics."
                )
            elif not bool((got_mask[~pad] == exp_mask[~pad]).all()):
                mask_hint = (
                    "the mask's labels are not where the image's pixels are: cut the same "
                    "window (same top, left, size) from the image and the mask."
                )
        _compare(check, name + " (mask)", got_mask, exp_mask, hint=mask_hint, atol=0, rtol=0)
    _passed(check, len(cases), "image and mask stay aligned, padding is 0 / 255 (ignore).")


# --- notebook 07: training ---


def _tiny_segmenter(num_classes: int, seed: int) -> torch.nn.Module:
    """A per-pixel "segmenter" of 1x1 convolutions with a BN: (B, 3, H, W) -> (B, C, H, W)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 1),
            torch.nn.BatchNorm2d(8),  # its running statistics show a second forward pass
            torch.nn.ReLU(),
            torch.nn.Conv2d(8, num_classes, 1),
        )


def _reference_train_step(
    model: torch.nn.Module,
    images: torch.Tensor,
    masks: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> float:
    """The step that ``deeplab_utils.training`` takes (without mixed precision)."""
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(model(images), masks)
    loss.backward()
    optimizer.step()
    return loss.item()


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def check_train_step(fn: Callable[..., float]) -> None:
    """Check ``fn(model, images, masks, optimizer, loss_fn) -> float``: one optimiser step.

    The learner's step and the reference step (zero_grad, forward, loss, backward, step) run on
    two identical small 1x1-convolution segmenters with a BatchNorm; after each step the weights
    and BN statistics must be equal and the returned loss must be the same Python float. Cases:
    SGD with cross-entropy, Adam with DiceCE and ignored pixels at batch 1, and two steps in a
    row with SGD + momentum (gradients must not pile up). Returning a tensor instead of
    ``loss.item()`` fails: kept in a list, it would keep every step's autograd graph alive.
    Taught in notebook 07.
    """
    import copy

    from .losses import DiceCELoss

    check = "check_train_step"
    gen = torch.Generator().manual_seed(0)
    optimizers = {
        "sgd": lambda p: torch.optim.SGD(p, lr=0.5),
        "sgd+momentum": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-4),
        "adam": lambda p: torch.optim.Adam(p, lr=0.01),
    }
    losses = {"cross-entropy": torch.nn.CrossEntropyLoss(ignore_index=255), "DiceCE": DiceCELoss()}
    cases = [
        # (name, optimizer, loss, batch, (H, W), steps, ignored pixels)
        ("SGD, cross-entropy, batch 2, 9x11", "sgd", "cross-entropy", 2, (9, 11), 1, False),
        ("Adam, DiceCE, batch 1, 7x5, ignored pixels", "adam", "DiceCE", 1, (7, 5), 1, True),
        (
            "two steps in a row, SGD + momentum",
            "sgd+momentum",
            "cross-entropy",
            2,
            (6, 8),
            2,
            False,
        ),
    ]
    num_classes = 4
    for name, opt_name, loss_name, b, size, steps, ignored in cases:
        reference = _tiny_segmenter(num_classes, seed=len(name))
        learner = copy.deepcopy(reference)
        ref_opt = optimizers[opt_name](reference.parameters())
        learner_opt = optimizers[opt_name](learner.parameters())
        loss_fn = losses[loss_name]
        for step in range(steps):
            images = torch.randn(b, 3, *size, generator=gen)  # (B, 3, H, W)
            masks = torch.randint(0, num_classes, (b, *size), generator=gen)  # (B, H, W)
            if ignored:
                masks[:, 0] = 255  # the first row of every mask is "ignore"
            case = name if steps == 1 else f"{name} (step {step + 1})"
            before = _state(learner)
            expected = _reference_train_step(reference, images, masks, ref_opt, loss_fn)
            got = _run(
                check, case, fn, learner, images.clone(), masks.clone(), learner_opt, loss_fn
            )
            after = _state(learner)
            weights = [k for k, _ in learner.named_parameters()]  # not the BN's statistics
            if all(torch.equal(after[k], before[k]) for k in weights):
                hint = (
                    "the weights did not change: call loss.backward() before optimizer.step(), "
                    "on the loss tensor itself (not loss.detach(), not under torch.no_grad())."
                )
            elif step > 0:
                hint = (
                    "the first step was right, this one is not: gradients add up across calls "
                    "unless you call optimizer.zero_grad() before loss.backward()."
                )
            else:
                hint = (
                    "one step is: optimizer.zero_grad(), logits = model(images) (once), "
                    "loss = loss_fn(logits, masks), loss.backward(), optimizer.step()."
                )
            for key, value in reference.state_dict().items():
                _compare(check, f"{case}: '{key}' after the step", after[key], value, hint=hint)
            if isinstance(got, torch.Tensor):
                graph = " that still holds the autograd graph" if got.requires_grad else ""
                raise CheckFailed(
                    f"{check}: case '{case}': returned a tensor{graph}; return loss.item(), a "
                    "Python float. Hint: a training loop keeps every step's loss in a list, and "
                    "a list of loss tensors keeps every step's graph alive (memory grows)."
                )
            if not isinstance(got, int | float) or isinstance(got, bool):
                raise CheckFailed(
                    f"{check}: case '{case}': expected the loss as a Python float, got "
                    f"{type(got).__name__}. Hint: return loss.item()."
                )
            _compare(
                check,
                f"{case}: returned loss",
                torch.tensor(float(got), dtype=torch.float64),
                torch.tensor(expected, dtype=torch.float64),
                hint="return the loss of this batch, computed before optimizer.step().",
                atol=1e-6,
            )
    _passed(check, len(cases), "your step moves the weights exactly as the reference step.")


def check_poly_lr(fn: Callable[..., float]) -> None:
    """Check ``fn(step, total_steps, power=0.9, warmup_steps=0) -> float`` (the LR multiplier).

    Compared with :func:`deeplab_utils.training.poly_lr_lambda`, the paper's "poly" policy
    ``(1 - step / total_steps) ** power`` (DeepLabv3, Sec. 4) times the linear warm-up
    ``(step + 1) / warmup_steps`` for ``step < warmup_steps``, and 0 from ``total_steps`` on.
    Cases: the default power (called without ``power``), power 1 and 2, warm-up of 1 and 3
    steps, and the boundaries of a long run. Taught in notebook 07.
    """
    import math

    from .training import poly_lr_lambda

    check = "check_poly_lr"
    cases = [
        # (name, total_steps, keyword arguments, steps to compare)
        ("default power (0.9), 10 steps", 10, {}, range(12)),
        ("power 1 (linear decay), 7 steps", 7, {"power": 1.0}, range(9)),
        ("power 0.9, 3 warm-up steps, 12 steps", 12, {"power": 0.9, "warmup_steps": 3}, range(14)),
        ("power 2, 1 warm-up step, 5 steps", 5, {"power": 2.0, "warmup_steps": 1}, range(7)),
        (
            "30000 steps, 500 warm-up steps",
            30_000,
            {"power": 0.9, "warmup_steps": 500},
            (0, 1, 249, 499, 500, 501, 15_000, 29_999, 30_000, 30_001),
        ),
    ]
    for name, total, kwargs, steps in cases:
        warmup = kwargs.get("warmup_steps", 0)
        reference = {"power": kwargs.get("power", 0.9), "warmup_steps": warmup}
        # The steps from total_steps on first: a schedule that does not end at 0 is told so,
        # rather than being told its values differ everywhere.
        for step in sorted(steps, key=lambda s: s < total):
            expected = poly_lr_lambda(step, total_steps=total, **reference)
            case = f"{name}, step {step}"
            got = _run_with_hint(
                check,
                case,
                "apply the warm-up factor only while step < warmup_steps, and return 0 from "
                "total_steps on.",
                lambda: fn(step, total, **kwargs),  # noqa: B023 -- called at once
            )
            if isinstance(got, torch.Tensor) and got.numel() == 1:
                got = got.item()
            if isinstance(got, complex):
                hint = (
                    "from step total_steps on return 0: (1 - step/total_steps) is negative "
                    "there, and a negative number to the power 0.9 is complex in Python."
                )
            elif step >= total:
                hint = "the learning rate is 0 from step total_steps on (training is over)."
            elif step < warmup:
                hint = (
                    "during warm-up (step < warmup_steps) multiply the poly value by "
                    "(step + 1) / warmup_steps: step 0 gets 1/warmup_steps of it, step "
                    "warmup_steps - 1 all of it."
                )
            elif "default" in name:
                hint = "the exponent is `power`, whose default is 0.9 (DeepLabv3, Sec. 4)."
            else:
                hint = "(1 - step / total_steps) ** power, with the power you are given."
            if not isinstance(got, int | float) or isinstance(got, bool):
                raise CheckFailed(
                    f"{check}: case '{case}': expected a float, got {got!r}. Hint: {hint}"
                )
            if not math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-12):
                raise CheckFailed(
                    f"{check}: case '{case}': expected {expected:.6g}, got {got:.6g}. Hint: {hint}"
                )
    _passed(check, len(cases), "your schedule equals deeplab_utils.training.poly_lr_lambda.")


# --- notebook 08: evaluation and inference ---


def _flip_tta_model(kind: str, num_classes: int, seed: int) -> torch.nn.Module:
    """Small position-dependent segmenters (eval mode) whose logits are large enough that
    averaging logits and averaging probabilities give clearly different answers."""
    from torch import nn

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == "conv":
            model = nn.Conv2d(3, num_classes, 3, padding=1)
        else:  # a dilated conv stack: asymmetric weights, wider context
            model = nn.Sequential(
                nn.Conv2d(3, 8, 3, padding=2, dilation=2),
                nn.ReLU(),
                nn.Conv2d(8, num_classes, (1, 3), padding=(0, 1)),
            )
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(3.0)  # confident logits
    return model.eval()


def check_flip_tta(fn: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]) -> None:
    """Check ``fn(model, images) -> probs``: left-right flip test-time augmentation.

    The reference is :func:`deeplab_utils.inference.predict` with ``flip=True``: the mean of
    ``softmax(model(x))`` and ``softmax(flip(model(flip(x))))``, flips along the width. Cases:
    batch 1 and 2, odd sizes, 3 and 5 classes, two small models. Recognised mistakes: the
    flipped run's output not flipped back, logits averaged instead of probabilities (the
    paper averages probabilities), a vertical flip, no flip at all. Taught in notebook 08.
    """
    from .inference import predict

    check = "check_flip_tta"
    gen = torch.Generator().manual_seed(0)
    cases = [
        # (name, model kind, batch, classes, height, width)
        ("3x3 conv, batch 2, 9x13", "conv", 2, 3, 9, 13),
        ("batch 1, 16x16", "conv", 1, 5, 16, 16),
        ("dilated conv stack, batch 2, odd size 11x7", "stack", 2, 4, 11, 7),
    ]

    def run(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(x)

    for i, (name, kind, b, c, h, w) in enumerate(cases):
        model = _flip_tta_model(kind, c, seed=i)
        x = torch.randn(b, 3, h, w, generator=gen)
        expected = predict(model, x, flip=True)
        got = _run(check, name, fn, model, x.clone())
        plain = run(model, x)
        mistakes = {
            "the flipped run's output must be flipped back (flip(-1)) before averaging, "
            "or its pixels land on the mirror-image positions.": (
                plain.softmax(1) + run(model, x.flip(-1)).softmax(1)
            )
            / 2,
            "average the probabilities (softmax each run, then the mean), as the paper does, "
            "not the logits.": ((plain + run(model, x.flip(-1)).flip(-1)) / 2).softmax(1),
            "flip left-right, i.e. along the width (the last dimension, -1), not upside down.": (
                plain.softmax(1) + run(model, x.flip(-2)).flip(-2).softmax(1)
            )
            / 2,
            "return probabilities (softmax over the class dimension 1), not logits.": (
                plain + run(model, x.flip(-1)).flip(-1)
            )
            / 2,
            "also run the model on the flipped images: the result is the mean of two runs.": (
                plain.softmax(1)
            ),
        }
        hint = "average softmax(model(x)) and softmax(model(x.flip(-1)).flip(-1))."
        if isinstance(got, torch.Tensor) and got.shape == expected.shape:
            for mistake, wrong in mistakes.items():
                if torch.allclose(got.detach().double(), wrong.double(), atol=1e-5, rtol=1e-4):
                    hint = mistake
                    break
        _compare(check, name, got, expected, hint=hint, atol=1e-5, rtol=1e-4)
    _passed(check, len(cases), "your flip TTA equals deeplab_utils.inference.predict(flip=True).")
