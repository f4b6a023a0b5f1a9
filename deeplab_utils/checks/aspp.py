"""Self-checks for notebook 02 (ASPP): the image-pooling branch and the whole module."""

from __future__ import annotations

from typing import Any

import torch

from ..aspp import ASPP, ASPPPooling
from ..backbone import state_dict_differences
from ._common import (
    CheckFailed,
    Hint,
    _check,
    _compare,
    _fail,
    _outputs,
    _passed,
    _randomize_batch_norms,
    _run,
    exercise_check,
)


def _learner_twin(
    cls: Any, reference: torch.nn.Module, names_hint: Hint, *args: Any, **kwargs: Any
) -> torch.nn.Module:
    """The learner's ``cls(*args, **kwargs)`` with ``reference``'s weights, or a failure that
    says which parameter names or shapes differ."""
    check = _check()
    if isinstance(cls, torch.nn.Module):
        raise CheckFailed(
            f"{check}: pass the class itself, e.g. {check}(MyThing), not an instance MyThing(...)."
        )
    shown = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
    learner = _run(f"constructing with ({shown})", cls, *args, **kwargs)
    if not isinstance(learner, torch.nn.Module):
        raise CheckFailed(
            f"{check}: the class must build an nn.Module, got {type(learner).__name__}"
        )
    ours, theirs = learner.state_dict(), reference.state_dict()
    missing, unexpected, _ = state_dict_differences(theirs, ours)
    # A conv's bias where a BN follows is harmless (BN removes a constant shift): set to 0, the
    # learner's module computes the reference's function.
    harmless = [k for k in unexpected if _bias_before_bn(k, theirs)]
    unexpected = [k for k in unexpected if k not in harmless]
    if missing or unexpected:
        raise _fail(
            "parameter names",
            "your module's parameter names differ from the reference's. "
            f"Missing: {missing[:6] or 'none'}{' ...' if len(missing) > 6 else ''}; "
            f"unexpected: {unexpected[:6] or 'none'}{' ...' if len(unexpected) > 6 else ''}",
            names_hint,
        )
    for key, value in theirs.items():
        if ours[key].shape != value.shape:
            raise _fail(
                f"shape of {key}",
                f"parameter '{key}' has shape {tuple(ours[key].shape)}, the reference's is "
                f"{tuple(value.shape)}",
                names_hint,
            )
    learner.load_state_dict(theirs, strict=False)
    with torch.no_grad():
        for key in harmless:
            learner.get_parameter(key).zero_()
    return learner


def _bias_before_bn(key: str, reference_keys: Any) -> bool:
    """Whether ``key`` is ``"...i.bias"`` and the reference has a BN at ``"...i+1"``."""
    prefix, _, index = key.removesuffix(".bias").rpartition(".")
    if not (key.endswith(".bias") and index.isdigit()):
        return False
    return f"{prefix}.{int(index) + 1}.running_mean".lstrip(".") in reference_keys


_POOLING_HINT = Hint(
    "remember the size (H, W) first; then pool to 1x1, conv, BN, ReLU, and bilinearly "
    "upsample back to exactly (H, W) (align_corners=False).",
    "the output is (B, C_out, H, W) for the input's own H and W, even when they differ: the "
    "1x1 map that leaves the ReLU is resized bilinearly to the size you kept.",
)
_BATCH_ONE_HINT = Hint(
    "with a batch of one in train mode the BN sees one value per channel: normalise with its "
    "running statistics and leave them unchanged, and do not switch the module to eval mode "
    "(the next call may have a batch of several images).",
    "F.batch_norm takes the statistics as arguments: in train mode with one image, hand it the "
    "BN's running mean and variance, weight, bias and eps, with training=False; any other "
    "batch goes through the BN module itself.",
)
_BATCH_MANY_HINT = Hint(
    "in train mode with a batch of several images, call the BN module itself, in train mode, "
    "so it normalises with the batch's statistics and updates its running ones.",
    "a mode set inside forward stays set: a module switched to eval mode for one call "
    "normalises every later batch with the running statistics too.",
)


def _mode(training: bool) -> str:
    return "train" if training else "eval"


@exercise_check("aspp:ASPPPooling")
def check_aspp_pooling(cls: Any) -> None:
    """Check an image-pooling branch class against :class:`deeplab_utils.ASPPPooling`.

    ``cls(in_channels, out_channels)`` must be an ``nn.Sequential`` of pool, 1x1 conv, BN and ReLU
    mapping ``(B, C_in, H, W)`` to ``(B, C_out, H, W)``. Output and BN statistics are compared in
    eval and train mode, on odd and non-square sizes, with a batch of one (the BN must use its
    running statistics, and the module stay in train mode). Taught in notebook 02.
    """
    gen = torch.Generator().manual_seed(0)
    names_hint = Hint(
        "subclass nn.Sequential and pass the four modules to super().__init__ in order.",
        "nn.Sequential names its modules 0 to 3 in the order given: the average pool to 1x1, "
        "the 1x1 conv from C_in to C_out channels, the BN of C_out channels, the ReLU.",
    )
    cases = [
        # (name: "train mode" or "eval mode" first, [batch of each call], c_in, c_out, (H, W))
        ("eval mode, batch 2, 9x9", [2], 8, 4, (9, 9)),
        ("eval mode, batch 1, non-square 7x12", [1], 6, 5, (7, 12)),
        ("train mode, batch 3, odd size 11x5", [3], 8, 4, (11, 5)),
        ("train mode, batch 1, 13x9", [1], 8, 4, (13, 9)),
        ("train mode, one module: batch 1, then batch 3", [1, 3], 8, 4, (6, 10)),
    ]
    for name, batches, c_in, c_out, size in cases:
        train = name.startswith("train mode")
        ref = ASPPPooling(c_in, c_out)
        _randomize_batch_norms(ref, gen)
        learner = _learner_twin(cls, ref, names_hint, c_in, c_out)
        ref.train(train)
        learner.train(train)
        for call, b in enumerate(batches, start=1):
            case = name if len(batches) == 1 else f"{name} (call {call}, batch {b})"
            # a later call is wrong because of the batch of one before it
            hint = _BATCH_ONE_HINT if train and (b == 1 or call > 1) else _POOLING_HINT
            x = torch.randn(b, c_in, *size, generator=gen)
            got, expected = _outputs(case, learner, ref, x, hint=hint)
            _compare(case, got, expected, hint=hint)
            bn_ref, bn_learner = ref[2], learner[2]
            for stat in ("running_mean", "running_var"):
                _compare(
                    f"{case} (BN {stat} after the forward)",
                    getattr(bn_learner, stat),
                    getattr(bn_ref, stat),
                    hint=_BATCH_ONE_HINT if b == 1 or call > 1 else _BATCH_MANY_HINT,
                )
            if learner.training != train or bn_learner.training != train:
                raise _fail(
                    case,
                    f"after the forward the module is in {_mode(learner.training)} mode and its "
                    f"BN in {_mode(bn_learner.training)} mode; both must stay in {_mode(train)} "
                    "mode",
                    _BATCH_ONE_HINT,
                )
    _passed(len(cases), "your pooling branch equals deeplab_utils.ASPPPooling.")


@exercise_check("aspp:ASPP")
def check_aspp(cls: Any) -> None:
    """Check an ASPP class against :class:`deeplab_utils.ASPP` (regular convolutions).

    ``cls(in_channels, out_channels, rates, dropout=0.5)`` must have the reference's ``convs`` and
    ``project`` submodules, names and shapes; it maps ``(B, C_in, H, W)`` to ``(B, C_out, H, W)``.
    Compared in eval mode on odd sizes with 2 to 4 rates (one larger than the map), and in train
    mode with the same dropout mask at dropout 0.5 and 0.1. Taught in notebook 02.
    """
    gen = torch.Generator().manual_seed(0)
    cases = [
        # (name: "train mode" or "eval mode" first, batch, c_in, c_out, rates, (H, W), dropout)
        ("eval mode, batch 2, rates (1, 2, 3), 9x11", 2, 8, 4, (1, 2, 3), (9, 11), 0.5),
        ("eval mode, batch 1, rates (6, 12, 18), 13x13", 1, 6, 4, (6, 12, 18), (13, 13), 0.5),
        ("eval mode, two rates (2, 4), 8x7", 2, 8, 3, (2, 4), (8, 7), 0.5),
        ("eval mode, four rates (1, 2, 3, 5), 9x9", 2, 6, 3, (1, 2, 3, 5), (9, 9), 0.5),
        ("train mode, batch 2, rates (1, 3, 5), 10x9", 2, 8, 4, (1, 3, 5), (10, 9), 0.5),
        ("train mode, dropout=0.1, rates (2, 3), 7x8", 2, 6, 4, (2, 3), (7, 8), 0.1),
    ]
    names_hint = Hint(
        "self.convs is an nn.ModuleList of the branches in the order 1x1, one MyASPPConv per "
        "rate, MyASPPPooling; self.project an nn.Sequential of a 1x1 conv, BN, ReLU and "
        "dropout. The projection's input is every branch's channels together, however many "
        "rates there are.",
        "every branch maps C_in to C_out channels, so the projection's 1x1 conv takes "
        "len(self.convs) * C_out of them; names come from positions (convs.0 the 1x1 branch, "
        "convs.1 the first rate, ..., the pooling branch last; project.0 to project.3).",
    )
    forward_hint = Hint(
        "every branch sees the same input and must return (B, C_out, H, W) (a 3x3 conv at "
        "rate r keeps the size with padding r); concatenate them along the channels, in the "
        "order of self.convs, then project.",
        "the projection's input is the outputs of all the branches of self.convs, run on the "
        "same x and concatenated along the channels (dimension 1) in their order.",
    )
    for name, b, c_in, c_out, rates, size, dropout in cases:
        train = name.startswith("train mode")
        ref = ASPP(c_in, c_out, rates, dropout=dropout)
        _randomize_batch_norms(ref, gen)
        learner = _learner_twin(cls, ref, names_hint, c_in, c_out, rates, dropout=dropout)
        ref.train(train)
        learner.train(train)
        x = torch.randn(b, c_in, *size, generator=gen)
        # the same seed before each forward gives both the same dropout mask
        got, expected = _outputs(name, learner, ref, x, hint=forward_hint, seed=1)
        hint = forward_hint
        if train and getattr(got, "shape", None) == expected.shape:
            learner_p = [m.p for m in learner.modules() if isinstance(m, torch.nn.Dropout)]
            if learner_p != [dropout]:
                hint = Hint(
                    f"use the dropout probability you are given ({dropout}), once, "
                    f"at the end of the projection; your module has {learner_p}."
                )
        _compare(name, got, expected, hint=hint)
    _passed(len(cases), "your ASPP equals deeplab_utils.ASPP.")


def load_reference_weights(
    module: torch.nn.Module, reference: torch.nn.Module, *inputs: torch.Tensor
) -> torch.nn.Module:
    """Load ``reference``'s weights into the learner's ``module`` as the checks compare them.

    Where the texts leave a choice to the learner, every choice loads: a bias kept in a conv
    that a BN follows is set to 0 (BN removes a constant shift), and a decoder that
    concatenates the low-level features first gets its first refining conv's input channels
    swapped, the order chosen so that ``module(*inputs)`` equals ``reference(*inputs)`` (both in
    their current modes). Returns ``module``. Used by notebooks 02 and 04 after their checks.
    """
    weights = reference.state_dict()
    harmless = [k for k in module.state_dict() if k not in weights and _bias_before_bn(k, weights)]
    states = [weights]
    w = weights.get("refine.0.0.weight")  # the decoder's (256, C_aspp + 48, 3, 3)
    if w is not None and inputs:
        c = inputs[0].shape[1]  # the ASPP output's channels come first in the reference
        states.append({**weights, "refine.0.0.weight": torch.cat([w[:, c:], w[:, :c]], 1)})
    for state in states:
        module.load_state_dict(state, strict=not harmless)
        with torch.no_grad():
            for key in harmless:
                module.get_parameter(key).zero_()
            if not inputs or torch.allclose(module(*inputs), reference(*inputs), atol=1e-5):
                break
    return module
