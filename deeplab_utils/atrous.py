"""Atrous (dilated) convolution from first principles, and receptive fields (notebook 01)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

Layer = tuple[int, int, int]  # (kernel size, stride, dilation)


def atrous_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    dilation: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
) -> torch.Tensor:
    """Atrous 2-D convolution (stride 1) as a sum of shifted 1x1 convolutions.

    Atrous convolution (paper, Sec. 3.1, Eq. 1), ``y[i] = sum_k x[i + r * k] w[k]``, leaves
    ``r - 1`` pixels between kernel taps: a 3x3 kernel at rate ``r`` sees ``2r + 1`` pixels a side.
    ``x`` ``(B, C_in, H, W)``, ``weight`` ``(C_out, C_in, kH, kW)``, ``bias`` ``(C_out,)`` ->
    ``(B, C_out, H + 2 p_h - r_h (kH - 1), W + 2 p_w - r_w (kW - 1))``, equal to ``F.conv2d``
    with the same ``dilation`` and ``padding`` (ints or pairs). Taught in notebook 01.
    """
    if x.dim() != 4 or weight.dim() != 4 or x.shape[1] != weight.shape[1]:
        raise ValueError(
            "expected x of shape (B, C_in, H, W) and weight of shape (C_out, C_in, kH, kW), "
            f"got {tuple(x.shape)} and {tuple(weight.shape)}"
        )
    r_h, r_w = (dilation, dilation) if isinstance(dilation, int) else dilation
    p_h, p_w = (padding, padding) if isinstance(padding, int) else padding
    _, _, k_h, k_w = weight.shape
    x = F.pad(x, (p_w, p_w, p_h, p_h))  # (B, C_in, H + 2 p_h, W + 2 p_w)
    h_out, w_out = x.shape[2] - r_h * (k_h - 1), x.shape[3] - r_w * (k_w - 1)
    if h_out < 1 or w_out < 1:
        raise ValueError(
            f"the {k_h}x{k_w} kernel at rate {(r_h, r_w)} spans more than the padded input "
            f"{tuple(x.shape[2:])}; use a smaller dilation or more padding"
        )
    out = x.new_zeros(x.shape[0], weight.shape[0], h_out, w_out)
    for m in range(k_h):
        for n in range(k_w):
            # The tap (m, n) sees the input shifted by (m * r_h, n * r_w): the "holes" of atrous.
            patch = x[:, :, m * r_h : m * r_h + h_out, n * r_w : n * r_w + w_out]
            out += torch.einsum("bchw,oc->bohw", patch, weight[:, :, m, n])  # (B, C_out, H', W')
    if bias is not None:
        out += bias.view(1, -1, 1, 1)
    return out


def receptive_fields(layers: Sequence[Layer]) -> list[int]:
    """Receptive field (input pixels a side) after each ``(kernel, stride, dilation)`` layer.

    A layer acts like a kernel of ``k_eff = d (k - 1) + 1`` and widens the field by
    ``(k_eff - 1) * J``, ``J`` being the product of the strides before it (the distance, in
    input pixels, between neighbouring positions of its input). Taught in notebook 01.
    """
    field, jump, fields = 1, 1, []
    for kernel, stride, dilation in layers:
        field += dilation * (kernel - 1) * jump
        jump *= stride
        fields.append(field)
    return fields


def receptive_field(layers: Sequence[Layer]) -> int:
    """Receptive field of a whole stack (:func:`receptive_fields`); 1 for none. Notebook 01."""
    return receptive_fields(layers)[-1] if layers else 1
