"""Figures for the course: one function per kind of figure, each returning a matplotlib Figure.

Teaching-aid layer: may use every other layer; nothing in the package imports it.
Figures are drawn as PNG by the notebooks' inline backend (never SVG: nbval compares SVG text).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure


# --- atrous convolution and receptive fields (notebook 01) ---
def _to_numpy(array: np.ndarray | torch.Tensor) -> np.ndarray:
    """A detached CPU NumPy copy of a tensor (arrays pass through)."""
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def plot_segmentation_example(
    image: np.ndarray | torch.Tensor,
    mask: np.ndarray | torch.Tensor,
    *,
    palette: list[tuple[int, int, int]] | tuple[tuple[int, int, int], ...],
    class_names: list[str] | tuple[str, ...],
) -> Figure:
    """Show an image next to its per-pixel class mask, with a legend of the classes.

    Taught in notebook 00.

    Args:
        image: RGB in ``[0, 1]``, either a ``(H, W, 3)`` array or a ``(3, H, W)`` tensor.
        mask: class indices ``(H, W)``, integer; 255 (ignore) is drawn white.
        palette: one ``(r, g, b)`` colour in 0..255 per class.
        class_names: one name per class, same order as ``palette``.
    """
    # local: the data layer is needed by this figure only
    from .data import IGNORE_INDEX, colorize_mask

    if len(class_names) != len(palette):
        raise ValueError(
            f"class_names and palette must have one entry per class, got {len(class_names)} "
            f"names and {len(palette)} colours"
        )
    picture = _to_numpy(image)
    if isinstance(image, torch.Tensor):
        picture = picture.transpose(1, 2, 0)  # (3, H, W) -> (H, W, 3) for imshow
    if picture.ndim != 3 or picture.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3) or a (3, H, W) tensor, got {picture.shape}")
    colours = colorize_mask(mask, palette).permute(1, 2, 0).numpy()  # (H, W, 3) uint8

    fig, (ax_img, ax_mask) = plt.subplots(1, 2, figsize=(8, 4))
    ax_img.imshow(picture.clip(0, 1))
    ax_img.set_title("input image (H, W, 3)")
    ax_mask.imshow(colours, interpolation="nearest")
    ax_mask.set_title("class mask (H, W): one label per pixel")
    handles = [plt.Rectangle((0, 0), 1, 1, color=np.asarray(c) / 255) for c in palette]
    names = list(class_names)
    if (_to_numpy(mask) == IGNORE_INDEX).any():
        handles.append(plt.Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="0.5"))
        names.append(f"ignore ({IGNORE_INDEX})")
    ax_mask.legend(handles, names, loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False)
    for ax in (ax_img, ax_mask):
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def _box(ax: plt.Axes, x: float, y: float, text: str, colour: str) -> None:
    """A rounded, labelled box centred on ``(x, y)``."""
    style = {"boxstyle": "round,pad=0.5", "facecolor": colour, "edgecolor": "0.3"}
    ax.text(x, y, text, ha="center", va="center", fontsize=9, bbox=style)


def _arrow(
    ax: plt.Axes, start: tuple[float, float], end: tuple[float, float], label: str = ""
) -> None:
    """An arrow from ``start`` to ``end``, its label above it (horizontal) or to its right."""
    ax.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "->", "lw": 1.5})
    if label:
        middle = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
        horizontal = start[1] == end[1]
        ax.annotate(
            label,
            middle,
            xytext=(0, 5) if horizontal else (8, 0),
            textcoords="offset points",
            ha="center" if horizontal else "left",
            va="bottom" if horizontal else "center",
            fontsize=8,
            color="C3",
        )


def draw_architecture() -> Figure:
    """Block diagram of DeepLabv3+ (paper, Fig. 2), annotated with output strides (OS).

    The encoder (top row) is DeepLabv3: an atrous ResNet-50 ending at OS 16, then ASPP.
    The decoder (bottom row) upsamples by 4, joins the backbone's OS-4 features, refines and
    upsamples by 4 again. Taught in notebook 00.
    """
    fig, ax = plt.subplots(figsize=(12, 4.5))
    ax.set_xlim(0, 14)
    ax.set_ylim(0, 6)
    ax.axis("off")
    blue, green, grey = "#cfe2f3", "#d9ead3", "#eeeeee"
    _box(ax, 0.9, 4.5, "image\nH × W × 3", grey)
    _box(ax, 3.6, 4.5, "ResNet-50 backbone\n(atrous in stage 4)", blue)
    _box(ax, 7.6, 4.5, "ASPP\n1×1 conv, 3×3 convs at\nrates 6, 12, 18, image pooling", blue)
    _box(ax, 11.6, 4.5, "1×1 conv\n256 channels", blue)
    _box(ax, 3.6, 1.5, "1×1 conv\n48 channels", green)
    _box(ax, 7.6, 1.5, "concat\n+ two 3×3 convs", green)
    _box(ax, 10.6, 1.5, "upsample ×4", green)
    _box(ax, 13.1, 1.5, "mask\nH × W", grey)
    _arrow(ax, (1.6, 4.5), (2.3, 4.5))
    _arrow(ax, (4.95, 4.5), (5.65, 4.5), "OS 16")
    _arrow(ax, (9.55, 4.5), (10.65, 4.5))
    _arrow(ax, (3.6, 3.95), (3.6, 2.05), "low-level features, OS 4")
    _arrow(ax, (4.5, 1.5), (6.5, 1.5))
    _arrow(ax, (11.6, 3.95), (8.4, 2.05), "upsample ×4: OS 16 → 4")
    _arrow(ax, (8.75, 1.5), (9.7, 1.5), "OS 4")
    _arrow(ax, (11.5, 1.5), (12.5, 1.5), "OS 1")
    ax.text(0.2, 5.7, "Encoder (DeepLabv3)", fontsize=11, weight="bold", color="#3d6fa5")
    ax.text(0.2, 0.3, "Decoder (the '+')", fontsize=11, weight="bold", color="#4d8a3a")
    return fig


def plot_atrous_1d(
    signal: np.ndarray | torch.Tensor,
    *,
    rates: tuple[int, ...] | list[int] = (1, 2, 3),
    kernel_size: int = 3,
    position: int | None = None,
) -> Figure:
    """Draw which samples of a 1-D signal one output ``y[position]`` reads at each rate.

    Atrous convolution (paper, Sec. 3.1, Eq. 1) reads ``x[i + r k]``: the same ``kernel_size``
    taps, spread ``r`` samples apart. One row per rate. Taught in notebook 01.

    Args:
        signal: 1-D signal ``(L,)``.
        rates: the atrous rates to draw, one row each.
        kernel_size: taps per kernel (odd, so the output sits on the middle tap).
        position: the output index to explain; the middle of the signal by default.
    """
    values = _to_numpy(signal)
    if values.ndim != 1:
        raise ValueError(f"signal must be 1-D (L,), got shape {values.shape}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size}")
    position = len(values) // 2 if position is None else position
    half = (kernel_size - 1) // 2
    fig, axes = plt.subplots(len(rates), 1, sharex=True, figsize=(8, 1.8 * len(rates)))
    for ax, rate in zip(np.atleast_1d(axes), rates, strict=True):
        taps = position + rate * (np.arange(kernel_size) - half)
        if taps.min() < 0 or taps.max() >= len(values):
            raise ValueError(
                f"rate {rate} puts taps at {taps.tolist()}, outside the signal 0..{len(values) - 1}"
            )
        ax.vlines(np.arange(len(values)), 0, values, color="0.7")
        ax.plot(np.arange(len(values)), values, "o", color="0.6", ms=4)
        ax.axvspan(taps.min() - 0.4, taps.max() + 0.4, color="C1", alpha=0.15)
        ax.plot(taps, values[taps], "o", color="C1", ms=10)
        for k, tap in enumerate(taps):
            ax.annotate(
                f"w{k}",
                (tap, values[tap]),
                xytext=(0, 8),
                textcoords="offset points",
                ha="center",
                fontsize=9,
                color="C1",
            )
        span = rate * (kernel_size - 1) + 1
        ax.set_title(f"rate r={rate}: {kernel_size} weights see {span} samples", fontsize=10)
        ax.set_ylabel("x")
    np.atleast_1d(axes)[-1].set_xlabel(f"sample index (output y[{position}] sits at the centre)")
    fig.tight_layout()
    return fig


def plot_dilated_kernels(
    rates: tuple[int, ...] | list[int] = (1, 2, 3), kernel_size: int = 3
) -> Figure:
    """Draw a ``kernel_size`` x ``kernel_size`` kernel's taps on the pixel grid at each rate.

    The taps (orange) stay ``k^2`` whatever the rate; only the gaps between them grow, so the
    window seen is ``r (k - 1) + 1`` pixels wide (paper, Fig. 3). Taught in notebook 01.
    """
    if kernel_size < 1 or not rates or min(rates) < 1:
        raise ValueError(
            f"kernel_size and every rate must be ints >= 1, got {kernel_size} and {rates}"
        )
    size = max(rates) * (kernel_size - 1) + 3  # the widest window plus a 1-pixel margin
    fig, axes = plt.subplots(1, len(rates), figsize=(3 * len(rates), 3.2))
    for ax, rate in zip(np.atleast_1d(axes), rates, strict=True):
        grid = np.zeros((size, size))
        start = (size - rate * (kernel_size - 1)) // 2
        taps = start + rate * np.arange(kernel_size)
        grid[np.ix_(taps, taps)] = 1.0
        ax.imshow(grid, cmap="Oranges", vmin=0, vmax=1.4)
        _pixel_grid(ax, size)
        span = rate * (kernel_size - 1) + 1
        ax.set_title(f"rate {rate}: {kernel_size}x{kernel_size} taps, {span}x{span} view")
    fig.tight_layout()
    return fig


def _pixel_grid(ax: plt.Axes, size: int) -> None:
    """Thin lines between the pixels of a ``size`` x ``size`` image, no tick labels."""
    ax.set_xticks(np.arange(-0.5, size, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, size, 1), minor=True)
    ax.grid(which="minor", color="0.85", linewidth=0.5)
    ax.tick_params(which="both", length=0)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_receptive_field_maps(
    maps: list[np.ndarray | torch.Tensor] | tuple[np.ndarray | torch.Tensor, ...],
    titles: list[str] | tuple[str, ...],
    *,
    counts: bool = False,
) -> Figure:
    """Draw, for one output pixel, the input pixels it depends on (one panel per map).

    Each map is ``(H, W)``, typically the gradient of one output pixel with respect to the
    input: non-zero where the output looks. With ``counts=True`` the values are drawn as a
    heat map with a colour bar (how many paths lead to each input pixel: the gridding
    effect); otherwise as seen / not seen. The centre pixel is marked. Taught in notebook 01.
    """
    if len(maps) != len(titles) or not maps:
        raise ValueError(
            f"maps and titles must be non-empty and of equal length, got {len(maps)} maps "
            f"and {len(titles)} titles"
        )
    fig, axes = plt.subplots(1, len(maps), figsize=(3.2 * len(maps), 3.4))
    for ax, field, title in zip(np.atleast_1d(axes), maps, titles, strict=True):
        values = _to_numpy(field).astype(float)
        if values.ndim != 2:
            raise ValueError(f"each map must be 2-D (H, W), got shape {values.shape}")
        if counts:
            image = ax.imshow(values, cmap="magma", vmin=0)
            fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        else:
            ax.imshow(values != 0, cmap="Blues", vmin=0, vmax=1.3)
        if max(values.shape) <= 41:  # finer grids would be all lines
            _pixel_grid(ax, max(values.shape))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.plot(values.shape[1] // 2, values.shape[0] // 2, "s", color="C3", ms=3)
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_receptive_field_growth(curves: dict[str, list[int]], *, log_y: bool = False) -> Figure:
    """Plot receptive field (pixels per side) against depth, one line per stack of layers.

    ``curves`` maps a label to the receptive field after layers 1, 2, ..., e.g. the output of
    ``deeplab_utils.receptive_fields``. Taught in notebook 01.
    """
    if not curves:
        raise ValueError("curves must hold at least one labelled sequence, got none")
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, fields in curves.items():
        ax.plot(np.arange(1, len(fields) + 1), fields, "o-", label=label)
    ax.set_xlabel("depth (layers)")
    ax.set_ylabel("receptive field (pixels per side)")
    if log_y:
        from matplotlib.ticker import ScalarFormatter  # local: only the log axis needs it

        ax.set_yscale("log", base=2)
        ax.yaxis.set_major_formatter(ScalarFormatter())  # 512, not 2^9: pixels read plainly
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


# --- model (notebooks 02-04) ---
# notebook 04: decoder and full model
def plot_decoder_costs(
    params: dict[str, dict[str, int]],
    macs: dict[str, dict[str, int]],
    *,
    input_size: tuple[int, int],
) -> Figure:
    """Stacked bars of parameters and multiply-adds per model, split by component.

    Taught in notebook 04.

    Args:
        params: model name (e.g. "DeepLabV3+") -> component (e.g. "backbone") -> parameters.
        macs: same keys -> multiply-accumulates of one forward pass at ``input_size``.
        input_size: ``(H, W)`` the MACs were counted at, for the title (MACs scale with H*W).
    """
    if not params or list(params) != list(macs):
        raise ValueError(
            f"params and macs must name the same models, got {list(params)} and {list(macs)}"
        )
    models = list(params)
    components = list(dict.fromkeys(c for m in models for c in params[m]))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    panels = [
        (axes[0], params, 1e6, "parameters (millions)"),
        (axes[1], macs, 1e9, f"multiply-adds at {input_size[0]}×{input_size[1]} (billions)"),
    ]
    for ax, counts, scale, label in panels:
        bottom = np.zeros(len(models))
        for i, component in enumerate(components):
            values = np.array([counts[m].get(component, 0) / scale for m in models])
            ax.bar(models, values, bottom=bottom, label=component, color=f"C{i}")
            bottom += values
        for x, total in enumerate(bottom):
            ax.text(x, total, f"{total:.3g}", ha="center", va="bottom", fontsize=9)
        ax.set_ylim(0, bottom.max() * 1.3)  # headroom for the totals and the legend
        ax.set_title(label)
        ax.tick_params(axis="x", labelsize=9)
    axes[0].legend(frameon=False, loc="upper center", ncol=len(components), fontsize=9)
    fig.tight_layout()
    return fig


def plot_decoder_upsampling(
    mask: np.ndarray | torch.Tensor,
    upsampled: dict[str, np.ndarray | torch.Tensor],
    *,
    scores: dict[str, float] | None = None,
) -> Figure:
    """A full-resolution binary mask next to coarse versions of it brought back to full size.

    Pixels where a version disagrees with the mask are drawn in red, so the boundary error of
    upsampling from 1/16 versus 1/4 of the resolution shows at a glance. Taught in notebook 04.

    Args:
        mask: ``(H, W)`` binary ground truth.
        upsampled: name (e.g. "×16 bilinear") -> ``(H, W)`` binary mask.
        scores: optional name -> IoU with ``mask``, shown in the panel titles.
    """
    truth = _to_numpy(mask).astype(bool)
    if truth.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {truth.shape}")
    fig, axes = plt.subplots(1, len(upsampled) + 1, figsize=(2.6 * (len(upsampled) + 1), 2.9))
    axes = np.atleast_1d(axes)
    axes[0].imshow(truth, cmap="gray", interpolation="nearest")
    axes[0].set_title(f"ground truth {truth.shape[0]}×{truth.shape[1]}", fontsize=9)
    for ax, (name, coarse) in zip(axes[1:], upsampled.items(), strict=True):
        pred = _to_numpy(coarse).astype(bool)
        if pred.shape != truth.shape:
            raise ValueError(f"upsampled[{name!r}] has shape {pred.shape}, expected {truth.shape}")
        picture = np.stack([pred, pred, pred], axis=-1).astype(float)
        picture[pred != truth] = (0.85, 0.1, 0.1)  # red: wrong pixels
        ax.imshow(picture, interpolation="nearest")
        score = "" if scores is None or name not in scores else f"\nIoU {scores[name]:.3f}"
        ax.set_title(f"{name}{score}", fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


# ResNet-50 backbone figures (notebook 03)
def draw_backbone_bottleneck() -> Figure:
    """Diagram of a ResNet bottleneck: 1x1 reduce, 3x3 (stride s, dilation r), 1x1 expand, + x.

    Main path on the left, shortcut on the right (identity, or a strided 1x1 conv + BN when the
    shape changes); the sum goes through the last ReLU (He et al. 2016, Fig. 5 right).
    Taught in notebook 03.
    """
    fig, ax = plt.subplots(figsize=(7, 6.5))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 10)
    ax.axis("off")
    blue, grey, orange = "#cfe2f3", "#eeeeee", "#fce5cd"
    _box(ax, 3.5, 9.3, "x: (B, C_in, H, W)", grey)
    _box(ax, 3.5, 7.6, "1×1 conv, C_in → planes\nBN, ReLU", blue)
    _box(ax, 3.5, 5.7, "3×3 conv, planes → planes\nstride s, dilation r, padding r\nBN, ReLU", blue)
    _box(ax, 3.5, 3.8, "1×1 conv, planes → 4·planes\nBN", blue)
    _box(ax, 3.5, 2.3, "+", orange)
    _box(ax, 3.5, 0.7, "ReLU → (B, 4·planes, H/s, W/s)", grey)
    _box(ax, 8.0, 5.7, "shortcut:\nidentity, or\n1×1 conv, stride s\n+ BN (downsample)", orange)
    _arrow(ax, (3.5, 8.95), (3.5, 8.15), "reduce")
    _arrow(ax, (3.5, 7.1), (3.5, 6.4))
    _arrow(ax, (3.5, 5.0), (3.5, 4.3), "expand ×4")
    _arrow(ax, (3.5, 3.3), (3.5, 2.65), "F(x)")
    _arrow(ax, (3.5, 1.95), (3.5, 1.1))
    _arrow(ax, (4.9, 9.3), (8.0, 6.7))
    _arrow(ax, (8.0, 4.7), (3.9, 2.3), "x (or downsample(x))")
    ax.set_title("Bottleneck block: y = ReLU(F(x) + x)", fontsize=11)
    fig.tight_layout()
    return fig


def plot_backbone_output_stride_cost(
    output_strides: list[int] | tuple[int, ...],
    macs: list[int] | tuple[int, ...],
    activation_bytes: list[int] | tuple[int, ...],
    *,
    input_size: tuple[int, int] | None = None,
) -> Figure:
    """Bar charts of multiply-adds (G) and activation memory (MB) for each output stride.

    One bar per output stride in each panel, labelled with its value and its ratio to the
    first one. Taught in notebook 03.

    Args:
        output_strides: e.g. ``(32, 16, 8)``.
        macs: multiply-accumulates of one forward pass, one per output stride.
        activation_bytes: bytes of the feature maps of one forward pass, one per output stride.
        input_size: ``(H, W)`` the numbers were measured at, for the title.
    """
    if not output_strides or not len(output_strides) == len(macs) == len(activation_bytes):
        raise ValueError(
            "output_strides, macs and activation_bytes must be non-empty and of equal length, "
            f"got {len(output_strides)}, {len(macs)} and {len(activation_bytes)}"
        )
    labels = [f"OS {s}" for s in output_strides]
    panels = [
        (np.asarray(macs, dtype=float) / 1e9, "multiply-adds (G)"),
        (np.asarray(activation_bytes, dtype=float) / 2**20, "activation memory (MiB)"),
    ]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for ax, (values, title) in zip(axes, panels, strict=True):
        bars = ax.bar(labels, values, color=[f"C{i}" for i in range(len(values))])
        texts = [f"{v:.3g}\n×{v / values[0]:.2g}" for v in values]
        ax.bar_label(bars, texts, fontsize=9)
        ax.set_ylim(0, values.max() * 1.3)  # room for the labels
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    if input_size is not None:
        fig.suptitle(f"ResNet-50 backbone, one {input_size[0]}×{input_size[1]} image")
    fig.tight_layout()
    return fig


def plot_backbone_feature_maps(
    image: np.ndarray | torch.Tensor,
    features: dict[str, torch.Tensor],
    *,
    channels: int = 4,
) -> Figure:
    """Show an image and, per feature map, the ``channels`` channels that vary the most.

    One row per entry of ``features`` (e.g. the backbone's ``"low_level"`` and ``"out"``): the
    input image, then the chosen channels at their own resolution, titled with their size.
    Taught in notebook 03.

    Args:
        image: RGB in ``[0, 1]``, ``(3, H, W)`` tensor or ``(H, W, 3)`` array.
        features: name -> feature map ``(1, C, h, w)`` or ``(C, h, w)``.
        channels: how many channels to draw per feature map.
    """
    if not features or channels < 1:
        raise ValueError(
            f"features must be non-empty and channels >= 1, got {len(features)} feature maps "
            f"and channels={channels}"
        )
    picture = _to_numpy(image)
    if isinstance(image, torch.Tensor):
        picture = picture.transpose(1, 2, 0)  # (3, H, W) -> (H, W, 3) for imshow
    fig, axes = plt.subplots(
        len(features), channels + 1, figsize=(2.2 * (channels + 1), 2.7 * len(features))
    )
    axes = np.atleast_2d(axes)
    for row, (name, feature) in zip(axes, features.items(), strict=True):
        maps = _to_numpy(feature.squeeze(0) if feature.dim() == 4 else feature)  # (C, h, w)
        if maps.ndim != 3:
            raise ValueError(
                f"feature {name!r} must be (1, C, h, w) or (C, h, w), got {maps.shape}"
            )
        # the most varying channels say the most; many are near-constant after ReLU
        chosen = np.argsort(-maps.reshape(len(maps), -1).var(axis=1), kind="stable")[:channels]
        row[0].imshow(picture.clip(0, 1))
        row[0].set_title("input", fontsize=9)
        for ax, c in zip(row[1:], chosen, strict=False):
            ax.imshow(maps[c], cmap="viridis", interpolation="nearest")
            ax.set_title(f"{name} ch {c}\n{maps.shape[1]}×{maps.shape[2]}", fontsize=9)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return fig


def plot_aspp_footprints(
    size: int, rates: tuple[int, ...] | list[int], pixel: tuple[int, int]
) -> Figure:
    """Where each ASPP branch reads the feature map for one output ``pixel`` (row, col).

    One panel per branch: the 1x1 conv, a 3x3 atrous conv per rate, and image pooling. The
    ``size`` x ``size`` map is grey; the taps that land on it are filled, those that fall in the
    zero padding are hollow (DeepLabv3 paper, Sec. 3.3: at large rates they carry no signal).
    The pooling branch reads the whole map. Taught in notebook 02.
    """
    from matplotlib.patches import Rectangle

    if size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    row, col = pixel
    if not (0 <= row < size and 0 <= col < size):
        raise ValueError(f"pixel must lie inside the {size}x{size} map, got {pixel!r}")
    if not rates or min(rates) < 1:
        raise ValueError(f"rates must be positive ints, got {rates!r}")
    margin = max(rates) + 1
    branches: list[tuple[str, int | None]] = [("1x1 conv", 0)]
    branches += [(f"3x3 conv, rate {r}", r) for r in rates]
    branches.append(("image pooling", None))
    fig, axes = plt.subplots(1, len(branches), figsize=(2.4 * len(branches), 2.8))
    for ax, (title, rate) in zip(axes, branches, strict=True):
        ax.add_patch(
            Rectangle((-0.5, -0.5), size, size, color="0.85" if rate is not None else "C0")
        )
        taps = (
            [(row, col)]
            if not rate
            else [(row + dr * rate, col + dc * rate) for dr in (-1, 0, 1) for dc in (-1, 0, 1)]
        )
        inside = sum(0 <= r < size and 0 <= c < size for r, c in taps)
        for r, c in taps:
            filled = 0 <= r < size and 0 <= c < size
            ax.plot(c, r, "s", ms=5, mfc="C3" if filled else "none", mec="C3")
        ax.plot(col, row, "k+", ms=8)
        ax.set_xlim(-margin, size - 1 + margin)
        ax.set_ylim(size - 1 + margin, -margin)  # rows grow downwards, as in an image
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        detail = "all pixels" if rate is None else f"{inside}/{len(taps)} taps on the map"
        ax.set_title(f"{title}\n{detail}", fontsize=9)
    fig.suptitle(f"What output pixel {pixel} reads from a {size}x{size} feature map")
    fig.tight_layout()
    return fig


def plot_aspp_valid_weights(
    rates: list[int] | np.ndarray | torch.Tensor,
    curves: dict[str, list[float] | np.ndarray | torch.Tensor],
    *,
    size: int = 65,
) -> Figure:
    """Fraction of output pixels vs atrous rate, one curve per label (e.g. "9 valid weights").

    Reproduces DeepLabv3, Fig. 4: how many of a 3x3 kernel's taps land on a ``size`` x ``size``
    map as the rate grows. Taught in notebook 02.
    """
    x = _to_numpy(rates)
    if not curves:
        raise ValueError("curves must hold at least one curve, got an empty mapping")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, values in curves.items():
        y = _to_numpy(values)
        if y.shape != x.shape:
            raise ValueError(f"curve {label!r} has shape {y.shape}, rates have {x.shape}")
        ax.plot(x, y, label=label)
    ax.set_xlabel("atrous rate")
    ax.set_ylabel("fraction of output pixels")
    ax.set_title(f"Valid weights of a 3x3 kernel on a {size}x{size} feature map")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_aspp_cost(costs: dict[str, dict[str, float]]) -> Figure:
    """Bar charts comparing model variants: one panel per measure, one bar per variant.

    ``costs`` maps a variant (e.g. "regular ASPP") to measures (e.g. {"parameters (M)": 15.5,
    "multiply-adds (G)": 16.3}); every variant must give the same measures.
    Taught in notebook 02.
    """
    if not costs:
        raise ValueError("costs must hold at least one variant, got an empty mapping")
    measures = list(next(iter(costs.values())))
    for variant, values in costs.items():
        if list(values) != measures:
            raise ValueError(
                f"every variant must give the measures {measures}, {variant!r} gives {list(values)}"
            )
    variants = list(costs)
    fig, axes = plt.subplots(1, len(measures), figsize=(3.2 * len(measures), 3.2), squeeze=False)
    for ax, measure in zip(axes[0], measures, strict=True):
        heights = [costs[v][measure] for v in variants]
        bars = ax.bar(variants, heights, color=[f"C{i}" for i in range(len(variants))])
        ax.bar_label(bars, labels=[f"{h:.3g}" for h in heights])
        ax.set_title(measure)
        ax.set_ylim(0, max(heights) * 1.2 if max(heights) > 0 else 1)
    fig.tight_layout()
    return fig


# --- losses and metrics (notebook 05) ---
def _objectives_array(values: np.ndarray | torch.Tensor | list[float]) -> np.ndarray:
    """A detached float64 CPU NumPy copy (for the notebook-05 figures)."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64)


def plot_loss_vs_overlap(
    overlaps: list[float] | np.ndarray | torch.Tensor,
    curves: dict[str, list[float] | np.ndarray | torch.Tensor],
    *,
    xlabel: str = "overlap: IoU of predicted and target square",
    title: str = "Loss versus overlap",
) -> Figure:
    """One line per loss: its value as the prediction overlaps the target more and more.

    Taught in notebook 05.

    Args:
        overlaps: x values, e.g. the hard IoU of a sliding predicted square with the target.
        curves: loss name -> loss values, one per overlap.
        xlabel: label of the x axis.
        title: figure title.
    """
    x = _objectives_array(overlaps)
    if not curves:
        raise ValueError("curves must hold at least one loss, got an empty mapping")
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, values in curves.items():
        y = _objectives_array(values)
        if y.shape != x.shape:
            raise ValueError(
                f"curve {name!r} has {y.shape} values but overlaps has {x.shape}; "
                "give one loss value per overlap"
            )
        ax.plot(x, y, marker="o", markersize=3, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_gradient_maps(
    gradients: dict[str, dict[str, np.ndarray | torch.Tensor]],
    *,
    targets: dict[str, np.ndarray | torch.Tensor] | None = None,
) -> Figure:
    """Grid of gradient-magnitude maps ``|∂L/∂logit|``: one row per case, one column per loss.

    Each panel has its own colour scale (losses differ by orders of magnitude), and its title
    gives the largest magnitude so the scales can be compared. The target's outline is drawn
    in white where ``targets`` gives one for the row.

    Taught in notebook 05.

    Args:
        gradients: case name (e.g. "small object") -> loss name -> gradient ``(H, W)``.
        targets: optional case name -> binary target mask ``(H, W)``.
    """
    if not gradients:
        raise ValueError("gradients must hold at least one case, got an empty mapping")
    loss_names = list(next(iter(gradients.values())))
    for case, maps in gradients.items():
        if list(maps) != loss_names:
            raise ValueError(
                f"every case must give the same losses; {case!r} gives {list(maps)}, "
                f"expected {loss_names}"
            )
    rows, cols = len(gradients), len(loss_names)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.5 * rows), squeeze=False)
    for r, (case, maps) in enumerate(gradients.items()):
        for c, (loss_name, grad) in enumerate(maps.items()):
            magnitude = np.abs(_objectives_array(grad))
            if magnitude.ndim != 2:
                raise ValueError(
                    f"gradient {case!r}/{loss_name!r} must be (H, W), got {magnitude.shape}"
                )
            ax = axes[r, c]
            peak = magnitude.max()
            ax.imshow(magnitude, cmap="magma", vmin=0, vmax=peak if peak > 0 else 1)
            if targets is not None and case in targets:
                outline = _objectives_array(targets[case])
                if outline.any():
                    ax.contour(outline, levels=[0.5], colors="white", linewidths=0.8)
            ax.set_title(f"{loss_name}\nmax {peak:.1e}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(case)
    fig.suptitle("|∂ loss / ∂ logit| per pixel")
    fig.tight_layout()
    return fig


def plot_confusion_matrix(
    cm: np.ndarray | torch.Tensor,
    class_names: list[str] | tuple[str, ...] | None = None,
    *,
    normalize: bool = True,
    title: str | None = None,
    annotate: bool | None = None,
) -> Figure:
    """Confusion matrix as a heat map: rows are target classes, columns predictions.

    Taught in notebook 05 (and reused for evaluation in notebook 08).

    Args:
        cm: ``(C, C)`` counts, rows = target, columns = prediction (as in
            ``SegmentationMetrics.compute()["confusion_matrix"]``).
        class_names: ``C`` names for the ticks; ``None`` numbers the classes.
        normalize: divide each row by its sum, so a cell is the fraction of a target class
            predicted as each class (the diagonal is per-class recall); rows with no pixels
            stay 0.
        title: figure title; a default says whether values are counts or fractions.
        annotate: write the value in each cell; ``None`` does so when ``C <= 12``.
    """
    matrix = _objectives_array(cm)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"cm must be a square (C, C) matrix, got shape {matrix.shape}")
    num_classes = matrix.shape[0]
    if class_names is None:
        class_names = [str(i) for i in range(num_classes)]
    if len(class_names) != num_classes:
        raise ValueError(
            f"class_names must have one name per class ({num_classes}), got {len(class_names)}"
        )
    if normalize:
        row_sums = matrix.sum(axis=1, keepdims=True)
        matrix = np.divide(matrix, row_sums, out=np.zeros_like(matrix), where=row_sums > 0)
    if annotate is None:
        annotate = num_classes <= 12
    size = max(4.0, 0.5 * num_classes + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ticks = np.arange(num_classes)
    ax.set_xticks(ticks, labels=list(class_names), rotation=45, ha="right")
    ax.set_yticks(ticks, labels=list(class_names))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("target class")
    default_title = "confusion matrix (row-normalised)" if normalize else "confusion matrix"
    ax.set_title(title or default_title)
    if annotate:
        threshold = matrix.max() / 2 if matrix.max() > 0 else 1
        for (i, j), value in np.ndenumerate(matrix):
            text = f"{value:.2f}" if normalize else f"{int(value)}"
            colour = "white" if value > threshold else "black"
            ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=8)
    fig.tight_layout()
    return fig


# --- data (notebook 06) ---
from collections.abc import Callable, Sequence  # noqa: E402  (this block's own imports)

from torchvision import tv_tensors  # noqa: E402

from .data import colorize_mask, denormalize  # noqa: E402


def _display_image(image: torch.Tensor | np.ndarray, *, normalized: bool = True) -> np.ndarray:
    """(3, H, W) image -> uint8 (H, W, 3): uint8 as is, float denormalised (or taken as [0, 1])."""
    image = torch.as_tensor(image).detach().cpu()
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be (3, H, W), got shape {tuple(image.shape)}")
    if image.dtype == torch.uint8:
        return image.permute(1, 2, 0).numpy()
    image = denormalize(image) if normalized else image.float().clamp(0.0, 1.0)
    return (image * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()


def overlay_mask(
    image: torch.Tensor | np.ndarray,
    mask: torch.Tensor | np.ndarray,
    palette: Sequence[Sequence[int]],
    *,
    alpha: float = 0.5,
    normalized: bool = True,
) -> np.ndarray:
    """Blend a class mask's palette colours over an image. Taught in notebook 06.

    Args:
        image: ``(3, H, W)``: uint8, or float (ImageNet-normalised if ``normalized`` else [0, 1]).
        mask: ``(H, W)`` class indices; ``ignore_index`` pixels are blended with white.
        palette: ``(K, 3)`` RGB colours.
        alpha: weight of the mask colour, 0..1.

    Returns:
        uint8 array ``(H, W, 3)``.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    rgb = _display_image(image, normalized=normalized).astype(np.float32)
    mask = torch.as_tensor(mask).detach().cpu()
    if tuple(mask.shape) != rgb.shape[:2]:
        raise ValueError(f"mask shape {tuple(mask.shape)} differs from image's {rgb.shape[:2]}")
    colours = colorize_mask(mask, palette).permute(1, 2, 0).numpy().astype(np.float32)
    return ((1 - alpha) * rgb + alpha * colours + 0.5).astype(np.uint8)


def _class_legend(fig: Figure, palette: Sequence[Sequence[int]], class_names: Sequence[str]):
    from matplotlib.patches import Patch

    handles = [
        Patch(facecolor=np.asarray(c) / 255, edgecolor="grey", label=name)
        for c, name in zip(palette, class_names, strict=False)
    ]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 7), frameon=False)


def show_samples(
    images: torch.Tensor | Sequence[torch.Tensor],
    masks: torch.Tensor | Sequence[torch.Tensor],
    palette: Sequence[Sequence[int]],
    class_names: Sequence[str],
    *,
    preds: torch.Tensor | Sequence[torch.Tensor] | None = None,
    ncols: int = 4,
    alpha: float = 0.6,
    normalized: bool = True,
) -> Figure:
    """Grid of samples: each image above its mask overlay (and prediction overlay, if given).

    Taught in notebook 06; reused for predictions in notebooks 07-08.

    Args:
        images: ``(B, 3, H, W)`` (normalised float by default, or uint8) or a list of ``(3, H, W)``.
        masks: ``(B, H, W)`` ground-truth class indices.
        palette, class_names: class colours and names, for the overlay and the legend.
        preds: optional ``(B, H, W)`` predicted classes, drawn in a third row per sample.
        ncols: samples per row of the grid.
    """
    if len(images) != len(masks) or (preds is not None and len(preds) != len(images)):
        raise ValueError(
            f"need as many masks/preds as images, got {len(images)} images, {len(masks)} masks"
            + ("" if preds is None else f", {len(preds)} preds")
        )
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    n = len(images)
    ncols = min(ncols, n)
    per = 2 if preds is None else 3  # rows per sample: image, truth (, prediction)
    nrows = -(-n // ncols) * per
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.8 * ncols, 1.8 * nrows + 0.5), squeeze=False)
    titles = ("image", "ground truth", "prediction")
    for i in range(n):
        r, c = (i // ncols) * per, i % ncols
        labels = [masks[i]] if preds is None else [masks[i], preds[i]]
        panels = [_display_image(images[i], normalized=normalized)] + [
            overlay_mask(images[i], m, palette, alpha=alpha, normalized=normalized) for m in labels
        ]
        for k, panel in enumerate(panels):
            axes[r + k, c].imshow(panel)
            if c == 0:
                axes[r + k, c].set_ylabel(titles[k])
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        if not ax.images:
            ax.axis("off")
    _class_legend(fig, palette, class_names)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def show_predictions(
    images: torch.Tensor | Sequence[torch.Tensor],
    masks: torch.Tensor | Sequence[torch.Tensor],
    preds: torch.Tensor | Sequence[torch.Tensor],
    palette: Sequence[Sequence[int]],
    class_names: Sequence[str],
    *,
    ncols: int = 4,
) -> Figure:
    """Image, ground truth and prediction for each sample. Taught in notebooks 07-08."""
    return show_samples(images, masks, palette, class_names, preds=preds, ncols=ncols)


def plot_class_balance(
    fractions: Sequence[float] | np.ndarray | torch.Tensor,
    class_names: Sequence[str],
    palette: Sequence[Sequence[int]],
    *,
    title: str = "Share of pixels per class",
) -> Figure:
    """Bar chart of the fraction of pixels in each class. Taught in notebook 06."""
    fractions = np.asarray(torch.as_tensor(fractions, dtype=torch.float64))
    if fractions.ndim != 1 or len(fractions) != len(class_names):
        raise ValueError(
            f"need one fraction per class: {len(class_names)} classes, got shape {fractions.shape}"
        )
    fig, ax = plt.subplots(figsize=(1.2 * len(class_names) + 2, 3))
    colours = [np.asarray(c) / 255 for c in palette[: len(class_names)]]
    bars = ax.bar(class_names, fractions, color=colours, edgecolor="grey")
    ax.bar_label(bars, labels=[f"{f:.1%}" for f in fractions])
    ax.set_ylabel("fraction of pixels")
    ax.set_ylim(0, min(1.0, fractions.max() * 1.2 + 0.02))
    ax.set_title(title)
    fig.tight_layout()
    return fig


def show_augmentations(
    image: torch.Tensor,
    mask: torch.Tensor,
    transform: Callable,
    palette: Sequence[Sequence[int]],
    *,
    n: int = 4,
    seed: int = 0,
) -> Figure:
    """Several random draws of a joint transform on one sample: image above its mask overlay.

    The first column is the input; draws are seeded (without touching the global RNG), so the
    figure is reproducible. Taught in notebook 06.

    Args:
        image: uint8 ``(3, H, W)`` before any transform.
        mask: ``(H, W)`` class indices.
        transform: joint transform ``(Image, Mask) -> (normalised float image, mask)``.
    """
    pairs = [(image, mask, False)]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(n):
            out = transform(tv_tensors.Image(image), tv_tensors.Mask(mask))
            pairs.append((out[0], out[1], True))
    fig, axes = plt.subplots(2, n + 1, figsize=(1.8 * (n + 1), 3.9), squeeze=False)
    for j, (img, msk, normalized) in enumerate(pairs):
        axes[0, j].imshow(_display_image(img, normalized=normalized))
        axes[1, j].imshow(overlay_mask(img, msk, palette, alpha=0.6, normalized=normalized))
        axes[0, j].set_title("input" if j == 0 else f"draw {j}")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel("image")
    axes[1, 0].set_ylabel("mask overlay\n(white = ignore)")
    fig.tight_layout()
    return fig


# --- training and evaluation (notebooks 07-08) ---
# (notebook 08: evaluation and inference)


def plot_per_class_iou(
    iou: Sequence[float] | np.ndarray | torch.Tensor,
    class_names: Sequence[str],
    palette: Sequence[Sequence[int]],
    *,
    pixel_share: Sequence[float] | np.ndarray | torch.Tensor | None = None,
    title: str = "IoU per class",
) -> Figure:
    """Bar chart of per-class IoU with the mIoU as a dashed line. Taught in notebook 08.

    Args:
        iou: ``(C,)`` IoU per class (NaN for a class absent from target and prediction: no bar).
        class_names, palette: names and RGB colours of the ``C`` classes.
        pixel_share: optional ``(C,)`` fraction of target pixels per class, written under each
            name, so that a high mIoU driven by a dominant class is visible.
    """
    values = np.asarray(torch.as_tensor(iou, dtype=torch.float64))
    if values.ndim != 1 or len(values) != len(class_names):
        raise ValueError(
            f"need one IoU per class: {len(class_names)} classes, got shape {values.shape}"
        )
    labels = list(class_names)
    if pixel_share is not None:
        share = np.asarray(torch.as_tensor(pixel_share, dtype=torch.float64))
        if share.shape != values.shape:
            raise ValueError(
                f"pixel_share must have shape {values.shape} like iou, got {share.shape}"
            )
        labels = [f"{name}\n{s:.0%} of pixels" for name, s in zip(labels, share, strict=True)]
    fig, ax = plt.subplots(figsize=(1.3 * len(labels) + 2, 3.2))
    colours = [np.asarray(c) / 255 for c in palette[: len(labels)]]
    bars = ax.bar(labels, np.nan_to_num(values), color=colours, edgecolor="grey")
    ax.bar_label(bars, labels=["n/a" if np.isnan(v) else f"{v:.2f}" for v in values])
    miou = float(np.nanmean(values)) if not np.isnan(values).all() else float("nan")
    ax.axhline(miou, color="black", linestyle="--", linewidth=1, label=f"mIoU = {miou:.2f}")
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("IoU")
    ax.set_title(title)
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def plot_inference_speed(
    sizes: Sequence[int], times_ms: dict[str, Sequence[float]], *, title: str | None = None
) -> Figure:
    """Inference time against image side, one line per setting. Taught in notebook 08.

    Args:
        sizes: image sides in pixels (square images).
        times_ms: per setting (e.g. ``"plain"``, ``"MS + flip"``), one time in ms per size.
    """
    if not times_ms:
        raise ValueError("times_ms must hold at least one setting")
    for name, times in times_ms.items():
        if len(times) != len(sizes):
            raise ValueError(
                f"setting {name!r} has {len(times)} times for {len(sizes)} sizes; give one each"
            )
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for name, times in times_ms.items():
        ax.plot(sizes, times, marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(list(sizes), labels=[f"{s}²" for s in sizes])
    ax.minorticks_off()
    ax.set_xlabel("image size (pixels)")
    ax.set_ylabel("time per image (ms)")
    ax.set_title(title or "inference time (batch 1, median)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def show_segmented_image(
    image: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    palette: Sequence[Sequence[int]],
    class_names: Sequence[str],
    *,
    alpha: float = 0.5,
) -> Figure:
    """A picture, its predicted classes and their overlay, side by side. Taught in notebook 08.

    Args:
        image: uint8 ``(H, W, 3)`` (as read from a file) or ``(3, H, W)``.
        labels: predicted classes ``(H, W)``, e.g. from ``segment_image``.
    """
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
    else:  # a copy: arrays from PIL are read-only
        image = torch.from_numpy(np.array(image))
    if image.ndim == 3 and image.shape[-1] == 3 and image.shape[0] != 3:
        image = image.permute(2, 0, 1)  # (H, W, 3) -> (3, H, W)
    if image.dtype != torch.uint8:
        raise TypeError(f"image must be uint8 (H, W, 3) or (3, H, W), got {image.dtype}")
    labels = torch.as_tensor(labels).detach().cpu()
    panels = [
        _display_image(image),
        colorize_mask(labels, palette).permute(1, 2, 0).numpy(),
        overlay_mask(image, labels, palette, alpha=alpha),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.6))
    for ax, panel, name in zip(axes, panels, ("image", "labels", "overlay"), strict=True):
        ax.imshow(panel)
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    _class_legend(fig, palette, class_names)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


# notebook 07: learning-rate schedules, training curves, predictions before/after training
from collections.abc import Mapping  # noqa: E402  (this block's own imports)
from typing import Any  # noqa: E402


def plot_lr_schedules(
    curves: Mapping[str, Sequence[float] | np.ndarray], *, title: str = "Learning-rate schedules"
) -> Figure:
    """Learning-rate multiplier against the optimiser step, one line per schedule.

    Taught in notebook 07.

    Args:
        curves: label -> multiplier of the base learning rate at steps 0, 1, 2, ...
    """
    if not curves:
        raise ValueError("curves must hold at least one schedule, got none")
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    for i, (label, values) in enumerate(curves.items()):
        values = np.asarray(values, dtype=float)
        # Dashes tell apart schedules that overlap (e.g. with and without warm-up after W steps).
        style = ("-", "--", "-.", ":")[i % 4]
        ax.plot(np.arange(len(values)), values, style, label=label)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("lr / base lr")
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig


def _history_field(history: Any, name: str) -> list[Any]:
    """``history.name`` for a :class:`~deeplab_utils.training.History`, or ``history[name]``."""
    value = history[name] if isinstance(history, Mapping) else getattr(history, name, None)
    if value is None:
        raise ValueError(f"history must have a {name!r} field (a History or its to_dict())")
    return list(value)


def plot_training_curves(history: Any, *, smooth: int = 10) -> Figure:
    """Training loss per step (raw and smoothed), learning rate, and validation mIoU.

    Taught in notebook 07.

    Args:
        history: a :class:`~deeplab_utils.training.History` (or its ``to_dict()``).
        smooth: width of the moving average drawn over the noisy per-step loss (>= 1).
    """
    if not isinstance(smooth, int) or isinstance(smooth, bool) or smooth < 1:
        raise ValueError(f"smooth must be a positive int, got {smooth!r}")
    steps = np.asarray(_history_field(history, "step"), dtype=float)
    loss = np.asarray(_history_field(history, "loss"), dtype=float)
    lr = np.asarray(_history_field(history, "lr"), dtype=float)
    if len(steps) == 0:
        raise ValueError("history holds no step: train first (fit returns the history)")
    eval_steps = _history_field(history, "eval_step")
    miou = [np.nan if v.get("miou") is None else v["miou"] for v in _history_field(history, "val")]

    fig, (ax_loss, ax_lr, ax_val) = plt.subplots(1, 3, figsize=(12, 3.3))
    ax_loss.plot(steps, loss, color="0.75", lw=0.8, label="per step")
    if len(loss) >= smooth > 1:
        # Trailing mean of the last `smooth` steps: the curve never looks ahead.
        mean = np.convolve(loss, np.ones(smooth) / smooth, mode="valid")
        ax_loss.plot(steps[smooth - 1 :], mean, color="C0", label=f"mean of {smooth} steps")
    ax_loss.set(xlabel="step", ylabel="training loss", title="Loss")
    ax_loss.legend(frameon=False)
    ax_lr.plot(steps, lr, color="C1")
    ax_lr.set(xlabel="step", ylabel="learning rate", title="Learning rate (poly)")
    ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    if eval_steps:
        ax_val.plot(eval_steps, miou, "o-", color="C2")
        for x, y in zip(eval_steps, miou, strict=True):
            ax_val.annotate(f"{y:.2f}", (x, y), textcoords="offset points", xytext=(0, 6),
                            ha="center", fontsize=8)  # fmt: skip
    else:
        ax_val.text(0.5, 0.5, "no validation run", ha="center", va="center")
    ax_val.set(xlabel="step", ylabel="mIoU", title="Validation mIoU", ylim=(0, 1))
    for ax in (ax_loss, ax_lr, ax_val):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def show_predictions_before_after(
    images: torch.Tensor | Sequence[torch.Tensor],
    masks: torch.Tensor | Sequence[torch.Tensor],
    before: torch.Tensor | Sequence[torch.Tensor],
    after: torch.Tensor | Sequence[torch.Tensor],
    palette: Sequence[Sequence[int]],
    class_names: Sequence[str],
    *,
    alpha: float = 0.6,
    normalized: bool = True,
) -> Figure:
    """One column per sample: image, ground truth, prediction before and after training.

    Taught in notebook 07.

    Args:
        images: ``(B, 3, H, W)`` (normalised float by default, or uint8).
        masks, before, after: ``(B, H, W)`` class indices: truth, and the two predictions.
        palette, class_names: class colours and names, for the overlays and the legend.
    """
    n = len(images)
    if n == 0 or not len(masks) == len(before) == len(after) == n:
        raise ValueError(
            "need as many masks and predictions as images (at least one), got "
            f"{n} images, {len(masks)} masks, {len(before)} before, {len(after)} after"
        )
    fig, axes = plt.subplots(4, n, figsize=(1.9 * n + 0.6, 8.2), squeeze=False)
    titles = ("image", "ground truth", "before training", "after training")
    for j in range(n):
        panels = [_display_image(images[j], normalized=normalized)] + [
            overlay_mask(images[j], m[j], palette, alpha=alpha, normalized=normalized)
            for m in (masks, before, after)
        ]
        for i, panel in enumerate(panels):
            axes[i, j].imshow(panel)
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
            if j == 0:
                axes[i, j].set_ylabel(titles[i])
    _class_legend(fig, palette, class_names)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig
