"""What the self-checks of several notebooks share: the failure, running, comparing and hints.

Teaching-aid layer. :class:`CheckFailed` and :class:`Hint` are public as
``deeplab_utils.checks.CheckFailed`` and ``deeplab_utils.checks.Hint``.

Every check is written as a plain function of the learner's implementation and decorated with
:func:`exercise_check`, which gives it the behaviour every exercise shares:

- ``impl = check_x(impl)`` returns the implementation to use from then on: the learner's when
  every case matches the reference (it prints one ``✓`` line), the package's reference when the
  exercise is not written yet (it prints one ``✗ ... not implemented yet`` line instead of
  raising, so "Run all" goes on), and it raises :class:`CheckFailed` naming the case, what was
  expected and what came back, with a hint, when the code runs but is wrong;
- a hint is short on the first failure of a case; the full answer comes with the second failure
  of the same case, or at once with ``check_x(impl, hint=True)``;
- code that subclasses or calls the reference it is compared with fails: the exercise is to
  implement it.
"""

from __future__ import annotations

import functools
import importlib
import inspect
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


NOT_IMPLEMENTED = "not implemented yet"
FALLBACK = "the rest of this notebook uses deeplab_utils' version"


class _NotImplementedYet(CheckFailed):
    """The learner's code raised NotImplementedError: the exercise is not written yet."""


class _Delegates(CheckFailed):
    """The learner's code calls the reference it is compared with."""


@dataclass(frozen=True)
class Hint:
    """A hint in two steps: ``short`` on the first failure, ``full`` (the answer) after that."""

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


def _hint_text(check: str, case: str, hint: str | Hint | None) -> str:
    """`` Hint: ...`` for a failure of ``case``: the short hint, or the full one when earned."""
    if not hint:
        return ""
    if isinstance(hint, str):
        hint = Hint(hint)
    _FAILURES[(check, case)] += 1
    context = _CONTEXT.get()
    reveal = (context is not None and context.reveal) or _FAILURES[(check, case)] >= 2
    text = f" Hint: {hint.short}"
    if hint.full and reveal:
        text += f" In full: {hint.full}"
    elif hint.full:
        text += f" (Fail this case again, or call {check}(..., hint=True), for the full answer.)"
    return text


def _fail(check: str, case: str, message: str, hint: str | Hint | None = None) -> CheckFailed:
    """A :class:`CheckFailed` for ``case``: ``"{check}: case '{case}': {message}. Hint: ..."``."""
    return CheckFailed(
        f"{check}: case '{case}': {message.rstrip('.')}.{_hint_text(check, case, hint)}"
    )


@contextmanager
def _watching(calls: list[str]) -> Iterator[None]:
    """Record in ``calls`` every call, made meanwhile, of the code the current check watches."""
    context = _CONTEXT.get()
    if context is None or not context.watched:
        yield
        return
    watched, previous = context.watched, sys.getprofile()

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


def _delegation(check: str, name: str) -> CheckFailed:
    return _Delegates(
        f"{check}: your code calls {name}, the reference it is compared with. The exercise is "
        "to implement it yourself: compute the result with torch operations (and your own "
        "modules), not with the package's version."
    )


def _run(check: str, case: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call the learner's ``fn``, turning any exception into a :class:`CheckFailed`.

    A call of the reference the check compares with, from inside ``fn``, fails too.
    """
    calls: list[str] = []
    try:
        with _watching(calls):
            result = fn(*args, **kwargs)
    except NotImplementedError:
        raise _NotImplementedYet(
            f"{check}: {NOT_IMPLEMENTED} -- replace the `raise NotImplementedError` "
            "under `# YOUR CODE HERE` with your code, run that cell, then run this check again."
        ) from None
    except Exception as exc:  # any error in learner code becomes one clear line
        if calls:
            raise _delegation(check, calls[0]) from exc
        raise CheckFailed(f"{check}: case '{case}' raised {type(exc).__name__}: {exc}") from exc
    if calls:
        raise _delegation(check, calls[0])
    return result


def _run_with_hint(
    check: str, case: str, hint: str | Hint, fn: Callable[..., Any], *args: Any
) -> Any:
    """Like :func:`_run`, with a hint appended when the learner's code raises."""
    try:
        return _run(check, case, fn, *args)
    except (_NotImplementedYet, _Delegates):
        raise
    except CheckFailed as exc:
        raise CheckFailed(f"{str(exc).rstrip('.')}.{_hint_text(check, case, hint)}") from (
            exc.__cause__
        )


def _compare(
    check: str,
    case: str,
    got: Any,
    expected: torch.Tensor,
    *,
    hint: str | Hint | None = "",
    atol: float = 1e-5,
    rtol: float = 1e-4,
) -> None:
    """Raise :class:`CheckFailed` unless ``got`` is a tensor close to ``expected``."""
    if not isinstance(got, torch.Tensor):
        got = torch.as_tensor(got) if isinstance(got, (int, float)) else got
    if not isinstance(got, torch.Tensor):
        raise _fail(check, case, f"expected a tensor, got {type(got).__name__}", hint)
    if tuple(got.shape) != tuple(expected.shape):
        raise _fail(
            check,
            case,
            f"expected shape {tuple(expected.shape)}, got {tuple(got.shape)}",
            hint,
        )
    got64, exp64 = got.detach().double().cpu(), expected.detach().double().cpu()
    if not torch.allclose(got64, exp64, atol=atol, rtol=rtol, equal_nan=True):
        diff = (got64 - exp64).abs().nan_to_num(float("inf")).max().item()
        raise _fail(
            check,
            case,
            f"values differ from the reference (max abs difference {diff:.3g}, allowed "
            f"{atol:g} + {rtol:g}*|expected|)",
            hint,
        )


def _passed(check: str, cases: int, what: str) -> None:
    print(f"✓ {check}: all {cases} cases match the reference -- {what}")


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

    The decorated ``check(impl, *, hint=False)`` refuses an ``impl`` that is, subclasses or
    (while it runs) calls ``reference`` or anything in ``also_watch``; runs ``body`` with full
    hints revealed when ``hint=True``; and returns ``impl`` when it passes, or the reference
    (after one ``✗`` line) when ``impl`` is not written yet.

    Args:
        reference: ``"module:name"`` of the package's version, e.g. ``"aspp:ASPPPooling"``.
        also_watch: more ``"module:name"`` whose calls count as using the reference.
    """

    def decorate(body: Callable[[Any], None]) -> Callable[..., Any]:
        name = body.__name__

        @functools.wraps(body)
        def check(impl: Any, *, hint: bool = False) -> Any:
            ref, ref_name = _resolve(reference)
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
            token = _CONTEXT.set(_Context(name, reveal=bool(hint), watched=watched))
            try:
                body(impl)
            except _NotImplementedYet:
                print(f"✗ {name}: {NOT_IMPLEMENTED} — {FALLBACK} ({ref_name})")
                return ref
            finally:
                _CONTEXT.reset(token)
            return impl

        return check

    return decorate
