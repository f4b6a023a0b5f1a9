"""Atrous (dilated) convolution from first principles, and receptive fields.

Taught in notebook 01. Atrous convolution (paper, Sec. 3.1, Eq. 1) samples the input with
gaps of ``rate - 1`` pixels between kernel taps:

    y[i] = sum_k x[i + r * k] * w[k]

so a 3x3 kernel at rate r sees a (2r + 1) x (2r + 1) window with no extra weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def _pair(value: int | Sequence[int], name: str, minimum: int) -> tuple[int, int]:
    """Turn an int or a pair of ints into a pair, checking each is >= ``minimum``."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v >= minimum for v in pair):
        raise ValueError(f"{name} must be an int >= {minimum} or a pair of them, got {value!r}")
    return pair  # type: ignore[return-value]


def atrous_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    dilation: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
) -> torch.Tensor:
    """Atrous 2-D convolution (stride 1) as a sum of shifted 1x1 convolutions.

    Each kernel tap ``(m, n)`` multiplies a copy of the input shifted by
    ``(m * dilation, n * dilation)``; summing the taps gives the same result as
    ``F.conv2d(x, weight, bias, padding=padding, dilation=dilation)`` (up to float rounding).
    Taught in notebook 01.

    Args:
        x: input ``(B, C_in, H, W)``.
        weight: kernels ``(C_out, C_in, kH, kW)``.
        bias: optional ``(C_out,)``.
        dilation: the atrous rate ``r`` (int or ``(r_h, r_w)``), >= 1; 1 is a plain convolution.
        padding: zeros added on each side (int or ``(p_h, p_w)``); ``r * (k - 1) // 2`` keeps
            the size for odd ``k``.

    Returns:
        ``(B, C_out, H_out, W_out)`` with ``H_out = H + 2 p_h - r_h (kH - 1)``.
    """
    if x.dim() != 4:
        raise ValueError(f"x must have shape (B, C_in, H, W), got {tuple(x.shape)}")
    if weight.dim() != 4:
        raise ValueError(f"weight must have shape (C_out, C_in, kH, kW), got {tuple(weight.shape)}")
    c_out, c_in, k_h, k_w = weight.shape
    if x.shape[1] != c_in:
        raise ValueError(
            f"x has {x.shape[1]} channels but weight expects C_in={c_in} "
            f"(weight shape {tuple(weight.shape)})"
        )
    if bias is not None and bias.shape != (c_out,):
        raise ValueError(f"bias must have shape ({c_out},), got {tuple(bias.shape)}")
    r_h, r_w = _pair(dilation, "dilation", 1)
    p_h, p_w = _pair(padding, "padding", 0)

    x = F.pad(x, (p_w, p_w, p_h, p_h))  # (B, C_in, H + 2 p_h, W + 2 p_w)
    h_out = x.shape[2] - r_h * (k_h - 1)
    w_out = x.shape[3] - r_w * (k_w - 1)
    if h_out < 1 or w_out < 1:
        raise ValueError(
            f"the dilated {k_h}x{k_w} kernel (rate {(r_h, r_w)}) spans "
            f"{r_h * (k_h - 1) + 1}x{r_w * (k_w - 1) + 1} pixels, more than the padded input "
            f"{tuple(x.shape[2:])}; use a smaller dilation or more padding"
        )

    out = x.new_zeros(x.shape[0], c_out, h_out, w_out)
    for m in range(k_h):
        for n in range(k_w):
            # The tap (m, n) sees the input shifted by (m * r_h, n * r_w): the "holes" of atrous.
            patch = x[:, :, m * r_h : m * r_h + h_out, n * r_w : n * r_w + w_out]
            out += torch.einsum("bchw,oc->bohw", patch, weight[:, :, m, n])  # (B, C_out, H', W')
    if bias is not None:
        out += bias.view(1, -1, 1, 1)
    return out


Layer = tuple[int, int, int]  # (kernel size, stride, dilation)


def receptive_fields(layers: Sequence[Layer]) -> list[int]:
    """Receptive field (in input pixels, per side) after each layer of a stack.

    A layer with kernel ``k``, stride ``s`` and dilation ``d`` acts like a kernel of
    ``k_eff = d (k - 1) + 1``; it widens the receptive field by ``(k_eff - 1) * J``, where
    ``J`` is the product of the strides before it (the distance, in input pixels, between
    neighbouring positions of its input). Taught in notebook 01.

    Args:
        layers: ``[(kernel, stride, dilation), ...]`` from the input onwards.

    Returns:
        ``[r_1, ..., r_L]``: the receptive field after each layer.

    Raises:
        ValueError: if a layer is not three ints >= 1.
    """
    for i, layer in enumerate(layers):
        if len(layer) != 3 or not all(isinstance(v, int) and v >= 1 for v in layer):
            raise ValueError(
                f"layer {i} must be (kernel, stride, dilation) with ints >= 1, got {layer!r}"
            )
    field, jump, fields = 1, 1, []
    for kernel, stride, dilation in layers:
        field += dilation * (kernel - 1) * jump
        jump *= stride
        fields.append(field)
    return fields


def receptive_field(layers: Sequence[Layer]) -> int:
    """Receptive field of a whole stack of ``(kernel, stride, dilation)`` layers; 1 for none.

    Taught in notebook 01.
    """
    return receptive_fields(layers)[-1] if layers else 1
