"""Evaluation: a model's metrics over a validation set, each pixel scored at its annotation's size
(training layer, 4; notebook 08).

The PASCAL VOC protocol scores every pixel of the original annotation: the logits of a resized and
padded picture (``original_size_eval_transforms``) are cropped to the picture and resized to the
annotation's ``H x W`` before the argmax. Scoring masks resized to the model's input is cheaper
but not the protocol: nearest-neighbour shrinking drops thin structures and border pixels.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from .data import collate_original_size, longer_side_size
from .metrics import SegmentationMetrics
from .runtime import autocast, model_device, pick_device, rank_and_world, unwrap


def restore_original_size(logits: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Logits ``(B, C, S, S)`` of a resized-and-padded picture -> float32 ``(B, C, H, W)`` at
    its original ``size``: cropped to the picture (resized so its longer side is ``S``, at the
    top left, as the eval transforms put it), then resized bilinearly."""
    height, width = (int(s) for s in size)
    h, w = longer_side_size(height, width, max(logits.shape[-2:]))
    content = logits[..., :h, :w].float()  # (B, C, h, w): the picture, without padding
    if (h, w) == (height, width):
        return content
    return F.interpolate(content, size=(height, width), mode="bilinear", align_corners=False)


def pairs_at_mask_size(
    logits: torch.Tensor, masks: torch.Tensor | Sequence[torch.Tensor]
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(logits, masks)`` to score, each at the mask's own size, on the logits' device.

    Masks ``(B, H, W)`` of the logits' size come out once, as they are; a list of masks at each
    picture's original size (:func:`~deeplab_utils.data.collate_original_size`) one image at a
    time, its logits through :func:`restore_original_size`.
    """
    if isinstance(masks, torch.Tensor) and masks.shape[-2:] == logits.shape[-2:]:
        yield logits, masks.to(logits.device, non_blocking=True)
        return
    for logit, mask in zip(logits, masks, strict=True):
        yield restore_original_size(logit[None], mask.shape[-2:]), mask[None].to(logits.device)


def eval_loader(dataset: Dataset, config: Any) -> DataLoader:
    """Batches of ``config.batch_size`` in order; under torchrun process ``r`` takes samples
    ``r, r + world, ...``, so over all processes each is scored exactly once (a
    ``DistributedSampler`` would pad the shards with repeats)."""
    rank, world = rank_and_world()
    shard = dataset if world == 1 else Subset(dataset, range(rank, len(dataset), world))
    return DataLoader(shard, config.batch_size, num_workers=config.workers,
                      collate_fn=collate_original_size)  # fmt: skip


def _labels(logits: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, H, W)``: the argmax, or ``logit > 0`` for a one-channel model."""
    return (logits[:, 0] > 0).long() if logits.shape[1] == 1 else logits.argmax(dim=1)


def _plain(value: Any) -> Any:
    """Metrics as JSON-able numbers and lists; an undefined score (NaN) becomes None."""
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return None if value != value else value


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Any,
    num_classes: int | None = None,
    *,
    device: torch.device | str | None = None,
    amp: bool = False,
    loss_fn: Any = None,
) -> dict[str, Any]:
    """Validation metrics of ``model`` over ``loader`` (summed over torchrun's processes).

    Batches are ``(images (B, 3, h, w), masks)``: masks ``(B, h, w)``, or a list of each
    picture's original-size mask (the VOC protocol, above). ``num_classes`` defaults to the
    logits' channels (2 for a one-channel model, which predicts ``logit > 0``). Returns
    :meth:`~deeplab_utils.metrics.SegmentationMetrics.compute`'s dict as plain numbers (None where
    undefined) and, with ``loss_fn``, ``"loss"`` averaged over the images: the validation loss,
    whose gap to the training loss shows under- or overfitting.
    """
    model = unwrap(model)  # each process scores its own share, without waiting for the others
    device = model_device(model) if device is None else pick_device(device)
    was_training, metrics, loss_sum = model.training, None, torch.zeros(2, device=device)
    model.eval()
    for images, masks in loader:
        with autocast(device, amp):
            logits = model(images.to(device))  # (B, C, h, w)
        metrics = metrics or SegmentationMetrics(num_classes or max(logits.shape[1], 2))
        for batch_logits, batch_masks in pairs_at_mask_size(logits, masks):
            if loss_fn is not None:  # (sum of the images' losses, images)
                loss_sum += torch.stack([loss_fn(batch_logits.float(), batch_masks) * len(
                    batch_masks), loss_sum.new_tensor(len(batch_masks))])  # fmt: skip
            if batch_masks.ndim == 4:  # (B, 1, H, W): the binary losses' layout
                batch_masks = batch_masks[:, 0]
            metrics.update(_labels(batch_logits), batch_masks.long())
    model.train(was_training)
    if metrics is None:
        raise ValueError("the evaluation loader yields no batch: the dataset is empty")
    metrics.sync()
    result = {key: _plain(value) for key, value in metrics.compute().items()}
    if loss_fn is not None:
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(loss_sum)
        result["loss"] = (loss_sum[0] / loss_sum[1]).item()
    return result


def confusion_matrix(model: nn.Module, loader: Any, num_classes: int) -> torch.Tensor:
    """``(C, C)`` int64 pixel counts over ``loader``: row = target class, column = prediction.
    :func:`evaluate`'s core, the loop notebook 08 has the learner write."""
    return torch.tensor(evaluate(model, loader, num_classes)["confusion_matrix"])
