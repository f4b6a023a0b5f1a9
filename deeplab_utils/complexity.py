"""How big and how costly a network is: parameters and multiply-accumulates (MACs).

MACs are counted by ``torch.utils.flop_counter.FlopCounterMode``, which counts convolutions and
matrix products (the operations that dominate, and the ones papers count); BN, ReLU, pooling and
interpolation are not counted. One multiply-accumulate is two floating-point operations.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .separable import _check_positive_int


def count_parameters(module: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters of ``module`` (only those with ``requires_grad`` if asked).

    Taught in notebook 02.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be an nn.Module, got {type(module).__name__}")
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def _flop_counts(model: nn.Module, x: torch.Tensor) -> FlopCounterMode:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    counter = FlopCounterMode(display=False)
    was_training = model.training
    model.eval()  # in train mode BatchNorm would update its running statistics (and dropout drop)
    try:
        with torch.no_grad(), counter:
            model(x)
    finally:
        model.train(was_training)
    return counter


def count_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass of ``model`` on ``x`` (e.g. ``(1, 3, H, W)``).

    Runs the model once in eval mode without gradients, then restores its mode: BatchNorm
    statistics and the train/eval mode are left as they were.
    Taught in notebook 02.
    """
    return _flop_counts(model, x).get_total_flops() // 2


def macs_by_module(model: nn.Module, x: torch.Tensor, depth: int = 1) -> dict[str, int]:
    """Multiply-accumulates of one forward pass, per submodule ``depth`` levels down.

    Keys are dotted submodule names as in ``model.named_modules()`` (``depth=1``: e.g.
    ``"backbone"``, ``"aspp"``, ``"decoder"``; ``depth=2``: ``"backbone.layer1"``, ...), in
    registration order; submodules that do no multiply-adds map to 0. Work done directly in the
    model's own ``forward`` (outside any submodule) is not listed. Taught in notebook 02.

    Raises:
        ValueError: if ``depth`` is not a positive int.
    """
    _check_positive_int("depth", depth)
    counts = _flop_counts(model, x).get_flop_counts()
    # FlopCounterMode names submodules "<RootClass>.<dotted name>".
    root = type(model).__name__

    def flops(name: str, module: nn.Module) -> int:
        if f"{root}.{name}" in counts:
            return sum(counts[f"{root}.{name}"].values())
        # Containers that are never called themselves (nn.ModuleList) get their children's work.
        return sum(flops(f"{name}.{child}", m) for child, m in module.named_children())

    return {
        name: flops(name, module) // 2
        for name, module in model.named_modules()
        if name and name.count(".") == depth - 1
    }
