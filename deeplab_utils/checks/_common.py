"""What the self-checks of several notebooks share: the failure, running, comparing and hints.

Every check is a plain function of the learner's implementation decorated with
:func:`exercise_check`. The helpers here name the check being run (it is in a context
variable), so a check's body only names its cases. :class:`CheckFailed` and :class:`Hint` are
public as ``deeplab_utils.checks.CheckFailed`` and ``deeplab_utils.checks.Hint``.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import CodeType, FrameType
from typing import Any

import torch


class CheckFailed(AssertionError):
    """The learner's code disagrees with the reference (or is not written yet)."""

    def _render_traceback_(self) -> list[str]:
        """What IPython shows for it, and so nbgrader's feedback and ``validate``: the message
        alone, not a traceback into the checks, in lines of at most 86 characters (``validate``
        cuts longer ones) with every quoted case name kept on one line."""
        lines = [""]
        for word in re.findall(r"'[^']*'\S*|\S+", f"{type(self).__name__}: {self}"):
            if lines[-1] and len(lines[-1]) + 1 + len(word) > 86:
                lines.append("")
            lines[-1] = f"{lines[-1]} {word}".lstrip()
        return lines


NOT_IMPLEMENTED = "not implemented yet"
FALLBACK = "the rest of this notebook uses deeplab_utils' version"
# Set by nbgrader ("autograde" or "validate") while it executes a notebook to grade it.
GRADING_ENV = "NBGRADER_EXECUTION"


class _NotImplementedYet(CheckFailed):
    """The learner's code raised NotImplementedError: the exercise is not written yet."""


class _Delegates(CheckFailed):
    """The learner's code calls the reference it is compared with."""


@dataclass(frozen=True)
class Hint:
    """A hint in two steps: ``short`` on the first failure, ``full`` (more on the idea) after."""

    short: str
    full: str = ""


@dataclass
class _Context:
    """The check being run: its name, whether to reveal full hints, the code it must not call."""

    check: str
    reveal: bool = False
    watched: dict[CodeType, str] = field(default_factory=dict)


_CONTEXT: ContextVar[_Context | None] = ContextVar("deeplab_check", default=None)
# Failures per (check, case) in this Python session: the second one shows the full hint.
_FAILURES: Counter[tuple[str, str]] = Counter()


def _check() -> str:
    """The name of the check being run."""
    return _CONTEXT.get().check


def _hint_text(case: str, hint: str | Hint | None) -> str:
    """`` Hint: ...`` for a failure of ``case``: the short hint, or the full one when earned."""
    if not hint:
        return ""
    if isinstance(hint, str):
        hint = Hint(hint)
    context = _CONTEXT.get()
    check = context.check
    _FAILURES[(check, case)] += 1
    text = f" Hint: {hint.short}"
    if hint.full and (context.reveal or _FAILURES[(check, case)] >= 2):
        text += f" More: {hint.full}"
    elif hint.full:
        text += f" (Fail this case again, or call {check}(..., hint=True), for more.)"
    return text


def _fail(case: str, message: str, hint: str | Hint | None = None) -> CheckFailed:
    """A :class:`CheckFailed` for ``case``: ``"{check}: case '{case}': {message}. Hint: ..."``."""
    return CheckFailed(f"{_check()}: case '{case}': {message.rstrip('.')}.{_hint_text(case, hint)}")


@contextmanager
def _watching(calls: list[str]) -> Iterator[None]:
    """Record in ``calls`` every call, made meanwhile, of the code the current check watches."""
    watched, previous = _CONTEXT.get().watched, sys.getprofile()
    if not watched:
        yield
        return

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code in watched:
            calls.append(watched[frame.f_code])
        if previous is not None:
            previous(frame, event, arg)

    sys.setprofile(profile)
    try:
        yield
    finally:
        sys.setprofile(previous)


def _delegation(name: str) -> CheckFailed:
    return _Delegates(
        f"{_check()}: your code calls {name}, the reference it is compared with. The exercise is "
        "to implement it yourself: compute the result with torch operations (and your own "
        "modules), not with the package's version."
    )


def _run(
    case: str, fn: Callable[..., Any], *args: Any, hint: str | Hint = "", **kwargs: Any
) -> Any:
    """Call the learner's ``fn``; any exception, or a call of the watched reference, fails
    ``case`` (with ``hint`` appended when ``fn`` raised)."""
    calls: list[str] = []
    try:
        with _watching(calls):
            result = fn(*args, **kwargs)
    except NotImplementedError:
        raise _NotImplementedYet(
            f"{_check()}: {NOT_IMPLEMENTED} -- replace the `raise NotImplementedError` "
            "under `# YOUR CODE HERE` with your code, run that cell, then run this check again."
        ) from None
    except Exception as exc:  # any error in learner code becomes one clear line
        if calls:
            raise _delegation(calls[0]) from exc
        message = f"{_check()}: case '{case}' raised {type(exc).__name__}: {exc}"
        if hint:
            message = f"{message.rstrip('.')}.{_hint_text(case, hint)}"
        raise CheckFailed(message) from exc
    if calls:
        raise _delegation(calls[0])
    return result


def _outputs(
    case: str,
    fn: Callable[..., Any],
    reference: Callable[..., Any],
    *inputs: torch.Tensor,
    hint: str | Hint,
    seed: int | None = None,
) -> tuple[Any, torch.Tensor]:
    """``(fn(*inputs), reference(*inputs))`` on copies of the inputs, without autograd.

    With ``seed``, both start from that global seed (so dropout draws the same masks), and the
    caller's random state is left as it was.
    """
    with torch.no_grad(), torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        expected = reference(*(x.clone() for x in inputs))
        if seed is not None:
            torch.manual_seed(seed)
        got = _run(case, fn, *(x.clone() for x in inputs), hint=hint)
    return got, expected


def _compare(
    case: str,
    got: Any,
    expected: torch.Tensor,
    *,
    hint: str | Hint | None = "",
    shape_hint: str | Hint | None = None,
    atol: float = 1e-5,
    rtol: float = 1e-4,
) -> None:
    """Raise :class:`CheckFailed` unless ``got`` is a tensor close to ``expected``; a wrong
    type or shape fails with ``shape_hint`` when there is one."""
    if shape_hint is not None and getattr(got, "shape", None) != expected.shape:
        hint = shape_hint
    if isinstance(got, (int, float)):
        got = torch.as_tensor(got)
    if not isinstance(got, torch.Tensor):
        raise _fail(case, f"expected a tensor, got {type(got).__name__}", hint)
    if tuple(got.shape) != tuple(expected.shape):
        raise _fail(case, f"expected shape {tuple(expected.shape)}, got {tuple(got.shape)}", hint)
    got64, exp64 = got.detach().double().cpu(), expected.detach().double().cpu()
    if not torch.allclose(got64, exp64, atol=atol, rtol=rtol, equal_nan=True):
        diff = (got64 - exp64).abs().nan_to_num(float("inf")).max().item()
        raise _fail(
            case,
            f"values differ from the reference (max abs difference {diff:.3g}, allowed "
            f"{atol:g} + {rtol:g}*|expected|)",
            hint,
        )


def _passed(cases: int, what: str) -> None:
    print(f"✓ {_check()}: all {cases} cases match the reference -- {what}")


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Draw from torch's global generator seeded with ``seed``, restoring its state after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _segmenter(
    num_classes: int, *, width: int = 8, kernel: int = 1, dropout: float = 0.0
) -> torch.nn.Sequential:
    """A tiny per-pixel segmenter: conv, BN, ReLU, (dropout,) 1x1 conv; (B, 3, H, W) ->
    (B, num_classes, H, W). Its BN shows the mode and extra forwards; dropout the mode."""
    layers = [
        torch.nn.Conv2d(3, width, kernel, padding=kernel // 2),
        torch.nn.BatchNorm2d(width),
        torch.nn.ReLU(),
    ]
    if dropout:
        layers.append(torch.nn.Dropout2d(dropout))
    return torch.nn.Sequential(*layers, torch.nn.Conv2d(width, num_classes, 1))


def _randomize_batch_norms(module: torch.nn.Module, gen: torch.Generator) -> None:
    """Give every BN non-trivial statistics and affine weights, so that a missing BN shows."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.5)


def _resolve(path: str) -> tuple[Any, str]:
    """``"aspp:ASPP"`` -> (``deeplab_utils.aspp.ASPP``, the name a learner would use for it)."""
    module_name, _, attribute = path.partition(":")
    obj: Any = importlib.import_module(f"deeplab_utils.{module_name}")
    for part in attribute.split("."):
        obj = getattr(obj, part)
    package = importlib.import_module("deeplab_utils")
    top = getattr(package, attribute, None) is obj
    return obj, f"deeplab_utils.{attribute}" if top else f"deeplab_utils.{module_name}.{attribute}"


def _codes(obj: Any) -> list[CodeType]:
    """The code objects whose calls mean "this runs ``obj``": its own, or its class's methods.

    Decorated functions are unwrapped: a decorator's wrapper code (``torch.no_grad``'s, say)
    is shared with every other function it decorates, the learner's included.
    """
    values = vars(obj).values() if isinstance(obj, type) else [obj]
    functions = [inspect.unwrap(getattr(value, "__func__", value)) for value in values]
    return [f.__code__ for f in functions if hasattr(f, "__code__")]


def exercise_check(
    reference: str, *, also_watch: tuple[str, ...] = ()
) -> Callable[[Callable[[Any], None]], Callable[..., Any]]:
    """Turn ``body(impl)`` (raises :class:`CheckFailed` or prints ✓) into a notebook check.

    The decorated ``check(impl, *, hint=False)`` refuses an ``impl`` that is, subclasses or (while
    it runs) calls ``reference`` or anything in ``also_watch``; returns ``impl`` when it passes, or
    the reference after one ``✗`` line when ``impl`` is not written yet, so "Run all" goes on. A
    failing case's hint is short; its second failure (or ``hint=True``) says more on the idea,
    never the code.

    While nbgrader grades the notebook (:data:`GRADING_ENV` is set), any failure, an unwritten
    exercise included, raises :class:`CheckFailed` with the ``✗`` line, so the exercise's test
    cell scores 0, and the caller's names for ``impl`` are bound to the reference first.

    Args:
        reference: ``"module:name"`` of the package's version, e.g. ``"aspp:ASPPPooling"``.
        also_watch: more ``"module:name"`` whose calls count as using the reference.
    """

    def decorate(body: Callable[[Any], None]) -> Callable[..., Any]:
        name = body.__name__

        @functools.wraps(body)
        def unguarded(impl: Any, context: _Context | None = None) -> None:
            """``body`` under the check's name (what the tests run on the package's version)."""
            token = _CONTEXT.set(context or _Context(name))
            try:
                body(impl)
            finally:
                _CONTEXT.reset(token)

        def judge(impl: Any, ref: Any, ref_name: str, hint: bool) -> None:
            """Raise :class:`CheckFailed` unless ``impl`` is the learner's own and passes."""
            watched: dict[CodeType, str] = {}
            for path in (reference, *also_watch):
                obj, obj_name = _resolve(path)
                watched.update(dict.fromkeys(_codes(obj), obj_name))
            if impl is ref:
                raise CheckFailed(
                    f"{name}: this is {ref_name} itself (a check hands it back while your "
                    "version is not written). Run the cell that defines yours, then this check."
                )
            if isinstance(ref, type) and isinstance(impl, type) and issubclass(impl, ref):
                raise CheckFailed(
                    f"{name}: {impl.__name__} subclasses {ref_name}, the reference it is compared "
                    "with. The exercise is to implement it yourself: subclass nn.Module (or "
                    "nn.Sequential) instead."
                )
            unguarded(impl, _Context(name, reveal=bool(hint), watched=watched))

        @functools.wraps(body)
        def check(impl: Any, *, hint: bool = False) -> Any:
            ref, ref_name = _resolve(reference)
            grading = bool(os.environ.get(GRADING_ENV))
            try:
                judge(impl, ref, ref_name, hint)
                return impl
            except _NotImplementedYet:
                if not grading:
                    print(f"✗ {name}: {NOT_IMPLEMENTED} — {FALLBACK} ({ref_name})")
                    return ref
                failure = f"{name}: {NOT_IMPLEMENTED}"
            except CheckFailed as exc:
                if not grading:
                    raise
                failure = str(exc)
            # Graded: raise, so the exercise scores 0. The raise leaves `x = check_x(x)` without
            # binding x, so bind the caller's names for impl to the reference, as Run-all would:
            # later cells, and exercises built on this one, run on the package's version.
            namespace = sys._getframe(1).f_globals  # a notebook cell's: the kernel's namespace
            for key, value in list(namespace.items()):
                if value is impl:
                    namespace[key] = ref
            raise CheckFailed(f"✗ {failure} — {FALLBACK} ({ref_name})")

        check.__wrapped__ = unguarded  # the check without its guard
        return check

    return decorate
