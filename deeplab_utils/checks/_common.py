"""What the self-checks of several notebooks share: the failure, running and comparing.

Teaching-aid layer. :class:`CheckFailed` is public as ``deeplab_utils.checks.CheckFailed``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


class CheckFailed(AssertionError):
    """The learner's code disagrees with the reference (or is not written yet)."""


NOT_IMPLEMENTED = "not implemented yet"


def _name_differences(
    expected: dict[str, torch.Tensor], got: dict[str, torch.Tensor]
) -> tuple[list[str], list[str]]:
    """The state-dict keys the learner's module lacks, and those it has beyond the reference's."""
    return [k for k in expected if k not in got], [k for k in got if k not in expected]


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


def _randomize_batch_norms(module: torch.nn.Module, gen: torch.Generator) -> None:
    """Give every BN non-trivial statistics and affine weights, so that a missing BN shows."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.5)


def _run_with_hint(check: str, case: str, hint: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Like :func:`_run`, with a hint appended when the learner's code raises."""
    try:
        return _run(check, case, fn, *args)
    except CheckFailed as exc:
        if NOT_IMPLEMENTED in str(exc):
            raise
        raise CheckFailed(f"{str(exc).rstrip('.')}. Hint: {hint}") from exc.__cause__
