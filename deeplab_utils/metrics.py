"""Segmentation metrics from a confusion matrix: pixel accuracy, per-class IoU and Dice, mIoU.

Objectives layer: depends on torch alone, never on the model. Taught in notebook 05.

mIoU is the metric the DeepLab papers report (DeepLabv3+ paper, Sec. 4: "pixel
intersection-over-union averaged across the 21 classes"), computed from a confusion matrix
accumulated over the *whole* evaluation set, never as a mean of per-image scores.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .targets import IGNORE_INDEX, check_target

__all__ = ["IGNORE_INDEX", "SegmentationMetrics", "boundary_band", "mean_iou", "trimap_miou"]


class SegmentationMetrics:
    """Accumulate a confusion matrix over batches and compute segmentation metrics from it.

    ``confusion_matrix[t, p]`` counts pixels whose target class is ``t`` and predicted class is
    ``p`` (rows = target, columns = prediction); pixels whose target is ``ignore_index`` are
    skipped. Per class ``c``: ``TP = M[c, c]``, ``FP = Σ_t M[t, c] − TP``,
    ``FN = Σ_p M[c, p] − TP``, ``IoU = TP / (TP + FP + FN)``, ``Dice = 2TP / (2TP + FP + FN)``.
    Taught in notebook 05.

    Args:
        num_classes: number of classes ``C`` (>= 1).
        ignore_index: target value to skip (255, the Pascal VOC border label).
        device: where the confusion matrix lives; ``None`` follows the tensors passed to
            :meth:`update`, so counting happens on their device without copies.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        ignore_index: int = IGNORE_INDEX,
        device: str | torch.device | None = None,
    ) -> None:
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self._follow_inputs = device is None
        self.confusion_matrix = torch.zeros(
            num_classes, num_classes, dtype=torch.int64, device=device or "cpu"
        )

    def reset(self) -> None:
        """Zero the confusion matrix (start a new evaluation)."""
        self.confusion_matrix.zero_()

    @torch.no_grad()
    def update(self, logits_or_labels: torch.Tensor, target: torch.Tensor) -> None:
        """Add one batch to the confusion matrix.

        Args:
            logits_or_labels: logits ``(B, C, H, W)`` float (the prediction is the argmax over
                ``C``), or predicted labels ``(B, H, W)`` int.
            target: ground-truth class indices ``(B, H, W)`` int; ``ignore_index`` is skipped.

        Raises:
            TypeError: for a non-integer target or integer 4-D predictions.
            ValueError: for mismatched shapes, ``C != num_classes`` or out-of-range labels.
        """
        pred = self._labels(logits_or_labels)  # (B, H, W)
        c = self.num_classes
        target, valid = check_target(
            target, tuple(pred.shape), num_classes=c, ignore_index=self.ignore_index,
            of="prediction",
        )  # fmt: skip
        if pred.device != target.device:
            raise ValueError(
                f"prediction is on {pred.device} but target is on {target.device}; "
                "move both to the same device"
            )
        bad_p = (pred < 0) | (pred >= c)
        if bool(bad_p.any()):
            raise ValueError(f"predicted labels must lie in [0, {c}), got {pred[bad_p][0].item()}")
        if self._follow_inputs and self.confusion_matrix.device != pred.device:
            self.confusion_matrix = self.confusion_matrix.to(pred.device)
        # Encode each (target, prediction) pair as one index t·C + p, then count them all at once.
        index = target[valid] * c + pred[valid]  # (N_valid,)
        counts = torch.bincount(index, minlength=c * c).reshape(c, c)  # (C, C)
        self.confusion_matrix += counts.to(self.confusion_matrix.device)

    def _labels(self, logits_or_labels: torch.Tensor) -> torch.Tensor:
        """Predicted labels ``(B, H, W)`` int64 from logits ``(B, C, H, W)`` or labels."""
        x = logits_or_labels
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"prediction must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim == 4:
            if not x.is_floating_point():
                raise TypeError(
                    f"4-D predictions must be float logits (B, C, H, W), got dtype {x.dtype}"
                )
            if x.shape[1] != self.num_classes:
                raise ValueError(
                    f"logits have {x.shape[1]} channels but num_classes={self.num_classes}; "
                    f"got logits shape {tuple(x.shape)}"
                )
            return x.argmax(dim=1)  # (B, C, H, W) -> (B, H, W)
        if x.ndim == 3:
            if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
                raise TypeError(f"predicted labels (B, H, W) must be integers, got {x.dtype}")
            return x.long()
        raise ValueError(
            f"prediction must be logits (B, C, H, W) or labels (B, H, W), got {tuple(x.shape)}"
        )

    def merge(self, other: SegmentationMetrics) -> None:
        """Add another accumulator's counts to this one (e.g. from another worker)."""
        if not isinstance(other, SegmentationMetrics):
            raise TypeError(f"can only merge a SegmentationMetrics, got {type(other).__name__}")
        if other.num_classes != self.num_classes:
            raise ValueError(
                f"cannot merge metrics with num_classes={other.num_classes} into "
                f"num_classes={self.num_classes}"
            )
        self.confusion_matrix += other.confusion_matrix.to(self.confusion_matrix.device)

    def sync(self) -> None:
        """Sum the confusion matrix over all processes when torch.distributed is initialised.

        A no-op in a single process. Call it once, on every rank, after the last
        :meth:`update` and before :meth:`compute` (calling it twice would double-count). With
        the NCCL backend the matrix must be on the GPU (pass ``device="cuda"`` or update with
        CUDA tensors).
        """
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.confusion_matrix, op=dist.ReduceOp.SUM)

    def compute(self) -> dict[str, float | torch.Tensor]:
        """Metrics from the accumulated counts.

        Returns:
            A dict with ``"pixel_accuracy"`` (float), ``"iou"`` and ``"dice"`` (``(C,)``
            float64 tensors on the CPU; NaN for a class absent from both target and
            prediction, whose score is undefined), ``"miou"`` and ``"mean_dice"`` (floats:
            means over the classes that are not NaN, so absent classes are excluded rather than
            counted as 0 or 1) and ``"confusion_matrix"`` (``(C, C)`` int64, CPU). With no
            pixels counted every float is NaN.
        """
        cm = self.confusion_matrix.detach().cpu()
        m = cm.double()
        tp = m.diagonal()  # (C,)
        fp = m.sum(dim=0) - tp  # predicted c, target another class
        fn = m.sum(dim=1) - tp  # target c, predicted another class
        nan = torch.tensor(float("nan"), dtype=torch.float64)
        union = tp + fp + fn
        iou = torch.where(union > 0, tp / union.clamp_min(1), nan)  # (C,)
        dice = torch.where(union > 0, 2 * tp / (2 * tp + fp + fn).clamp_min(1), nan)  # (C,)
        total = m.sum()
        return {
            "pixel_accuracy": (tp.sum() / total).item() if total > 0 else float("nan"),
            "iou": iou,
            "miou": iou.nanmean().item(),
            "dice": dice,
            "mean_dice": dice.nanmean().item(),
            "confusion_matrix": cm.clone(),
        }

    def __repr__(self) -> str:
        return (
            f"SegmentationMetrics(num_classes={self.num_classes}, "
            f"ignore_index={self.ignore_index}, pixels={int(self.confusion_matrix.sum())})"
        )


def mean_iou(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> float:
    """mIoU of one batch of label masks: ``SegmentationMetrics`` in one call.

    ``pred`` and ``target`` are int64 ``(B, H, W)``. One confusion matrix for the whole batch;
    classes absent from both masks are left out of the mean. Taught in notebook 05.
    """
    metrics = SegmentationMetrics(num_classes, ignore_index=ignore_index)
    metrics.update(pred, target)
    return float(metrics.compute()["miou"])


def boundary_band(target: torch.Tensor, width: int) -> torch.Tensor:
    """The pixels within ``width`` pixels of a ground-truth boundary: ``(B, H, W)`` bool.

    A boundary pixel is one whose label differs from one of its four neighbours' (both sides of
    an edge; a pixel beside an ignore-labelled one counts, so on PASCAL VOC, whose objects are
    outlined by a 5-pixel band of "void" labels, the band grows out of that outline as in the
    papers). The band is every pixel at Chebyshev distance ≤ ``width`` from a boundary pixel: a
    ``(2·width + 1)``-square dilation. ``target`` is ``(B, H, W)`` int.
    """
    t = target
    edge = torch.zeros_like(t, dtype=torch.bool)
    edge[:, 1:, :] |= t[:, 1:, :] != t[:, :-1, :]
    edge[:, :-1, :] |= t[:, :-1, :] != t[:, 1:, :]
    edge[:, :, 1:] |= t[:, :, 1:] != t[:, :, :-1]
    edge[:, :, :-1] |= t[:, :, :-1] != t[:, :, 1:]
    if width == 0:
        return edge
    grown = F.max_pool2d(edge[:, None].float(), 2 * width + 1, stride=1, padding=width)
    return grown[:, 0] > 0


def trimap_miou(
    preds: torch.Tensor,
    targets: torch.Tensor,
    num_classes: int,
    width: int,
    ignore_index: int = IGNORE_INDEX,
) -> float:
    """mIoU over the pixels within ``width`` pixels of a ground-truth boundary (the "trimap").

    How much of a model's error lies at object outlines: the trimap experiments of DeepLab v1
    (arXiv 1412.7062; what the CRF gains) and DeepLabv3+ (arXiv 1802.02611; what the decoder
    gains) plot it against the band's width. ``preds`` are labels ``(B, H, W)`` int or logits
    ``(B, C, H, W)``; ``targets`` ``(B, H, W)`` int, ``ignore_index`` skipped. The band is
    :func:`boundary_band`; pixels outside it are not scored. NaN when the band holds no
    labelled pixel.

    Raises:
        ValueError: if ``width`` is not an int >= 0 (and as :class:`SegmentationMetrics`).
    """
    if not isinstance(width, int) or isinstance(width, bool) or width < 0:
        raise ValueError(f"width must be an int >= 0 (pixels), got {width!r}")
    metrics = SegmentationMetrics(num_classes, ignore_index=ignore_index)
    labels = metrics._labels(preds)  # (B, H, W)
    target, valid = check_target(
        targets, tuple(labels.shape), num_classes=num_classes, ignore_index=ignore_index,
        of="prediction",
    )  # fmt: skip
    target = torch.where(valid, target, ignore_index)  # check_target zeroes ignored pixels
    metrics.update(labels, torch.where(boundary_band(target, width), target, ignore_index))
    return float(metrics.compute()["miou"])
