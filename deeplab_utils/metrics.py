"""Segmentation metrics from a confusion matrix: pixel accuracy, per-class IoU and Dice, mIoU, the
DeepLab papers' metric (v3+, Sec. 4: "pixel intersection-over-union averaged across the 21
classes"), from one matrix over the *whole* evaluation set, never a mean of per-image scores.
Objectives layer: torch alone. Taught in notebook 05.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .targets import IGNORE_INDEX, check_target


class SegmentationMetrics:
    """Accumulate a confusion matrix over batches and compute segmentation metrics from it:
    ``confusion_matrix[t, p]`` counts the pixels of target class ``t`` predicted as ``p``
    (``ignore_index`` targets skipped), on the device of the tensors given to :meth:`update`.
    Per class ``c``: ``TP = M[c, c]``, ``FP = Σ_t M[t, c] − TP``, ``FN = Σ_p M[c, p] − TP``,
    ``IoU = TP / (TP + FP + FN)``, ``Dice = 2TP / (2TP + FP + FN)``. Taught in notebook 05.
    """

    def __init__(self, num_classes: int, *, ignore_index: int = IGNORE_INDEX) -> None:
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.confusion_matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add one batch: float logits ``(B, C, H, W)`` (scored by their argmax over ``C``) or
        integer labels ``(B, H, W)``, and the target's class indices ``(B, H, W)``."""
        c = self.num_classes
        index = _pair_index(pred, target, c, self.ignore_index)  # (B, H, W)
        self.confusion_matrix = self.confusion_matrix.to(index.device)
        counts = torch.bincount(index.flatten(), minlength=c * c + 1)  # the last: ignored
        self.confusion_matrix += counts[: c * c].reshape(c, c)

    def sync(self) -> None:
        """Sum the confusion matrix over all processes when torch.distributed is initialised:
        once, on every rank, after the last :meth:`update` (twice would double-count). NCCL
        needs the matrix on the GPU: update it with CUDA tensors."""
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.confusion_matrix, op=dist.ReduceOp.SUM)

    def compute(self) -> dict[str, float | torch.Tensor]:
        """``"pixel_accuracy"``, ``"miou"``, ``"mean_dice"`` (floats), ``"iou"``, ``"dice"``
        (``(C,)`` float64) and ``"confusion_matrix"`` (``(C, C)`` int64), on the CPU. A class
        absent from target and prediction has no score (NaN) and is left out of the means, not
        counted as 0 or 1; with no pixels counted every float is NaN."""
        cm = self.confusion_matrix.detach().cpu()
        m = cm.double()  # counts below 2^53: every sum here is exact
        tp = m.diagonal()  # (C,)
        union = m.sum(dim=0) + m.sum(dim=1) - tp  # TP + FP + FN
        iou = _iou(m)  # (C,)
        dice = torch.where(union > 0, 2 * tp / (union + tp).clamp_min(1), torch.nan)  # (C,)
        total = m.sum()
        return {
            "pixel_accuracy": (tp.sum() / total).item() if total > 0 else float("nan"),
            "iou": iou,
            "miou": iou.nanmean().item(),
            "dice": dice,
            "mean_dice": dice.nanmean().item(),
            "confusion_matrix": cm.clone(),
        }


def _pair_index(
    pred: torch.Tensor, target: torch.Tensor, c: int, ignore_index: int
) -> torch.Tensor:
    """Logits ``(B, C, H, W)`` (their argmax) or labels ``(B, H, W)``, and targets ``(B, H, W)``
    -> ``(B, H, W)`` int64 ``t·C + p``, one index per (target, prediction) pair, ``C·C`` where the
    target is ignored: counted by one ``bincount``, the confusion matrix."""
    floating, shape = pred.is_floating_point(), pred.shape
    if floating and len(shape) == 4 and shape[1] == c:
        pred = pred.argmax(dim=1)  # (B, C, H, W) -> (B, H, W)
    elif len(shape) != 3 or floating or pred.dtype == torch.bool:
        raise ValueError(
            f"prediction must be float logits (B, {c}, H, W) (num_classes={c}) or integer "
            f"labels (B, H, W), got dtype {pred.dtype}, shape {tuple(shape)}"
        )
    target, valid = check_target(target, pred.shape, num_classes=c, ignore_index=ignore_index)
    bad = (pred < 0) | (pred >= c)
    if bool(bad.any()):
        raise ValueError(f"predicted labels must lie in [0, {c}), got {pred[bad][0].item()}")
    return torch.where(valid, target.long() * c + pred.long(), c * c)


def _iou(m: torch.Tensor) -> torch.Tensor:
    """Confusion matrices ``(..., C, C)`` float64 -> IoU per class ``(..., C)``: TP / (TP + FP +
    FN), NaN for a class absent from target and prediction."""
    tp = m.diagonal(dim1=-2, dim2=-1)
    union = m.sum(dim=-2) + m.sum(dim=-1) - tp
    return torch.where(union > 0, tp / union.clamp_min(1), torch.nan)


def mean_iou(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> float:
    """mIoU of one batch, ``(B, H, W)`` labels (or logits) against ``(B, H, W)`` targets:
    :class:`SegmentationMetrics` in one call. Taught in notebook 05."""
    metrics = SegmentationMetrics(num_classes, ignore_index=ignore_index)
    metrics.update(pred, target)
    return float(metrics.compute()["miou"])


def boundary_band(target: torch.Tensor, width: int) -> torch.Tensor:
    """The pixels within ``width`` pixels of a ground-truth boundary, ``(B, H, W)`` int ->
    ``(B, H, W)`` bool: a ``(2·width + 1)``-square dilation of the pixels whose label differs
    from a 4-neighbour's (both sides of an edge; on PASCAL VOC the band so grows out of the
    5-pixel "void" outline of the objects, as in the papers)."""
    t = target
    edge = torch.zeros_like(t, dtype=torch.bool)
    edge[:, 1:, :] |= t[:, 1:, :] != t[:, :-1, :]
    edge[:, :-1, :] |= t[:, :-1, :] != t[:, 1:, :]
    edge[:, :, 1:] |= t[:, :, 1:] != t[:, :, :-1]
    edge[:, :, :-1] |= t[:, :, :-1] != t[:, :, 1:]
    grown = F.max_pool2d(edge[:, None].float(), 2 * width + 1, stride=1, padding=width)
    return grown[:, 0] > 0


def trimap_miou(
    preds: torch.Tensor,
    targets: torch.Tensor,
    num_classes: int,
    width: int,
    ignore_index: int = IGNORE_INDEX,
) -> float:
    """mIoU over the pixels within ``width`` pixels of a ground-truth boundary (the "trimap"):
    how much of the error lies at object outlines, the trimap experiments of DeepLab v1 (arXiv
    1412.7062, Sec. 5; what the CRF gains) and DeepLabv3+ (arXiv 1802.02611, Sec. 4.4 and Fig.
    5(a); what the decoder gains).
    ``preds`` are labels ``(B, H, W)`` or logits ``(B, C, H, W)``, ``targets`` ``(B, H, W)``;
    only :func:`boundary_band` is scored (NaN if it holds no labelled pixel)."""
    if not isinstance(width, int) or isinstance(width, bool) or width < 0:
        raise ValueError(f"width must be an int >= 0 (pixels), got {width!r}")
    band = boundary_band(targets, width)
    return mean_iou(preds, torch.where(band, targets, ignore_index), num_classes, ignore_index)


def per_image_confusion(
    preds: torch.Tensor, targets: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """Labels ``(N, H, W)`` (or logits ``(N, C, H, W)``) and targets ``(N, H, W)`` ->
    ``(N, C, C)`` int64: each image's own confusion matrix (``IGNORE_INDEX`` skipped), checked
    and counted as :meth:`SegmentationMetrics.update` counts a batch; summed over images, the
    set's. Notebook 08."""
    c, bins = num_classes, num_classes * num_classes + 1  # the last bin: ignored pixels
    index = _pair_index(preds, targets, c, IGNORE_INDEX).flatten(1)  # (N, H·W)
    index = index + bins * torch.arange(len(index), device=index.device)[:, None]  # per image
    counts = torch.bincount(index.flatten(), minlength=bins * len(index)).reshape(-1, bins)
    return counts[:, : c * c].reshape(-1, c, c)  # (N, C, C)


def miou_interval(
    matrices: torch.Tensor,
    baseline: torch.Tensor | None = None,
    *,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """A percentile-bootstrap interval, over images, for the mIoU of ``(N, C, C)`` per-image
    matrices, or, with ``baseline`` (the same images scored otherwise), for the paired
    difference mIoU(matrices) − mIoU(baseline). It covers the choice of images (what the model
    would score on unlimited images of this kind), not of training runs. Notebook 08."""
    n = len(matrices)
    if n == 0:
        raise ValueError("need the matrices of at least one image, got none")
    draws = torch.randint(n, (resamples, n), generator=torch.Generator().manual_seed(seed))
    times = (
        torch.zeros(resamples, n, dtype=torch.float64)
        .scatter_add_(1, draws, torch.ones(resamples, n, dtype=torch.float64))
        .to(matrices.device)
    )  # (R, N): how often each image was drawn

    def resampled(cm: torch.Tensor) -> torch.Tensor:  # (N, C, C) -> (R, C, C), summed
        return (times @ cm.flatten(1).double()).reshape(-1, *cm.shape[1:])

    scores = _iou(resampled(matrices)).nanmean(dim=-1)  # (R,): an absent class left out
    if baseline is not None:
        scores = scores - _iou(resampled(baseline)).nanmean(dim=-1)
    low, high = torch.quantile(scores, torch.tensor([(1 - level) / 2, (1 + level) / 2]).double())
    return low.item(), high.item()
