"""What the self-checks share: failing with hints, running and comparing the learner's code.

The helpers know which check runs (a context variable), so a check's body only names its cases.
"""

import copy
import functools
import numbers
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import CodeType
from typing import Any, NamedTuple

import torch
from torch import nn

from ..backbone import state_dict_differences
from . import pieces
from .pieces import GRADING_ENV, functions, keep_piece, public_name


class CheckFailed(AssertionError):
    """The learner's code disagrees with the reference (or is not written yet)."""

    def _render_traceback_(self) -> list[str]:
        """What IPython shows, and so nbgrader's feedback and ``validate``: the message alone, in
        lines of at most 86 characters (``validate`` cuts longer ones), a quoted case name whole."""
        lines = [""]
        for word in re.findall(r"'[^']*'\S*|\S+", f"{type(self).__name__}: {self}"):
            if lines[-1] and len(lines[-1]) + 1 + len(word) > 86:
                lines.append("")
            lines[-1] = f"{lines[-1]} {word}".lstrip()
        return lines


class _NotImplementedYet(CheckFailed):
    """The learner's code raised NotImplementedError: the exercise is not written yet."""


NOT_IMPLEMENTED = "not implemented yet"
FALLBACK = "the rest of this notebook uses deeplab_utils' version"
NOTEBOOKS = {"atrous": "01", "aspp": "02", "backbone": "03", "decoder": "04", "objectives": "05",
             "data": "06", "training": "07", "evaluation": "08"}  # fmt: skip  # a check module's


class Hint(NamedTuple):
    """A hint in two steps: ``short`` on the first failure, ``full`` (more on the idea) after."""

    short: str
    full: str = ""


class _Context(NamedTuple):
    """The check being run: its name, whether to reveal full hints, the code it must not call."""

    check: str
    reveal: bool = False
    watched: dict[CodeType, str] = {}


HintLike = str | Hint | None  # a plain string is a one-step hint
_CONTEXT: ContextVar[_Context] = ContextVar("deeplab_check")
_FAILURES: Counter[tuple[str, str]] = Counter()  # per (check, case) this session: 2 show more


def fail(case: str | None, message: str, hint: HintLike = None) -> CheckFailed:
    """``"{check}: case '{case}': {message}. Hint: ..."`` (``"{check}: {message}"`` for the whole
    check), with the full hint from the case's second failure on, or at once with ``hint=True``."""
    context = _CONTEXT.get()
    if case is None:
        return CheckFailed(f"{context.check}: {message}")
    text = f"{context.check}: case '{case}': {message.rstrip('.')}."
    hint = Hint(hint) if isinstance(hint, str) else hint
    if hint and hint.short:
        _FAILURES[(context.check, case)] += 1
        text += f" Hint: {hint.short}"
        if hint.full and (context.reveal or _FAILURES[(context.check, case)] >= 2):
            text += f" More: {hint.full}"
        elif hint.full:
            text += f" (Fail this case again, or call {context.check}(..., hint=True), for more.)"
    return CheckFailed(text)


def run(case: str, fn: Callable[..., Any], *args: Any, hint: HintLike = "", **kw: Any) -> Any:
    """The learner's ``fn(*args, **kw)``: an exception fails ``case`` (with ``hint``), and a call
    of the reference it is compared with (which a profile function spots) is refused."""
    watched, previous, calls = _CONTEXT.get().watched, sys.getprofile(), []

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code in watched:
            calls.append(watched[frame.f_code])
        if previous is not None:
            previous(frame, event, arg)

    sys.setprofile(profile if watched else previous)
    try:
        result = fn(*args, **kw)
    except NotImplementedError:  # the student copy's stub: the check prints its ✗ line
        raise _NotImplementedYet(f"{_CONTEXT.get().check}: {NOT_IMPLEMENTED}") from None
    except Exception as exc:  # any error in learner code becomes one clear line
        if not calls:  # (an error after a call of the reference is that call's fault)
            raise fail(case, f"raised {type(exc).__name__}: {exc}", hint) from exc
    finally:
        sys.setprofile(previous)
    if calls:
        message = f"your code calls {calls[0]}, the reference it is compared with. The exercise "
        message += "is to implement it yourself: compute the result with torch operations (and "
        raise fail(None, f"{message}your own modules), not with the package's version.")
    return result


def outputs(case: str, fn: Callable, reference: Callable, *inputs: Any, hint: Hint, seed=0):
    """``(fn(*inputs), reference(*inputs))`` without autograd, both from ``seed`` (same dropout)."""
    results = []
    for call in (reference, functools.partial(run, case, fn, hint=hint)):
        with torch.no_grad(), seeded(seed):
            results.append(call(*(x.clone() for x in inputs)))
    return results[1], results[0]


def close(got: Any, expected: Any, atol: float = 1e-5, rtol: float = 1e-4) -> bool:
    """Whether ``got`` has ``expected``'s shape and values: tensors, or dicts of them."""
    if isinstance(expected, dict):
        keys = isinstance(got, dict) and got.keys() == expected.keys()
        return keys and all(close(got[k], v, atol, rtol) for k, v in expected.items())
    if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
        return False
    got, expected = got.detach().double().cpu(), expected.detach().double().cpu()
    return torch.allclose(got, expected, atol=atol, rtol=rtol, equal_nan=True)


def compare(
    case: str, got: Any, expected: Any, *,
    hint: HintLike = "", shape_hint: HintLike = None, atol: float = 1e-5, rtol: float = 1e-4,
) -> None:  # fmt: skip
    """Fail ``case`` unless ``got`` is close to ``expected``, a tensor or numbers (for a number a
    one-element tensor will do); a wrong type or shape fails with ``shape_hint`` if there is one."""
    if not isinstance(expected, torch.Tensor):
        expected = torch.tensor(expected, dtype=torch.float64)
    number = isinstance(got, numbers.Real) and not isinstance(got, bool)  # numpy's too
    if expected.dim() == 0 and (number or isinstance(got, torch.Tensor) and got.numel() == 1):
        got = torch.as_tensor(got, dtype=torch.float64).reshape(())
    if shape_hint is not None and getattr(got, "shape", None) != expected.shape:
        hint = shape_hint
    if not isinstance(got, torch.Tensor):
        kind = "a number" if expected.dim() == 0 else "a tensor"
        raise fail(case, f"expected {kind}, got {type(got).__name__}", hint)
    if got.shape != expected.shape:
        raise fail(case, f"expected shape {tuple(expected.shape)}, got {tuple(got.shape)}", hint)
    if close(got, expected, atol, rtol):
        return
    got, expected = got.detach().double().cpu(), expected.detach().double().cpu()
    if expected.dim() == 0:
        raise fail(case, f"expected {expected.item():.6g}, got {got.item():.6g}", hint)
    diff = (got - expected).abs().nan_to_num(float("inf")).max().item()
    message = f"values differ from the reference (max abs difference {diff:.3g}, allowed "
    raise fail(case, f"{message}{atol:g} + {rtol:g}*|expected|)", hint)


def passed(cases: int, what: str) -> None:
    print(f"✓ {_CONTEXT.get().check}: all {cases} cases match the reference -- {what}")


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Draw from torch's global generator seeded with ``seed``, restoring its state after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class Segmenter(nn.Sequential):
    """(B, 3, H, W) -> (B, C, H, W) by conv, BN, ReLU, (dropout,) 1x1 conv: BN and dropout show
    the mode, BN's statistics extra forwards, and ``seen`` records every forward's modes."""

    def __init__(self, num_classes: int, *, width=8, kernel=1, dropout=0.0) -> None:
        layers = [nn.Conv2d(3, width, kernel, padding=kernel // 2), nn.BatchNorm2d(width)]
        layers += [nn.ReLU(), *([nn.Dropout2d(dropout)] if dropout else [])]
        super().__init__(*layers, nn.Conv2d(width, num_classes, 1))
        self.seen: list[tuple[bool, bool]] = []  # (training, grad enabled) of every forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((self.training, torch.is_grad_enabled()))
        return super().forward(x)


def bias_before_bn(key: str, reference_keys: Any) -> bool:
    """Whether ``key`` is ``"...i.bias"`` with a BN at ``"...i+1"``: BN removes a constant shift,
    so a learner may keep that bias (the checks set it to 0)."""
    prefix, _, index = key.removesuffix(".bias").rpartition(".")
    bn = f"{prefix}.{int(index) + 1}.running_mean".lstrip(".") if index.isdigit() else ""
    return key.endswith(".bias") and bn in reference_keys


def load_weights(module: nn.Module, weights: dict[str, torch.Tensor]) -> nn.Module:
    """Load ``weights`` into ``module``, its biases before a BN (absent from them) set to 0."""
    harmless = [k for k in module.state_dict() if k not in weights and bias_before_bn(k, weights)]
    module.load_state_dict(weights, strict=not harmless)
    with torch.no_grad():
        for key in harmless:
            module.get_parameter(key).zero_()
    return module


def build(cls: Any, *args: Any, **kw: Any) -> Any:
    """The learner's ``cls(*args, **kw)``, refusing an instance passed in place of the class."""
    if isinstance(cls, nn.Module):
        check = _CONTEXT.get().check
        raise fail(None, f"pass the class itself, e.g. {check}(MyModule), not an instance.")
    shown = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kw.items())])
    return run(f"constructing with ({shown})", cls, *args, **kw)


def twins(
    case: str, cls: Any, reference_cls: type, hint: Hint, *args: Any,
    train: bool = False, biases_before_bn: bool = True, **kw: Any,
) -> tuple[nn.Module, nn.Module]:  # fmt: skip
    """``reference_cls(*args, **kw)``, its BN randomised, and the learner's ``cls(*args, **kw)``
    with its weights, both in train mode if ``train``; other names or shapes fail ``case``."""
    reference = reference_cls(*args, **kw).train(train)
    with torch.no_grad():  # BN far from the identity, so that a missing BN shows
        for bn in (m for m in reference.modules() if isinstance(m, nn.BatchNorm2d)):
            bn.running_mean.normal_(0, 0.5)
            bn.running_var.uniform_(0.5, 1.5)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0, 0.5)
    learner = build(cls, *args, **copy.deepcopy(kw))  # a module argument (a shortcut) its own
    if not isinstance(learner, nn.Module):
        raise fail(None, f"the class must build an nn.Module, got {type(learner).__name__}.")
    weights = reference.state_dict()
    missing, unexpected, shapes = state_dict_differences(weights, learner.state_dict())
    unexpected = [k for k in unexpected if not (biases_before_bn and bias_before_bn(k, weights))]
    found = {"missing": missing, "unexpected": unexpected, "shapes": shapes}
    if missing or unexpected or shapes:
        differ = "; ".join(f"{what} {keys[:6]}" for what, keys in found.items() if keys)
        if any(k.endswith(".bias") and f"{k[:-5]}.weight" in weights for k in unexpected):
            differ += " (a conv followed by a BN has no bias in the weights this block loads)"
        raise fail(case, f"your parameters differ from the reference's: {differ}", hint)
    return reference, load_weights(learner, weights).train(train)


def exercise_check(reference: Any, *, also_watch: tuple[Any, ...] = ()) -> Callable:
    """Turn ``body(impl)`` into ``check(impl, *, hint=False)``: it refuses an ``impl`` that is,
    subclasses or calls ``reference`` (or ``also_watch``); a passing ``impl`` is saved as a piece
    (:mod:`.pieces`) and returned; unwritten, ``reference`` after a ``✗`` line (nbgrader: raise)."""

    def decorate(body: Callable[[Any], None]) -> Callable[..., Any]:
        name = body.__name__
        piece = name.removeprefix("check_").removesuffix("_forward")  # check_aspp saves aspp.py
        pieces.register(piece, reference, NOTEBOOKS[body.__module__.rpartition(".")[2]])
        codes = [(o, f.__code__) for o in (reference, *also_watch) for f in functions(o)]

        @functools.wraps(body)
        def unguarded(impl: Any, context: _Context | None = None) -> None:
            """``body`` under the check's name (what the tests run on the package's version)."""
            token = _CONTEXT.set(context or _Context(name))
            try:
                with seeded(0):  # the cases' random inputs and weights, the same in every run
                    body(impl)
            finally:
                _CONTEXT.reset(token)

        @functools.wraps(body)
        def check(impl: Any, *, hint: bool = False) -> Any:
            ref_name, grading = public_name(reference), bool(os.environ.get(GRADING_ENV))
            watched = {code: public_name(o) for o, code in codes}  # the package is imported now
            subclass = isinstance(reference, type) and isinstance(impl, type)
            try:
                if impl is reference:
                    raise CheckFailed(
                        f"{name}: this is {ref_name} itself (a check hands it back while your "
                        "version is not written). Run the cell that defines yours, then this check."
                    )
                if subclass and issubclass(impl, reference):
                    raise CheckFailed(
                        f"{name}: {impl.__name__} subclasses {ref_name}, the reference it is "
                        "compared with. The exercise is to implement it yourself: subclass "
                        "nn.Module (or nn.Sequential) instead."
                    )
                unguarded(impl, _Context(name, reveal=hint, watched=watched))
                return keep_piece(impl, piece)
            except CheckFailed as exc:
                if not grading and isinstance(exc, _NotImplementedYet):
                    print(f"✗ {exc} — {FALLBACK} ({ref_name})")
                    return reference
                if not grading:
                    raise
                failure = exc
            # Graded: raise, so the exercise scores 0. The raise leaves `x = check_x(x)` without
            # binding x, so bind the caller's names for impl to the reference, as Run-all would:
            # later cells, and exercises built on this one, run on the package's version.
            namespace = sys._getframe(1).f_globals  # a notebook cell's: the kernel's namespace
            for key, value in list(namespace.items()):
                if value is impl:
                    namespace[key] = reference
            raise CheckFailed(f"✗ {failure} — {FALLBACK} ({ref_name})")

        check.__wrapped__ = unguarded  # the check without its guard
        return check

    return decorate
