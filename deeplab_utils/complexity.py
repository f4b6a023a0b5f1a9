"""How big and how costly a network is: parameters and multiply-accumulates (MACs), counted by
``FlopCounterMode`` in convolutions and matrix products (what dominates, and what papers count)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(module: nn.Module) -> int:
    """Parameters of ``module``, frozen ones included. Taught in notebook 02."""
    return sum(p.numel() for p in module.parameters())


def _flop_counts(model: nn.Module, x: torch.Tensor) -> FlopCounterMode:
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
    """Multiply-accumulates of one forward pass of ``model`` on ``x`` (e.g. ``(1, 3, H, W)``), in
    eval mode without gradients: BN statistics and the mode are left as they were. Taught in
    notebook 02."""
    return _flop_counts(model, x).get_total_flops() // 2


def macs_by_module(model: nn.Module, x: torch.Tensor, depth: int = 1) -> dict[str, int]:
    """:func:`count_macs` per submodule ``depth`` levels down, by dotted name in registration
    order (``depth=2``: ``"backbone.layer1"``, ...); work in the model's own ``forward``, outside
    any submodule, is left out. Taught in notebook 04."""
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
